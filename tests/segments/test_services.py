"""Refreshing membership: set-based materialisation, size history, who entered and left."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from segments.models import SegmentMembership, SegmentMembershipChange, SegmentRefresh
from segments.registry import Field, FieldType, Target, get_registry, registry_reset
from segments.selectors import rules_count, segment_size_history
from segments.services import (
    SCHEDULE_NAME,
    segment_create,
    segment_refresh_request,
    segments_refresh_scheduled,
)
from segments.tasks import segment_refresh_execute

BERLIN = {
    "include": {
        "type": "group",
        "op": "and",
        "children": [{"type": "field", "field": "city", "operator": "equals", "value": "Berlin"}],
    }
}


def test_refresh_records_size_history_and_who_entered_and_left(make_profile):
    ann = make_profile(first_name="Ann", city="Berlin")
    ben = make_profile(first_name="Ben", city="Hamburg")
    segment = segment_create(name="Berliners", rules=BERLIN)

    first = segment_refresh_request(segment=segment, sync=True)
    ben.city = "Berlin"
    ben.save()
    ann.city = "Köln"
    ann.save()
    second = segment_refresh_request(segment=segment, sync=True)
    third = segment_refresh_request(segment=segment, sync=True)

    assert [(r.status, r.size, r.entered_count, r.left_count) for r in (first, second, third)] == [
        ("succeeded", 1, 1, 0),
        ("succeeded", 1, 1, 1),
        ("succeeded", 1, 0, 0),
    ]
    assert list(
        SegmentMembership.objects.filter(segment=segment).values_list("profile_id", flat=True)
    ) == [ben.pk]
    changes = SegmentMembershipChange.objects.filter(segment=segment).order_by("id")
    assert [(c.refresh_id, c.profile_id, c.kind) for c in changes] == [
        (first.pk, ann.pk, "entered"),
        (second.pk, ann.pk, "left"),
        (second.pk, ben.pk, "entered"),
    ]
    segment.refresh_from_db()
    assert (segment.size, segment.refreshed_at) == (1, third.finished_at)
    assert [h["size"] for h in segment_size_history(segment=segment)] == [1, 1, 1]


def test_refresh_query_count_does_not_grow_with_members(
    make_profile, django_assert_max_num_queries
):
    for i in range(30):
        make_profile(first_name=f"P{i}", city="Berlin")
    segment = segment_create(name="Berliners", rules=BERLIN)
    refresh = SegmentRefresh.objects.create(segment=segment)

    with django_assert_max_num_queries(16):
        segment_refresh_execute(refresh.pk)
    assert SegmentMembership.objects.filter(segment=segment).count() == 30


def test_failed_refresh_keeps_membership_and_records_the_error(make_profile):
    make_profile(first_name="Ann", city="Berlin")
    segment = segment_create(name="Berliners", rules=BERLIN)
    segment_refresh_request(segment=segment, sync=True)
    segment.rules = {
        "include": {"type": "group", "children": [{"type": "segment", "segment": 999}]}
    }
    segment.save()

    failed = segment_refresh_request(segment=segment, sync=True)

    assert failed.status == "failed"
    assert "Segment #999 does not exist." in failed.error
    assert SegmentMembership.objects.filter(segment=segment).count() == 1


def test_segments_referring_to_each_other_are_rejected(db):
    a = segment_create(name="A", rules=BERLIN)
    b = segment_create(
        name="B",
        rules={"include": {"type": "group", "children": [{"type": "segment", "segment": a.pk}]}},
    )
    a.rules = {"include": {"type": "group", "children": [{"type": "segment", "segment": b.pk}]}}
    a.save()

    from segments.compiler import RuleError

    with pytest.raises(
        RuleError, match=f"Segments refer to each other: #{a.pk} → #{b.pk} → #{a.pk}"
    ):
        rules_count(a.rules, segment=a)


def test_refresh_request_is_enqueued_once(db, django_capture_on_commit_callbacks):
    segment = segment_create(name="Berliners", rules=BERLIN)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = segment_refresh_request(segment=segment)
        again = segment_refresh_request(segment=segment)
    assert first.pk == again.pk and first.status == "queued"
    assert len(callbacks) == 1


def test_scheduled_segments_are_queued(db, django_capture_on_commit_callbacks):
    segment_create(name="Hourly", rules=BERLIN, scheduled=True)
    segment_create(name="Manual", rules=BERLIN)
    with django_capture_on_commit_callbacks(execute=False):
        assert segments_refresh_scheduled() == 1
    assert list(SegmentRefresh.objects.values_list("segment__name", flat=True)) == ["Hourly"]


def test_schedule_command_is_idempotent(db):
    call_command("segments_schedule", "--minutes", "30")
    call_command("segments_schedule", "--minutes", "15")

    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert Schedule.objects.filter(name=SCHEDULE_NAME).count() == 1
    assert (schedule.func, schedule.minutes, schedule.repeats) == (
        "segments.tasks.segments_refresh_scheduled",
        15,
        -1,
    )


def test_other_apps_register_fields_through_segment_fields_modules(make_profile, monkeypatch):
    """An app's segment_fields.register(registry) is discovered; its fields compile."""
    import sys
    import types

    module = types.ModuleType("insights.segment_fields")

    def register(registry):
        registry.register_field(
            Field(
                key="insight:vip_score",
                label="VIP score",
                type=FieldType.NUMBER,
                target=Target("attributes__vip", json=True),
                group="Insights",
            )
        )

    module.register = register
    monkeypatch.setitem(sys.modules, "insights.segment_fields", module)
    registry_reset()
    try:
        make_profile(first_name="Ann", attributes={"vip": 9})
        make_profile(first_name="Ben", attributes={"vip": 2})
        rules = {
            "include": {
                "type": "group",
                "children": [
                    {
                        "type": "field",
                        "field": "insight:vip_score",
                        "operator": "greater",
                        "value": 5,
                    }
                ],
            }
        }
        assert rules_count(rules) == 1
        assert "Insights" in [s["group"] for s in get_registry().palette()]
    finally:
        registry_reset()
