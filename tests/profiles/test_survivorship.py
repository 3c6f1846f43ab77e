"""Survivorship: which source record supplies each attribute (pure function, no database)."""

from __future__ import annotations

from profiles.services.survivorship import survivor_values


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
