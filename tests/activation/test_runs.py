"""Runs end to end: file exports, webhook batches, changes-only deltas, snapshots."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json

import pytest
from django.db import connection

from activation.db import pseudonymous_id
from activation.models import (
    Activation,
    ActivationMember,
    ActivationRun,
    DeliveryBatch,
    Destination,
    RunItem,
)
from activation.selectors import activation_preview, activation_rows
from activation.services.files import resolve_export
from activation.services.runs import (
    ActivationError,
    activation_run_create,
    activation_run_execute,
    activation_run_retry,
)
from activation.webhook import SIGNATURE_HEADER, verify
from profiles.models import DataSource, Profile
from tests.activation.conftest import add_contact


def run_now(activation, member_ids) -> ActivationRun:
    run = ActivationRun.objects.create(activation=activation, mode=activation.mode)
    return activation_run_execute(run=run, member_ids=member_ids)


def retry(run, member_ids) -> ActivationRun:
    ActivationRun.objects.filter(pk=run.pk).update(status=ActivationRun.Status.QUEUED)
    return activation_run_execute(run=run, member_ids=member_ids)


def fetch_rows(activation, member_ids) -> list[tuple]:
    rows = activation_rows(activation=activation, member_ids=member_ids)
    with connection.cursor() as cursor:
        cursor.execute(rows.sql, rows.params)
        return cursor.fetchall()


def ids(*profiles):
    return Profile.objects.filter(pk__in=[p.pk for p in profiles]).values("pk")


def read_file(run) -> str:
    path = resolve_export(run.file)
    assert path is not None, run.file
    return path.read_text(encoding="utf-8")


def test_pseudonymous_id_in_sql_equals_hmac_of_profile_id(make_person, make_activation):
    ann = make_person(email="ann@example.com", first_name="Ann")
    activation = make_activation()
    rows = fetch_rows(activation, ids(ann))
    expected = hmac.new(
        activation.destination.secret.encode(), str(ann.pk).encode(), hashlib.sha256
    ).hexdigest()
    assert rows[0][1] == expected == pseudonymous_id(activation.destination.secret, ann.pk)


def test_full_csv_export_writes_every_eligible_member_with_chosen_columns(
    make_person, make_activation
):
    ann = make_person(email="Ann@Example.com", first_name='Ann, "Annie"', country="DE")
    bob = make_person(email="bob@example.com", first_name="Bob", country="FR")
    nobody = make_person(first_name="No Mail")  # no e-mail identity
    make_person(email="outsider@example.com", first_name="Out")  # not a member
    activation = make_activation(attributes=["first_name", "country"])
    run = run_now(activation, ids(ann, bob, nobody))
    assert run.status == "succeeded", run.error
    secret = activation.destination.secret
    rows = list(csv.reader(io.StringIO(read_file(run))))
    assert rows == [
        ["cdp_id", "email", "first_name", "country"],
        [pseudonymous_id(secret, ann.pk), "ann@example.com", 'Ann, "Annie"', "DE"],
        [pseudonymous_id(secret, bob.pk), "bob@example.com", "Bob", "FR"],
    ]
    assert (run.members_count, run.eligible_count, run.sent_count) == (3, 2, 2)
    assert run.excluded == {"restricted": 0, "no_contact_point": 1}
    assert run.file.startswith("crm/") and run.file.endswith(".csv")
    snapshot = set(ActivationMember.objects.values_list("profile_id", flat=True))
    assert snapshot == {ann.pk, bob.pk}
    assert set(run.timings) >= {"count", "write", "snapshot"}


def test_jsonl_export_with_custom_attribute(make_person, make_activation, make_destination):
    ann = make_person(email="ann@example.com", first_name="Ann", attributes={"tier": "gold"})
    destination = make_destination(file_format=Destination.FileFormat.JSONL, folder="")
    activation = make_activation(destination=destination, attributes=["first_name", "tier"])
    run = run_now(activation, ids(ann))
    lines = read_file(run).splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "cdp_id": pseudonymous_id(destination.secret, ann.pk),
            "email": "ann@example.com",
            "first_name": "Ann",
            "tier": "gold",
        }
    ]


def test_contact_point_is_taken_from_the_highest_priority_source(make_person, make_activation):
    low = DataSource.objects.create(name="shop", priority=50)
    high = DataSource.objects.create(name="crm-master", priority=1)
    ann = make_person(email="shop-ann@example.com", source=low)
    add_contact(ann, source=high, email="crm-ann@example.com")
    bob = make_person(email="bob@example.com", source=low)
    activation = make_activation(attributes=[])
    rows = {r[0]: r[2] for r in fetch_rows(activation, ids(ann, bob))}
    assert rows == {ann.pk: "crm-ann@example.com", bob.pk: "bob@example.com"}


def test_phone_contact_point_and_preview_counts(make_person, make_activation):
    ann = make_person(email="ann@example.com", phone="+4915112345678")
    bob = make_person(email="bob@example.com")
    activation = make_activation(contact_point=Activation.ContactPoint.PHONE)
    preview = activation_preview(activation=activation, member_ids=ids(ann, bob))
    assert preview == {
        "members": 2,
        "excluded": {"restricted": 0, "no_contact_point": 1},
        "excluded_total": 1,
        "eligible": 1,
    }
    run = run_now(activation, ids(ann, bob))
    assert "+4915112345678" in read_file(run)
    assert "bob@example.com" not in read_file(run)


def test_changes_only_file_contains_exactly_added_updated_and_removed(make_person, make_activation):
    ann = make_person(email="ann@example.com", first_name="Ann")
    bob = make_person(email="bob@example.com", first_name="Bob")
    cid = make_person(email="cid@example.com", first_name="Cid")
    activation = make_activation(mode=Activation.Mode.CHANGES, attributes=["first_name"])
    first = run_now(activation, ids(ann, bob, cid))
    assert (first.added_count, first.updated_count, first.removed_count) == (3, 0, 0)
    # bob changes, cid leaves, dan joins, ann is unchanged
    Profile.objects.filter(pk=bob.pk).update(first_name="Robert")
    dan = make_person(email="dan@example.com", first_name="Dan")
    second = run_now(activation, ids(ann, bob, dan))
    assert second.status == "succeeded", second.error
    secret = activation.destination.secret
    rows = list(csv.reader(io.StringIO(read_file(second))))
    assert rows == [
        ["action", "cdp_id", "email", "first_name"],
        ["update", pseudonymous_id(secret, bob.pk), "bob@example.com", "Robert"],
        ["add", pseudonymous_id(secret, dan.pk), "dan@example.com", "Dan"],
        ["remove", pseudonymous_id(secret, cid.pk), "", ""],
    ]
    assert (second.added_count, second.updated_count, second.removed_count) == (1, 1, 1)
    assert set(ActivationMember.objects.values_list("profile_id", flat=True)) == {
        ann.pk,
        bob.pk,
        dan.pk,
    }
    assert RunItem.objects.count() == 0  # the work list is dropped after success
    third = run_now(activation, ids(ann, bob, dan))
    assert (third.added_count, third.updated_count, third.removed_count) == (0, 0, 0)
    assert read_file(third) == "action,cdp_id,email,first_name\n"


def test_erased_profile_gets_a_removal_notice_with_only_its_pseudonymous_id(
    make_person, make_activation, receiver, make_destination
):
    destination = make_destination(kind=Destination.Kind.WEBHOOK, url=receiver.url)
    activation = make_activation(destination=destination, mode=Activation.Mode.CHANGES)
    ann = make_person(email="ann@example.com", first_name="Ann", country="DE")
    bob = make_person(email="bob@example.com", first_name="Bob")
    run_now(activation, ids(ann, bob))
    ann_pk = ann.pk
    ann.delete()  # erased
    run = run_now(activation, ids(bob))
    assert run.status == "succeeded", run.error
    last = receiver.accepted()[-1]
    assert last["records"] == [
        {"action": "remove", "cdp_id": pseudonymous_id(destination.secret, ann_pk)}
    ]
    assert "ann@example.com" not in receiver.requests[-1]["body"].decode()


def test_webhook_answering_500_twice_then_200_receives_each_batch_once_signed(
    make_person, make_activation, make_destination, receiver
):
    people = [make_person(email=f"p{i}@example.com", first_name=f"P{i}") for i in range(5)]
    destination = make_destination(
        kind=Destination.Kind.WEBHOOK, url=receiver.url, batch_size=2, max_attempts=3
    )
    activation = make_activation(destination=destination, attributes=["first_name"])
    receiver.script = [(500, {}), (500, {})]
    run = run_now(activation, ids(*people))
    assert run.status == "succeeded", run.error
    assert [r["status"] for r in receiver.requests] == [500, 500, 200, 200, 200]
    accepted = receiver.accepted()
    assert [b["batch"] for b in accepted] == [0, 1, 2]
    sent = [r["email"] for b in accepted for r in b["records"]]
    assert sent == [f"p{i}@example.com" for i in range(5)]
    keys = [r["headers"]["idempotency-key"] for r in receiver.requests]
    assert keys[:3] == [f"{run.public_id}-0"] * 3 and len(set(keys)) == 3
    for request in receiver.requests:
        assert verify(
            destination.secret, request["headers"][SIGNATURE_HEADER.lower()], request["body"]
        )
        assert not verify(
            "wrong-secret", request["headers"][SIGNATURE_HEADER.lower()], request["body"]
        )
    batch0 = DeliveryBatch.objects.get(run=run, number=0)
    assert (batch0.status, batch0.attempts, batch0.response_status) == ("sent", 3, 200)
    assert run.sent_count == 5 and run.progress_percent == 100


def test_dead_letter_then_retried_run_sends_only_the_unsent_batches(
    make_person, make_activation, make_destination, receiver
):
    people = [make_person(email=f"p{i}@example.com") for i in range(4)]
    destination = make_destination(
        kind=Destination.Kind.WEBHOOK, url=receiver.url, batch_size=2, max_attempts=2
    )
    activation = make_activation(destination=destination, attributes=[])
    receiver.script = [(200, {}), (503, {}), (503, {})]
    run = run_now(activation, ids(*people))
    assert run.status == "failed"
    assert "Batch 1 is a dead letter after 2 tries: HTTP 503" in run.error
    dead = DeliveryBatch.objects.get(run=run, number=1)
    assert (dead.status, dead.attempts, dead.response_status) == ("dead", 2, 503)
    assert ActivationMember.objects.count() == 0  # no snapshot until the run succeeds
    run = retry(run, ids(*people))
    assert run.status == "succeeded", run.error
    accepted = receiver.accepted()
    assert [b["batch"] for b in accepted] == [0, 1]  # batch 0 not sent again
    assert sorted(r["email"] for b in accepted for r in b["records"]) == [
        f"p{i}@example.com" for i in range(4)
    ]
    assert run.attempts == 2 and ActivationMember.objects.count() == 4


def test_client_error_is_not_retried(make_person, make_activation, make_destination, receiver):
    ann = make_person(email="ann@example.com")
    destination = make_destination(kind=Destination.Kind.WEBHOOK, url=receiver.url)
    activation = make_activation(destination=destination)
    receiver.script = [(400, {})]
    run = run_now(activation, ids(ann))
    assert run.status == "failed" and len(receiver.requests) == 1
    assert "HTTP 400" in run.error


def test_plain_http_to_a_public_host_is_refused(make_person, make_activation, make_destination):
    ann = make_person(email="ann@example.com")
    destination = make_destination(kind=Destination.Kind.WEBHOOK, url="http://example.com/hook")
    run = run_now(make_activation(destination=destination), ids(ann))
    assert run.status == "failed"
    assert "must use https://" in run.error


def test_run_create_refuses_a_second_open_run(make_activation):
    activation = make_activation()
    run = activation_run_create(activation=activation)
    assert run.status == "queued" and run.mode == "full"
    with pytest.raises(ActivationError, match="already queued or running"):
        activation_run_create(activation=activation)


def test_only_failed_runs_can_be_retried(make_activation):
    run = ActivationRun.objects.create(activation=make_activation(), mode="full")
    with pytest.raises(ActivationError, match="Only a failed run"):
        activation_run_retry(run=run)


def test_full_file_rerun_counts_changes_and_keeps_each_persons_id(make_person, make_activation):
    ann = make_person(email="ann@example.com", first_name="Ann")
    bob = make_person(email="bob@example.com", first_name="Bob")
    cid = make_person(email="cid@example.com", first_name="Cid")
    activation = make_activation(attributes=["first_name"])
    first = run_now(activation, ids(ann, bob, cid))
    assert (first.added_count, first.updated_count, first.removed_count) == (3, 0, 0)
    Profile.objects.filter(pk=bob.pk).update(first_name="Robert")
    dan = make_person(email="dan@example.com", first_name="Dan")
    second = run_now(activation, ids(ann, bob, dan))
    assert (second.added_count, second.updated_count, second.removed_count) == (1, 1, 1)
    rows = list(csv.reader(io.StringIO(read_file(second))))
    secret = activation.destination.secret
    assert [r[0] for r in rows[1:]] == [pseudonymous_id(secret, p.pk) for p in (ann, bob, dan)]
    assert rows[2] == [pseudonymous_id(secret, bob.pk), "bob@example.com", "Robert"]
    assert set(ActivationMember.objects.values_list("profile_id", flat=True)) == {
        ann.pk,
        bob.pk,
        dan.pk,
    }


def test_changes_only_webhook_sends_exactly_added_updated_and_removed(
    make_person, make_activation, make_destination, receiver
):
    ann = make_person(email="ann@example.com", first_name="Ann")
    bob = make_person(email="bob@example.com", first_name="Bob")
    cid = make_person(email="cid@example.com", first_name="Cid")
    destination = make_destination(kind=Destination.Kind.WEBHOOK, url=receiver.url, batch_size=2)
    activation = make_activation(
        destination=destination, mode=Activation.Mode.CHANGES, attributes=["first_name"]
    )
    run_now(activation, ids(ann, bob, cid))
    assert len(receiver.accepted()) == 2  # 3 adds in batches of 2
    receiver.requests.clear()
    Profile.objects.filter(pk=bob.pk).update(first_name="Robert")
    dan = make_person(email="dan@example.com", first_name="Dan")
    run = run_now(activation, ids(ann, bob, dan))
    assert run.status == "succeeded", run.error
    records = [r for body in receiver.accepted() for r in body["records"]]
    secret = destination.secret
    assert sorted(records, key=lambda r: r["cdp_id"]) == sorted(
        [
            {
                "action": "update",
                "cdp_id": pseudonymous_id(secret, bob.pk),
                "email": "bob@example.com",
                "attributes": {"first_name": "Robert"},
            },
            {
                "action": "add",
                "cdp_id": pseudonymous_id(secret, dan.pk),
                "email": "dan@example.com",
                "attributes": {"first_name": "Dan"},
            },
            {"action": "remove", "cdp_id": pseudonymous_id(secret, cid.pk)},
        ],
        key=lambda r: r["cdp_id"],
    )
    assert (run.added_count, run.updated_count, run.removed_count, run.sent_count) == (1, 1, 1, 3)
    run = run_now(activation, ids(ann, bob, dan))
    assert run.items_total == 0 and DeliveryBatch.objects.filter(run=run).count() == 0
