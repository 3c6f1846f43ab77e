"""Fixtures for privacy tests: a privacy officer, requests, and people imported the real way."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from consent.models import DataSubjectRequest
from consent.services.requests import request_create


@pytest.fixture
def officer(db) -> User:
    user = User.objects.create_user("olga", password="pw-olga-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Privacy Officer"))
    return User.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def make_request(db, officer):
    """A request created through the service; verified by the officer unless told otherwise."""

    def make(**overrides) -> DataSubjectRequest:
        values = {
            "type": "access",
            "regime": "gdpr",
            "requester_email": "lena.vogt@example.de",
            "requester_name": "Lena Vogt",
            "created_by": officer,
            "verify": "officer",
            "verification_method": "signed-in customer account",
        }
        values.update(overrides)
        return request_create(**values)

    return make
