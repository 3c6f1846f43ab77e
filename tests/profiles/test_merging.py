"""Bulk merges: every row of another app that pointed at an absorbed profile is moved or
cleared by its foreign key's rule, and unmerge gives both sides back exactly."""

from __future__ import annotations

from datetime import UTC, datetime

from consent.models import ConsentRecord
from consent.services.consent import consent_record
from insights.models import ProfileInsight
from profiles.models import LoyaltyMember, MergeLog, Profile
from profiles.services.loyalty import loyalty_member_enrol
from profiles.services.merging import (
    profile_foreign_keys,
    profile_unmerge,
    profiles_merge_many,
)
from segments.models import Segment, SegmentMembership
from tests.profiles.loyalty_helpers import dt, make_program


def _references_to(profile_ids: list[int]) -> dict[str, int]:
    """Rows of every model with a foreign key to Profile that point at these ids."""
    out = {}
    for model, fk in profile_foreign_keys():
        if not fk.db_constraint:
            continue  # merge suggestions and merge logs keep plain ids on purpose
        count = model.objects.filter(**{f"{fk.attname}__in": profile_ids}).count()
        out[f"{model._meta.label}.{fk.name}"] = count
    return out


def _consent_owners() -> list[tuple[int, int, str]]:
    return sorted(ConsentRecord.objects.values_list("pk", "profile_id", "source"))


def test_bulk_merge_leaves_no_reference_to_an_absorbed_profile_and_unmerges_exactly(db):
    p1, p2, p3, p4, p5 = (Profile.objects.create(first_name=f"P{n}") for n in range(1, 6))
    consent_record(
        profile=p1,
        purpose="email_marketing",
        channel="email",
        status="granted",
        source="form",
        captured_at=datetime(2024, 6, 1, tzinfo=UTC),
    )
    consent_record(
        profile=p2,
        purpose="email_marketing",
        channel="email",
        status="denied",
        source="import",
        captured_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    member = loyalty_member_enrol(
        program=make_program(), profile=p4, member_number="CL-4", at=dt("2026-01-01")
    )
    segment = Segment.objects.create(name="all")
    SegmentMembership.objects.create(segment=segment, profile=p2)
    SegmentMembership.objects.create(segment=segment, profile=p5)
    ProfileInsight.objects.create(profile=p4)
    earlier = MergeLog.objects.create(survivor=p2, merged_ids=[], reason="earlier", snapshot=[])
    consent_before = _consent_owners()

    result = profiles_merge_many(clusters=[[p1.pk, p2.pk], [p3.pk, p4.pk]], reason="fuzzy: t")

    assert (result.merges, result.absorbed) == (2, 2)
    references = _references_to([p2.pk, p4.pk])
    assert set(references.values()) == {0}, references
    assert "consent.ConsentRecord.profile" in references
    assert "profiles.LoyaltyMember.profile" in references
    assert "segments.SegmentMembership.profile" in references
    assert sorted(Profile.objects.values_list("pk", flat=True)) == [p1.pk, p3.pk, p5.pk]
    assert LoyaltyMember.objects.get(pk=member.pk).profile_id == p3.pk
    assert list(SegmentMembership.objects.values_list("profile_id", flat=True)) == [p5.pk]
    # The earlier log keeps its survivor id (a plain id now) so it can be undone after this one.
    assert MergeLog.objects.get(pk=earlier.pk).survivor_id == p2.pk
    merge_record = ConsentRecord.objects.get(source="merge")
    assert (merge_record.profile_id, merge_record.status) == (p1.pk, "denied")
    logs = {log.survivor_id: log for log in MergeLog.objects.filter(reason="fuzzy: t")}
    # Each participant stored data only for the cluster where it had rows.
    assert logs[p1.pk].extensions["consent"]["merge_records"] == [merge_record.pk]
    assert "consent" not in logs[p3.pk].extensions
    assert "loyalty" in logs[p3.pk].extensions

    for log in logs.values():
        profile_unmerge(merge_log=log)

    assert sorted(Profile.objects.values_list("pk", "first_name")) == [
        (p.pk, p.first_name) for p in (p1, p2, p3, p4, p5)
    ]
    assert _consent_owners() == consent_before
    assert LoyaltyMember.objects.get(pk=member.pk).profile_id == p4.pk
