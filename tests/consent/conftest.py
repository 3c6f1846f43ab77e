"""Fixtures for privacy tests: a privacy officer, requests, and people imported the real way."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from consent.models import DataSubjectRequest
from consent.services.requests import request_create


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def officer(db) -> User:
    user = User.objects.create_user("olga", password="pw-olga-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Privacy Officer"))
    return User.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def make_request(db, officer, django_capture_on_commit_callbacks):
    """A request created through the service; verified by the officer unless told otherwise.

    Callbacks on commit (the verification e-mail) run, as they would after a real commit."""

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
        with django_capture_on_commit_callbacks(execute=True):
            return request_create(**values)

    return make


LENA_NEEDLES = (
    "lena.vogt",
    "lena.private",
    "lena-user-7781",
    "anon-lena-5521",
    "4915123456789",
    "Vogt",
)


def _post(client, source, path: str, body: dict, **headers):
    import base64
    import json

    auth = "Basic " + base64.b64encode(f"{source.write_key}:".encode()).decode()
    return client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": auth, **headers},
    )


@pytest.fixture
def people(db, client, make_source, import_csv):
    """Lena (two profiles merged into one by a steward: a Shopify customer and an app user with
    a secondary e-mail, events, consent, a rejected row) and Bob, someone else entirely."""
    from tests.conftest import shopify_csv, shopify_row

    shop = make_source(name="shop", preset="shopify")
    web = make_source(name="web", kind="api")
    import_csv(
        shop,
        shopify_csv(
            shopify_row(
                **{
                    "First Name": "Lena",
                    "Last Name": "Vogt",
                    "Email": "Lena.Vogt@Example.de",
                    "Phone": "'+49 151 23456789",
                    "Accepts Email Marketing": "yes",
                    "Default Address City": "Berlin",
                }
            ),
            shopify_row(
                **{
                    "First Name": "Bob",
                    "Last Name": "Ray",
                    "Email": "bob.ray@example.com",
                    "Accepts Email Marketing": "yes",
                }
            ),
            # A row rejected for a bad number: it still names Lena.
            shopify_row(**{"Email": "lena.vogt@example.de", "Total Spent": "1.234,50"}),
        ),
    )
    # The app knows Lena first by a private address only: a second profile.
    _post(
        client,
        web,
        "/v1/identify",
        {
            "userId": "lena-user-7781",
            "anonymousId": "anon-lena-5521",
            "traits": {"email": "lena.private@example.org"},
            "messageId": "l-1",
        },
    )
    _post(
        client,
        web,
        "/v1/track",
        {
            "userId": "lena-user-7781",
            "event": "Order Completed",
            "properties": {"order_id": "o-lena-1", "total": 99},
            "messageId": "l-2",
        },
        **{"Sec-GPC": "1"},
    )
    _post(
        client,
        web,
        "/v1/track",
        {
            "userId": "bob-user-1",
            "event": "Order Completed",
            "properties": {"order_id": "o-bob-1", "total": 5},
            "messageId": "b-1",
        },
    )
    # Then she signs in with her shop address: the two profiles merge.
    _post(
        client,
        web,
        "/v1/identify",
        {
            "userId": "lena-user-7781",
            "traits": {"email": "lena.vogt@example.de"},
            "messageId": "l-3",
        },
    )
    from profiles.models import Identity, MergeSuggestion, Profile
    from profiles.services.merging import profiles_merge

    # The shared address makes the two a merge suggestion; a data steward accepts it.
    both = sorted(
        Profile.objects.filter(identities__key__in=["lena.vogt@example.de", "lena-user-7781"])
        .distinct()
        .values_list("pk", flat=True)
    )
    assert len(both) == 2 and MergeSuggestion.objects.count() == 1
    profiles_merge(survivor_id=both[0], other_ids=both[1:], reason="steward accepted")
    lena = Profile.objects.filter(identities__key="lena.vogt@example.de").distinct().get()
    bob = Profile.objects.get(identities__key="bob.ray@example.com")
    bob_app = Identity.objects.get(key="bob-user-1").profile
    return {"lena": lena, "bob": bob, "bob_app": bob_app, "shop": shop, "web": web}


def email_marketing_segment(name: str = "E-mail marketing granted"):
    """A real segment (rules -> refresh -> membership): e-mail marketing is granted."""
    from segments.services import segment_create, segment_refresh_request

    rules = {
        "include": {
            "type": "group",
            "op": "and",
            "negate": False,
            "children": [
                {
                    "type": "field",
                    "field": "consent:email_marketing",
                    "operator": "equals",
                    "value": "granted",
                }
            ],
        }
    }
    segment = segment_create(name=name, rules=rules)
    refresh = segment_refresh_request(segment=segment, sync=True)
    assert refresh.status == "succeeded", refresh.error
    return segment


def activation_run(activation):
    from activation.services.runs import activation_run_create

    run = activation_run_create(activation=activation, sync=True)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run


def file_rows(run) -> list[list[str]]:
    import csv
    import io

    from activation.services.files import resolve_export

    return list(csv.reader(io.StringIO(resolve_export(run.file).read_text(encoding="utf-8"))))


@pytest.fixture
def sent_by_activation(people, settings, tmp_path):
    """Lena and Bob (both granted e-mail marketing) in a segment, sent by a changes-only file
    activation of that segment: the run's file holds their e-mail addresses."""
    from activation.models import Activation, Destination

    settings.CDP_ACTIVATION_STORAGE = tmp_path / "exports"
    segment = email_marketing_segment()
    destination = Destination.objects.create(
        name="Newsletter tool",
        kind=Destination.Kind.FILE,
        folder="newsletter",
        consent_purpose="email_marketing",
        consent_channel="email",
    )
    activation = Activation.objects.create(
        name="Weekly newsletter",
        segment=segment,
        destination=destination,
        attributes=["first_name", "last_name"],
        mode=Activation.Mode.CHANGES,
    )
    run = activation_run(activation)
    emails = sorted(row[2] for row in file_rows(run)[1:])
    assert emails == ["bob.ray@example.com", "lena.vogt@example.de"]
    return {"segment": segment, "activation": activation, "destination": destination, "run": run}
