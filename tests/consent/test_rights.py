"""Each right end to end through the services: access, portability, erasure, rectification,
restriction, objection; and what happens to later input for an erased person."""

from __future__ import annotations

import json
import os
import zipfile

import pytest
from django.apps import apps
from django.db import models
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from activation.models import ActivationMember
from consent.hashing import identifier_hash
from consent.models import ConsentRecord, DataSubjectRequest, Restriction, Suppression
from consent.registry import PERSON_MODELS
from consent.selectors import consent_granted_profiles, consent_state
from consent.services.requests import request_complete, request_run
from consent.services.subject_data import uncovered_person_references
from profiles.models import Event, MergeLog, Profile, ProfileRedirect, RawRecord, SourceRecord
from segments.models import SegmentMembership, SegmentMembershipChange
from tests.conftest import shopify_csv, shopify_row

from .conftest import LENA_NEEDLES, _post


def archive_of(run) -> tuple[dict, dict[str, str]]:
    with zipfile.ZipFile(run.file.path) as archive:
        document = json.loads(archive.read("subject.json"))
        csvs = {
            name: archive.read(name).decode()
            for name in archive.namelist()
            if name.startswith("tables/")
        }
    return document, csvs


def test_the_people_fixture_is_what_the_tests_assume(people):
    lena = people["lena"]
    assert MergeLog.objects.filter(survivor=lena).count() == 1
    assert ProfileRedirect.objects.filter(profile=lena).count() == 1
    assert Event.objects.filter(profile=lena).count() == 3
    assert RawRecord.objects.filter(status="rejected").count() == 1


def test_access_export_finds_the_person_by_a_secondary_email(people, make_request, officer):
    lena, bob = people["lena"], people["bob"]
    request = make_request(type="access", requester_email="LENA.PRIVATE@example.org")

    run = request_run(request=request, actor=officer, sync=True)

    assert run.status == "succeeded"
    assert run.progress_percent == 100
    document, csvs = archive_of(run)
    tables = document["tables"]
    assert [p["id"] for p in tables["profiles"]] == [lena.pk]
    assert len(tables["profile_redirects"]) == 1
    assert len(tables["merge_history"]) == 1
    assert sorted(e["message_id"] for e in tables["events"]) == ["l-1", "l-2", "l-3"]
    assert {i["key"] for i in tables["identities"]} >= {
        "lena.vogt@example.de",
        "lena.private@example.org",
        "lena-user-7781",
        "anon-lena-5521",
        "+4915123456789",
    }
    assert len(tables["source_records"]) == 2  # the Shopify customer and the app user
    # Raw rows: the Shopify row, the rejected row that names her and the three messages.
    assert len(tables["raw_records"]) == 5
    assert {(c["purpose__key"], c["status"]) for c in tables["consent_history"]} == {
        ("email_marketing", "granted"),
        ("sale_sharing", "denied"),
    }
    assert "tables/events.csv" in csvs and "o-lena-1" in csvs["tables/events.csv"]
    everything = json.dumps(document) + "".join(csvs.values())
    assert "bob" not in everything.lower()
    assert f'"profile_id": {bob.pk},' not in json.dumps(document)
    assert "o-bob-1" not in everything
    assert run.counts["events"] == 3
    request.refresh_from_db()
    assert request.profile_ids == [lena.pk]

    request_complete(request=request, actor=officer)
    request.refresh_from_db()
    assert request.status == "completed"
    assert [e.action for e in request.events.all()] == [
        "received",
        "verified",
        "started",
        "export_queued",
        "export_succeeded",
        "completed",
    ]


def test_portability_export_is_the_same_machine_readable_archive(people, make_request, officer):
    request = make_request(type="portability", regime="ccpa")
    run = request_run(request=request, actor=officer, sync=True)
    document, csvs = archive_of(run)
    assert document["request"]["type"] == "portability"
    assert len(document["tables"]["events"]) == 3
    assert csvs["tables/profiles.csv"].splitlines()[0].startswith("id,")


def scan_for(needles) -> list[str]:
    """Every text and JSON column of every table, searched for each needle."""
    found = []
    for model in apps.get_models():
        text_fields = [
            f
            for f in model._meta.concrete_fields
            if isinstance(f, (models.CharField, models.TextField, models.JSONField))
        ]
        if not text_fields:
            continue
        condition = Q()
        annotations = {}
        for field in text_fields:
            if isinstance(field, models.JSONField):
                annotations[f"_scan_{field.attname}"] = Cast(field.attname, TextField())
                name = f"_scan_{field.attname}"
            else:
                name = field.attname
            for needle in needles:
                condition |= Q(**{f"{name}__icontains": needle})
        hits = model._default_manager.annotate(**annotations).filter(condition)
        for row in hits.values():
            found.append(f"{model._meta.label}: {row}")
    return found


def test_erasure_leaves_nothing_but_salted_hashes(
    people, sent_by_activation, make_request, officer, client
):
    """Lena is also in a segment and was sent by a file activation (sent_by_activation)."""
    lena, bob = people["lena"], people["bob"]
    assert scan_for(LENA_NEEDLES)  # the scan does find her before
    assert SegmentMembership.objects.filter(profile=lena).exists()
    assert ActivationMember.objects.filter(profile_id=lena.pk).exists()
    earlier = make_request(type="access")
    archive = request_run(request=earlier, actor=officer, sync=True).file.path
    request_complete(request=earlier, actor=officer)
    request = make_request(type="erasure", requester_email="lena.private@example.org")

    run = request_run(request=request, actor=officer, sync=True)
    request_complete(request=request, actor=officer)

    assert run.status == "succeeded"
    assert scan_for(LENA_NEEDLES) == []
    assert not Profile.objects.filter(pk=lena.pk).exists()
    assert run.counts["segment_memberships"] == 1
    assert not SegmentMembershipChange.objects.filter(profile_id=lena.pk).exists()
    assert list(SegmentMembership.objects.values_list("profile_id", flat=True)) == [bob.pk]
    assert set(Profile.objects.values_list("pk", flat=True)) == {bob.pk, people["bob_app"].pk}
    assert Event.objects.filter(properties__order_id="o-bob-1").count() == 1
    assert Suppression.objects.filter(
        id_type="email", key_hash=identifier_hash("email", "lena.vogt@example.de")
    ).exists()
    assert Suppression.objects.count() == 5  # two e-mails, phone, user id, anonymous id
    request.refresh_from_db()
    assert request.requester_email == "erased:" + request.requester_hash
    assert request.status == "completed"
    assert run.counts["profiles"] == 1 and run.counts["events"] == 3
    assert not os.path.exists(archive)  # the earlier access export is gone too
    assert run.counts["export_archives"] == 1
    earlier.refresh_from_db()
    assert earlier.requester_email.startswith("erased:")


def test_after_erasure_a_later_import_and_api_message_create_nothing(
    people, make_request, officer, client, import_csv
):
    request = make_request(type="erasure")
    request_run(request=request, actor=officer, sync=True)
    profiles_before = Profile.objects.count()
    records_before = SourceRecord.objects.count()

    run = import_csv(
        people["shop"],
        shopify_csv(
            shopify_row(
                **{"First Name": "Lena", "Last Name": "Vogt", "Email": " LENA.VOGT@example.de"}
            )
        ),
    )
    response = _post(
        client,
        people["web"],
        "/v1/identify",
        {
            "anonymousId": "anon-lena-5521",
            "traits": {"firstName": "Lena"},
            "messageId": "l-9",
        },
    )
    batch = _post(
        client,
        people["web"],
        "/v1/batch",
        {
            "batch": [
                {
                    "type": "track",
                    "userId": "lena-user-7781",
                    "event": "Viewed",
                    "messageId": "l-10",
                },
                {"type": "track", "userId": "someone-new", "event": "Viewed", "messageId": "n-1"},
            ]
        },
    )

    assert run.status == "succeeded"
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert batch.status_code == 200
    assert Profile.objects.count() == profiles_before + 1  # only someone-new
    assert SourceRecord.objects.count() == records_before + 1
    assert not Event.objects.filter(message_id__in=["l-9", "l-10"]).exists()
    suppressed = RawRecord.objects.filter(status="suppressed")
    assert suppressed.count() == 3
    assert {json.dumps(r.payload) for r in suppressed} == {"{}"}
    assert sum(Suppression.objects.values_list("hits", flat=True)) == 3
    assert scan_for(LENA_NEEDLES) == []


def test_every_table_that_references_a_person_is_reached(db):
    """A new model with a foreign key to a person's table is reached: registered or swept."""
    person_models = {apps.get_model(label) for label in PERSON_MODELS}
    uncovered = {(m._meta.label, fk.name) for m, fk in uncovered_person_references()}
    # Only tables without a handler appear here; they are exported and deleted by the sweep.
    for label, _fk in uncovered:
        assert apps.get_model(label) not in person_models
    # Merge suggestions (profiles) have no handler: both of their sides are swept.
    assert {
        ("profiles.MergeSuggestion", "left"),
        ("profiles.MergeSuggestion", "right"),
    } <= uncovered
    # Each swept table is one table of the export, whatever the number of its foreign keys.
    from consent.services.subject_data import Subject, sweep_collect

    assert set(sweep_collect(Subject())) == {label.lower() for label, _fk in uncovered}


def test_rectification_becomes_the_top_priority_value(people, make_request, officer):
    lena = people["lena"]
    request = make_request(
        type="rectification", corrections={"last_name": "Vogt-Berg", "city": "Hamburg"}
    )
    outcome = request_run(request=request, actor=officer)
    lena.refresh_from_db()
    assert (lena.last_name, lena.city, lena.first_name) == ("Vogt-Berg", "Hamburg", "Lena")
    assert outcome == {"profiles": 1, "attributes": 2, "identifiers": 0}
    record = SourceRecord.objects.get(pk=lena.attribute_sources["last_name"])
    assert (record.source.name, record.source.priority) == ("Privacy rectifications", 0)
    request_complete(request=request, actor=officer)
    assert DataSubjectRequest.objects.get(pk=request.pk).status == "completed"


def test_restriction_takes_the_profile_out_of_every_consent_gate(people, make_request, officer):
    lena = people["lena"]
    assert lena in consent_granted_profiles("email_marketing", "email")
    hooked = []
    from consent.registry import register_restriction_hook, registry

    register_restriction_hook(hooked.append)
    try:
        request = make_request(type="restriction")
        outcome = request_run(request=request, actor=officer)
    finally:
        registry.restriction_hooks.remove(hooked.append)
    assert outcome == {"profiles_restricted": 1}
    assert hooked == [[lena.pk]]
    assert Restriction.objects.get().profile_id == lena.pk
    assert lena not in consent_granted_profiles("email_marketing", "email")
    assert people["bob"] in consent_granted_profiles("email_marketing", "email")


def test_objection_records_an_opt_out_of_the_purposes(people, make_request, officer):
    lena = people["lena"]
    request = make_request(type="objection", regime="gdpr", purpose_keys=["email_marketing"])
    request_run(request=request, actor=officer)
    states = {(s["purpose"], s["channel"]): s for s in consent_state(profile_id=lena.pk)}
    assert states[("email_marketing", "all")]["status"] == "denied"
    assert states[("email_marketing", "all")]["source"] == "request"
    assert lena not in consent_granted_profiles("email_marketing", "email")
    assert ConsentRecord.objects.filter(source="request").count() == 1


@pytest.mark.parametrize("kind", ["access", "erasure"])
def test_an_unverified_request_is_not_actionable(people, make_request, officer, kind):
    from consent.services.requests import RequestError

    request = make_request(type=kind, verify="email")
    with pytest.raises(RequestError, match="Unverified"):
        request_run(request=request, actor=officer, sync=True)
    assert Profile.objects.filter(pk=people["lena"].pk).exists()


def test_merge_suggestions_are_exported_and_erased_through_the_sweep(people, make_request, officer):
    """Pending suggestions naming the person (on either side) are in the export and erased."""
    from profiles.models import MergeSuggestion

    lena, bob, bob_app = people["lena"], people["bob"], people["bob_app"]
    steward_pending = MergeSuggestion.objects.get()  # Lena's two profiles, made before the merge
    merged_away = ProfileRedirect.objects.get(profile=lena).old_id
    as_left = MergeSuggestion.objects.create(left=lena, right=bob, score=0.81, rule="name")
    as_right = MergeSuggestion.objects.create(left=bob_app, right=lena, score=0.78, rule="phone")
    # Made before the merge, naming Lena's app profile that was merged away.
    old_side = MergeSuggestion.objects.create(left=bob, right_id=merged_away, score=0.7, rule="x")
    others = MergeSuggestion.objects.create(left=bob, right=bob_app, score=0.9, rule="name")

    run = request_run(request=make_request(type="access"), actor=officer, sync=True)
    document, csvs = archive_of(run)
    exported = {row["id"] for row in document["tables"]["profiles.mergesuggestion"]}
    assert exported == {steward_pending.pk, as_left.pk, as_right.pk, old_side.pk}
    assert "tables/profiles.mergesuggestion.csv" in csvs

    request_run(request=make_request(type="erasure"), actor=officer, sync=True)

    assert list(MergeSuggestion.objects.values_list("id", flat=True)) == [others.pk]


def test_erasure_notice_hooks_are_told_who_was_erased(people, make_request, officer):
    """Activation registers a hook here to record a deletion notice per destination."""
    from consent.registry import register_erasure_notice_hook, registry

    notices = []

    def hook(*, subject, request):
        notices.append((subject.profile_ids, subject.old_profile_ids, request.pk))

    register_erasure_notice_hook(hook)
    try:
        request = make_request(type="erasure")
        lena_ids = [people["lena"].pk]
        old_ids = list(ProfileRedirect.objects.values_list("old_id", flat=True))
        request_run(request=request, actor=officer, sync=True)
    finally:
        registry.erasure_notice_hooks.remove(hook)
    assert notices == [(lena_ids, old_ids, request.pk)]


def test_erasure_also_removes_merges_into_a_profile_a_later_merge_absorbed(
    people, make_request, officer
):
    """Two more of Lena's profiles: one absorbed the other, then Lena's profile absorbed it.
    The first merge log keeps its survivor's id (now a redirect to Lena) and her data."""
    from profiles.services.merging import profiles_merge

    lena = people["lena"]
    middle = Profile.objects.create(first_name="Lena", last_name="Vogt", email="lv@example.net")
    oldest = Profile.objects.create(first_name="L.", last_name="Vogt", email="lv2@example.net")
    first = profiles_merge(survivor_id=middle.pk, other_ids=[oldest.pk], reason="fuzzy: a")
    profiles_merge(survivor_id=lena.pk, other_ids=[middle.pk], reason="fuzzy: b")
    assert MergeLog.objects.get(pk=first.pk).survivor_id == middle.pk

    request = make_request(type="erasure", requester_email="lena.private@example.org")
    run = request_run(request=request, actor=officer, sync=True)

    assert run.status == "succeeded"
    assert not MergeLog.objects.filter(pk=first.pk).exists()
    assert scan_for(LENA_NEEDLES) == []


def test_erasure_leaves_nothing_in_the_log_of_a_merge_that_was_undone(
    people, make_request, officer
):
    """The undone merge's log stays with the other person (its survivor) but held the erased
    person's fields in its snapshot."""
    from profiles.services.merging import profile_unmerge, profiles_merge

    lena, bob = people["lena"], people["bob"]
    survivor, other = sorted((lena.pk, bob.pk))
    log = profiles_merge(survivor_id=survivor, other_ids=[other], reason="steward")
    profile_unmerge(merge_log=log)
    erased = bob if other == bob.pk else lena
    email = "bob.ray@example.com" if erased is bob else "lena.vogt@example.de"
    assert scan_for([email])
    request = make_request(type="erasure", requester_email=email)

    run = request_run(request=request, actor=officer, sync=True)
    request_complete(request=request, actor=officer)

    assert run.status == "succeeded"
    assert scan_for([email]) == []
    assert not Profile.objects.filter(pk=erased.pk).exists()
