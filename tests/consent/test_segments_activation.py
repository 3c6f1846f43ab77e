"""Rights reaching segments and activation: restriction leaves every segment at once and the
next file; access lists the activations that sent the person; erasure keeps only what the next
run needs to send a removal notice carrying the pseudonymous id."""

from __future__ import annotations

import json

from activation.db import pseudonymous_id
from activation.models import Activation, ActivationMember, Destination, RunItem
from activation.services.files import resolve_export
from activation.services.runs import activation_run_create, activation_run_retry
from cdp.models import AuditEvent
from consent.services.requests import request_run
from segments.models import Segment, SegmentMembership, SegmentMembershipChange, SegmentRefresh
from segments.selectors import rules_counts, rules_preview
from segments.services import segment_create, segment_refresh_request
from tests.activation.conftest import Receiver

from .conftest import activation_run, file_rows
from .test_rights import archive_of


def berliners():
    rules = {
        "include": {
            "type": "group",
            "op": "and",
            "negate": False,
            "children": [
                {"type": "field", "field": "city", "operator": "equals", "value": "Berlin"}
            ],
        }
    }
    segment = segment_create(name="Berliners", rules=rules)
    assert segment_refresh_request(segment=segment, sync=True).status == "succeeded"
    return segment


def member_ids(segment) -> list[int]:
    return sorted(segment.memberships.values_list("profile_id", flat=True))


def test_restriction_leaves_every_segment_at_once_and_the_next_file(
    people, sent_by_activation, make_request, officer
):
    lena, bob = people["lena"], people["bob"]
    granted, activation = sent_by_activation["segment"], sent_by_activation["activation"]
    berlin = berliners()
    assert member_ids(berlin) == [lena.pk] and member_ids(granted) == sorted([lena.pk, bob.pk])

    outcome = request_run(request=make_request(type="restriction"), actor=officer)

    assert outcome == {"profiles_restricted": 1}
    # At once, without a refresh: she left both segments, recorded as membership changes.
    assert not SegmentMembership.objects.filter(profile=lena).exists()
    assert member_ids(granted) == [bob.pk]
    assert [(s.name, s.size) for s in Segment.objects.order_by("name")] == [
        ("Berliners", 0),
        ("E-mail marketing granted", 1),
    ]
    left = SegmentMembershipChange.objects.filter(profile=lena, kind="left")
    assert sorted(left.values_list("segment__name", flat=True)) == [
        "Berliners",
        "E-mail marketing granted",
    ]
    assert {
        (r.status, r.size, r.left_count) for r in SegmentRefresh.objects.filter(changes__in=left)
    } == {
        ("succeeded", 0, 1),
        ("succeeded", 1, 1),
    }
    assert AuditEvent.objects.filter(action="segment.restriction").count() == 2
    # A later refresh leaves her out although her rules still match, and the builder's live
    # count and preview (same candidates) agree with it.
    again = segment_refresh_request(segment=berlin, sync=True)
    assert (again.status, again.size, member_ids(berlin)) == ("succeeded", 0, [])
    assert rules_counts(berlin.rules)["total"] == 0
    assert rules_preview(berlin.rules) == []
    assert rules_counts(granted.rules)["total"] == 1
    # The next file of the changes-only activation removes her by pseudonymous id only.
    run = activation_run(activation)
    secret = activation.destination.secret
    assert file_rows(run)[1:] == [["remove", pseudonymous_id(secret, lena.pk), "", "", ""]]


def test_access_export_lists_the_segments_and_activations_that_sent_the_person(
    people, sent_by_activation, make_request, officer
):
    lena, bob = people["lena"], people["bob"]
    sent = sent_by_activation["run"]
    secret = sent_by_activation["destination"].secret

    run = request_run(request=make_request(type="access"), actor=officer, sync=True)

    document, csvs = archive_of(run)
    tables = document["tables"]
    [row] = tables["activations_sent"]
    assert {k: row[k] for k in ("activation_name", "destination_name", "destination_kind")} == {
        "activation_name": "Weekly newsletter",
        "destination_name": "Newsletter tool",
        "destination_kind": "file",
    }
    assert (row["profile_id"], row["run_id"]) == (lena.pk, sent.pk)
    assert row["pseudo_id"] == pseudonymous_id(secret, lena.pk)
    assert row["last_run_at"] is not None
    assert [m["segment__name"] for m in tables["segment_memberships"]] == [
        "E-mail marketing granted"
    ]
    assert [c["kind"] for c in tables["segment_membership_changes"]] == ["entered"]
    assert "tables/activations_sent.csv" in csvs
    assert "segments.segmentmembership" not in tables  # the segments handler covers it
    assert pseudonymous_id(secret, bob.pk) not in json.dumps(document)


def test_erasure_then_a_changes_only_run_sends_a_removal_with_only_the_pseudonymous_id(
    people, sent_by_activation, make_request, officer
):
    lena = people["lena"]
    activation = sent_by_activation["activation"]
    pseudo = pseudonymous_id(activation.destination.secret, lena.pk)

    earlier = sent_by_activation["run"]
    earlier_file = resolve_export(earlier.file)
    assert earlier_file is not None and "lena.vogt@example.de" in earlier_file.read_text()

    run = request_run(request=make_request(type="erasure"), actor=officer, sync=True)

    assert run.status == "succeeded"
    assert run.counts["segment_memberships"] == 1
    # The file that sent her is gone from the export storage; its run keeps its counts.
    assert run.counts["activation_export_files"] == 1
    assert not earlier_file.exists()
    earlier.refresh_from_db()
    assert (earlier.file, earlier.sent_count) == ("", 2)
    # The snapshot row stays: it carries only the pseudonymous id and a hash.
    kept = ActivationMember.objects.get(activation=activation, profile_id=lena.pk)
    assert kept.pseudo_id == pseudo
    notice = AuditEvent.objects.get(action="activation.erasure_notice")
    assert notice.target == f"activation.activation:{activation.pk}"
    assert notice.details["notice"] == "removal (pseudonymous id only) in the next run"

    after = activation_run(activation)

    assert file_rows(after)[1:] == [["remove", pseudo, "", "", ""]]
    assert "lena" not in (file_rows(after).__repr__()).lower()
    assert not ActivationMember.objects.filter(profile_id=lena.pk).exists()


def test_erasure_deletes_the_unsent_work_list_so_a_retry_never_sends_the_person(
    people, make_request, officer, settings, tmp_path
):
    from tests.consent.conftest import email_marketing_segment

    lena, bob = people["lena"], people["bob"]
    receiver = Receiver()
    try:
        destination = Destination.objects.create(
            name="CRM hook",
            kind=Destination.Kind.WEBHOOK,
            url=receiver.url,
            batch_size=1,
            max_attempts=1,
            backoff_seconds=0.01,
        )
        activation = Activation.objects.create(
            name="CRM sync",
            segment=email_marketing_segment(),
            destination=destination,
            attributes=["first_name"],
        )
        receiver.script = [(503, {})]  # the first batch (Lena) is a dead letter
        failed = activation_run_create(activation=activation, sync=True)
        failed.refresh_from_db()
        assert failed.status == "failed"
        assert sorted(RunItem.objects.values_list("profile_id", flat=True)) == sorted(
            [lena.pk, bob.pk]
        )

        erased = request_run(request=make_request(type="erasure"), actor=officer, sync=True)

        assert erased.counts["activation_pending_items"] == 1
        assert list(RunItem.objects.values_list("profile_id", flat=True)) == [bob.pk]
        retried = activation_run_retry(run=failed, sync=True)
        retried.refresh_from_db()
        assert retried.status == "succeeded", retried.error
        bodies = [json.loads(r["body"]) for r in receiver.requests]
        assert [r["email"] for r in bodies[-1]["records"]] == ["bob.ray@example.com"]
        assert all(b"lena" not in r["body"].lower() for r in receiver.requests[1:])
    finally:
        receiver.close()
