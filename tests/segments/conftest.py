"""Fixtures for segments: people with known attributes, traits and events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from profiles.models import DataSource, Event, Profile, SourceRecord


@pytest.fixture
def make_profile(db):
    """A profile with indexed columns, JSON attributes and (optionally) one source record's
    custom traits."""

    def make(*, traits: dict | None = None, **values) -> Profile:
        profile = Profile.objects.create(**values)
        if traits is not None:
            source, _ = DataSource.objects.get_or_create(name="crm")
            SourceRecord.objects.create(
                source=source, external_key=f"k-{profile.pk}", traits=traits, profile=profile
            )
        return profile

    return make


@pytest.fixture
def make_event(db):
    def make(profile: Profile, name: str, timestamp: datetime, **properties) -> Event:
        source, _ = DataSource.objects.get_or_create(name="web", defaults={"kind": "api"})
        return Event.objects.create(
            source=source,
            message_id=str(uuid.uuid4()),
            type="track",
            name=name,
            timestamp=timestamp,
            properties=properties,
            profile=profile,
        )

    return make


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)
