"""Survivorship: which source record supplies each attribute (pure function; and the SQL
ranking PostgreSQL runs for it, checked against the pure function)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from profiles.models import Profile, Ruleset, SourceRecord
from profiles.services.survivorship import profile_attributes_refresh, survivor_values


def record(record_id: int, priority: int, updated_at: str, observed_at=None, **attributes):
    return {
        "id": record_id,
        "priority": priority,
        "updated_at": updated_at,
        "attributes": attributes,
        "observed_at": observed_at or {},
    }


def test_better_priority_wins_over_a_newer_value():
    attributes, sources = survivor_values(
        [
            record(1, 10, "2024-01-01T00:00:00", first_name="Lena"),
            record(2, 100, "2024-06-01T00:00:00", first_name="Helena"),
        ]
    )

    assert attributes == {"first_name": "Lena"}
    assert sources == {"first_name": 1}


def test_among_equal_priorities_the_most_recent_observation_wins():
    attributes, sources = survivor_values(
        [
            record(1, 100, "2024-06-01T00:00:00", {"city": "2024-01-01T00:00:00"}, city="Bonn"),
            record(2, 100, "2024-02-01T00:00:00", city="Berlin"),
        ]
    )

    assert attributes == {"city": "Berlin"}
    assert sources == {"city": 2}


def test_empty_values_are_no_evidence_and_each_attribute_keeps_its_own_source():
    attributes, sources = survivor_values(
        [
            record(1, 10, "2024-01-01T00:00:00", first_name="Lena", phone=""),
            record(2, 100, "2024-01-01T00:00:00", first_name=None, phone="+12025550143"),
        ]
    )

    assert attributes == {"first_name": "Lena", "phone": "+12025550143"}
    assert sources == {"first_name": 1, "phone": 2}


def test_full_tie_goes_to_the_higher_record_id():
    attributes, sources = survivor_values(
        [
            record(7, 100, "2024-01-01T00:00:00", city="Bonn"),
            record(3, 100, "2024-01-01T00:00:00", city="Berlin"),
        ]
    )

    assert (attributes, sources) == ({"city": "Bonn"}, {"city": 7})


def test_no_records_no_attributes():
    assert survivor_values([]) == ({}, {})


@pytest.mark.parametrize(
    ("default", "overrides"),
    [
        ("source_priority", {}),
        ("most_recent", {}),
        ("source_priority", {"city": "most_recent"}),
        ("most_recent", {"first_name": "source_priority"}),
    ],
)
def test_refresh_writes_what_the_pure_rule_picks(make_source, default, overrides):
    ruleset = Ruleset.objects.filter(is_active=True).first() or Ruleset.objects.create(
        name="active", is_active=True
    )
    Ruleset.objects.filter(pk=ruleset.pk).update(
        survivorship_default=default, survivorship_overrides=overrides
    )
    shop, crm = make_source(priority=10), make_source(priority=100)
    profile = Profile.objects.create()
    rows = [
        # (source, updated_at, observed_at, attributes)
        (crm, datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC), {}, {"first_name": "Helena"}),
        (
            shop,
            datetime(2024, 2, 1, 8, 0, 0, 250000, tzinfo=UTC),
            {"city": "2024-06-01T00:00:00+00:00"},
            {"first_name": "Lena", "city": "Bonn", "postcode": 53111, "phone": ""},
        ),
        (
            shop,
            datetime(2024, 2, 1, 8, 0, 0, tzinfo=UTC),
            {},
            {"city": "Köln", "country": "DE", "email": None, "vip": True},
        ),
        (crm, datetime(2024, 7, 1, tzinfo=UTC), {}, {"city": "Berlin", "country": "de"}),
    ]
    for n, (source, updated_at, observed_at, attributes) in enumerate(rows):
        record = SourceRecord.objects.create(
            source=source,
            external_key=f"k{n}",
            profile=profile,
            attributes=attributes,
            observed_at=observed_at,
        )
        SourceRecord.objects.filter(pk=record.pk).update(updated_at=updated_at)
    expected = survivor_values(
        [
            {
                "id": r.pk,
                "priority": r.source.priority,
                "updated_at": r.updated_at.isoformat(),
                "attributes": r.attributes,
                "observed_at": r.observed_at,
            }
            for r in SourceRecord.objects.filter(profile=profile).select_related("source")
        ],
        default=default,
        overrides=overrides,
    )

    profile_attributes_refresh(profile_ids=[profile.pk])

    profile.refresh_from_db()
    assert (profile.attributes, profile.attribute_sources) == expected
    assert profile.city == expected[0]["city"]
    assert profile.country == expected[0]["country"]
    assert profile.first_name == expected[0]["first_name"]
    assert profile.phone == ""


@pytest.mark.parametrize(
    "overrides",
    [["city"], {"city": "newest", "first_name": ["most_recent"], "last_name": "most_recent"}],
)
def test_overrides_saved_before_validation_are_ignored_where_invalid(make_source, overrides):
    Ruleset.objects.filter(is_active=True).update(survivorship_overrides=overrides)
    shop, crm = make_source(priority=10), make_source(priority=100)
    profile = Profile.objects.create()
    SourceRecord.objects.create(
        source=shop, external_key="s", profile=profile, attributes={"city": "Bonn"}
    )
    SourceRecord.objects.create(
        source=crm,
        external_key="c",
        profile=profile,
        attributes={"city": "Berlin", "last_name": "Neu"},
    )

    profile_attributes_refresh(profile_ids=[profile.pk])  # raised ValueError / TypeError

    profile.refresh_from_db()
    assert profile.attributes == {"city": "Bonn", "last_name": "Neu"}
