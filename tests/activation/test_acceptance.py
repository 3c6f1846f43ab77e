"""Issue 7 acceptance, end to end with real segments (rules -> refresh -> membership)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from activation.db import pseudonymous_id
from activation.models import Activation, ActivationRun, Destination
from activation.services.files import resolve_export
from activation.services.runs import activation_run_create
from consent.models import ConsentStatus, Restriction
from consent.services.consent import consent_gpc_record, consent_record
from consent.services.suppression import suppression_add
from profiles.models import Profile
from segments.services import segment_create, segment_refresh_request


def berliners():
    rules = {
        "include": {
            "type": "group",
            "op": "and",
            "negate": False,
            "children": [
                {"type": "field", "field": "city", "operator": "equals", "value": "Berlin"}
            ],
        },
        "exclude": {"type": "group", "op": "or", "negate": False, "children": []},
    }
    segment = segment_create(name="Berliners", rules=rules)
    refresh(segment)
    return segment


def refresh(segment):
    result = segment_refresh_request(segment=segment, sync=True)
    assert result.status == "succeeded", result.error


def run(activation) -> ActivationRun:
    created = activation_run_create(activation=activation, sync=True)
    created.refresh_from_db()
    return created


def file_rows(run_: ActivationRun) -> list[list[str]]:
    return list(csv.reader(io.StringIO(resolve_export(run_.file).read_text())))


def test_changes_only_follows_segment_refreshes_exactly(make_person, make_activation):
    make_person(email="ann@example.com", first_name="Ann", city="Berlin")
    bob = make_person(email="bob@example.com", first_name="Bob", city="Berlin")
    cid = make_person(email="cid@example.com", first_name="Cid", city="Berlin")
    make_person(email="eve@example.com", first_name="Eve", city="Hamburg")
    segment = berliners()
    activation = make_activation(
        segment=segment, mode=Activation.Mode.CHANGES, attributes=["first_name"]
    )
    first = run(activation)
    assert first.status == "succeeded", first.error
    assert (first.members_count, first.added_count) == (3, 3)
    # bob renamed, cid moved away, dan moved in; ann unchanged
    Profile.objects.filter(pk=bob.pk).update(first_name="Robert")
    Profile.objects.filter(pk=cid.pk).update(city="Munich")
    dan = make_person(email="dan@example.com", first_name="Dan", city="Berlin")
    refresh(segment)
    second = run(activation)
    secret = activation.destination.secret
    assert file_rows(second)[1:] == [
        ["update", pseudonymous_id(secret, bob.pk), "bob@example.com", "Robert"],
        ["add", pseudonymous_id(secret, dan.pk), "dan@example.com", "Dan"],
        ["remove", pseudonymous_id(secret, cid.pk), "", ""],
    ]


def test_overview_page_shows_expected_count_and_exclusions_before_a_run(
    admin_client, make_person, make_activation
):
    make_person(email="ann@example.com", city="Berlin")
    make_person(city="Berlin")  # no e-mail
    make_person(email="eve@example.com", city="Hamburg")
    activation = make_activation(segment=berliners())
    url = reverse("admin:activation_activation_overview", args=[activation.pk])
    response = admin_client.get(url)
    html = response.content.decode()
    assert response.status_code == 200
    assert '<span class="cdp-count" id="expected-count">1</span>' in html
    assert "<td>No usable contact point</td><td>1</td>" in html
    assert "No runs yet." in html
    response = admin_client.post(url)
    assert response.status_code == 302
    run_ = ActivationRun.objects.get(activation=activation)
    assert run_.status == "queued"
    response = admin_client.post(url, follow=True)  # a double click queues nothing
    assert "already queued or running" in response.content.decode()
    assert ActivationRun.objects.filter(activation=activation).count() == 1


def test_webhook_activation_sends_the_segment(
    make_person, make_activation, make_destination, receiver
):
    ann = make_person(email="ann@example.com", first_name="Ann", city="Berlin")
    destination = make_destination(kind=Destination.Kind.WEBHOOK, url=receiver.url)
    activation = make_activation(segment=berliners(), destination=destination)
    done = run(activation)
    assert done.status == "succeeded", done.error
    assert receiver.accepted()[0]["records"] == [
        {
            "action": "add",
            "cdp_id": pseudonymous_id(destination.secret, ann.pk),
            "email": "ann@example.com",
            "attributes": {"first_name": "Ann", "country": ""},
        }
    ]


def _grant_email_marketing(*people):
    for person in people:
        consent_record(
            profile=person,
            purpose="email_marketing",
            channel="email",
            status=ConsentStatus.GRANTED,
            source="test",
            captured_at=timezone.now() - timedelta(days=1),
        )


def test_consent_withdrawn_after_refresh_keeps_the_person_out_of_file_and_webhook(
    make_person, make_activation, make_destination, receiver
):
    ann = make_person(email="ann@example.com", first_name="Ann", city="Berlin")
    bob = make_person(email="bob@example.com", first_name="Bob", city="Berlin")
    make_person(email="cid@example.com", first_name="Cid", city="Berlin")  # never asked
    _grant_email_marketing(ann, bob)
    segment = berliners()
    assert segment.memberships.count() == 3
    # bob withdraws after the refresh, before the runs: the segment still lists him
    consent_record(
        profile=bob,
        purpose="email_marketing",
        channel="email",
        status=ConsentStatus.WITHDRAWN,
        source="form",  # a preference centre form
    )
    needs = {"consent_purpose": "email_marketing", "consent_channel": "email"}
    file_activation = make_activation(
        segment=segment, destination=make_destination(**needs), attributes=["first_name"]
    )
    hook = make_destination(kind=Destination.Kind.WEBHOOK, url=receiver.url, **needs)
    hook_activation = make_activation(segment=segment, destination=hook, attributes=[])

    done = run(file_activation)
    assert done.status == "succeeded", done.error
    secret = file_activation.destination.secret
    assert file_rows(done) == [
        ["cdp_id", "email", "first_name"],
        [pseudonymous_id(secret, ann.pk), "ann@example.com", "Ann"],
    ]
    assert done.excluded == {"restricted": 0, "no_consent": 2, "no_contact_point": 0}

    sent = run(hook_activation)
    assert sent.status == "succeeded", sent.error
    emails = [r["email"] for body in receiver.accepted() for r in body["records"]]
    assert emails == ["ann@example.com"]
    assert b"bob@example.com" not in b"".join(r["body"] for r in receiver.requests)


def test_gpc_opt_out_keeps_a_person_out_of_sale_destinations_only(
    make_person, make_activation, make_destination
):
    ann = make_person(email="ann@example.com", first_name="Ann", city="Berlin")
    bob = make_person(email="bob@example.com", first_name="Bob", city="Berlin")
    segment = berliners()
    assert consent_gpc_record(profile_ids=[ann.pk])["recorded"] == 1
    sale_run = run(
        make_activation(
            segment=segment,
            destination=make_destination(name="ad network", is_sale_or_sharing=True),
            attributes=[],
        )
    )
    plain_run = run(make_activation(segment=segment, attributes=[]))
    secret = sale_run.activation.destination.secret
    assert file_rows(sale_run)[1:] == [[pseudonymous_id(secret, bob.pk), "bob@example.com"]]
    assert sale_run.excluded["opted_out_of_sale"] == 1
    assert sorted(row[1] for row in file_rows(plain_run)[1:]) == [
        "ann@example.com",
        "bob@example.com",
    ]
    assert "opted_out_of_sale" not in plain_run.excluded


def test_restricted_and_suppressed_people_are_left_out_and_counted(make_person, make_activation):
    ann = make_person(email="ann@example.com", city="Berlin")
    bob = make_person(email="bob@example.com", city="Berlin")
    cid = make_person(email="cid@example.com", city="Berlin")
    segment = berliners()
    Restriction.objects.create(profile=bob)
    suppression_add(keys=[("email", "cid@example.com")])
    done = run(make_activation(segment=segment, attributes=[]))
    assert done.status == "succeeded", done.error
    secret = done.activation.destination.secret
    assert file_rows(done)[1:] == [[pseudonymous_id(secret, ann.pk), "ann@example.com"]]
    assert done.excluded == {"suppressed": 1, "restricted": 1, "no_contact_point": 0}
    assert not Profile.objects.filter(pk=cid.pk, restriction__isnull=False).exists()
