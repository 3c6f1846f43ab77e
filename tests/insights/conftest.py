"""Fixtures for insights: a tracking source and a helper that sends Segment messages to it."""

from __future__ import annotations

import pytest

from profiles.models import DataSource, Profile
from profiles.services.tracking import tracking_messages_ingest


@pytest.fixture
def api_source(db) -> DataSource:
    return DataSource.objects.create(name="web", kind=DataSource.Kind.API)


@pytest.fixture
def send(api_source):
    """send(user_id, event=None, **fields): one message through the real tracking service."""

    def send_one(user_id: str, event: str | None = None, *, source=None, **fields) -> dict:
        message = {"type": "track" if event else "identify", "userId": user_id, **fields}
        if event:
            message["event"] = event
        return tracking_messages_ingest(source=source or api_source, messages=[message])

    return send_one


@pytest.fixture
def order(send):
    """order(user, order_id, when, total, currency="EUR", **more): an Order Completed."""

    def send_order(
        user: str, order_id: str, when: str, total, currency="EUR", source=None, **fields
    ):
        props = {"order_id": order_id, "total": total, "currency": currency}
        return send(
            user, "Order Completed", source=source, properties=props, timestamp=when, **fields
        )

    return send_order


@pytest.fixture
def profile_of():
    def find(user_id: str) -> Profile:
        return (
            Profile.objects.filter(identities__type="user_id", identities__key=user_id)
            .distinct()
            .get()
        )

    return find
