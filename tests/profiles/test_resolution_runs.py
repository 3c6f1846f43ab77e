"""Guards on exact links, full runs, suggestions, do-not-merge, exact unmerge, survivorship."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from cdp.models import AuditEvent
from profiles.models import (
    DoNotMerge,
    Event,
    Identity,
    MergeLog,
    MergeSuggestion,
    Profile,
    ProfileRedirect,
    ResolutionRun,
    Ruleset,
    SourceRecord,
)
from profiles.services.merging import profile_unmerge, profiles_merge, profiles_merge_many
from profiles.services.resolution import suggestions_upsert
from profiles.services.suggestions import merge_suggestion_accept, merge_suggestion_reject
from profiles.services.tracking import tracking_messages_ingest

HEADER = "customer_id,first_name,last_name,email,phone,birth_date,street,postcode,city,country\n"


def keys(source) -> dict[str, int]:
    return dict(
        SourceRecord.objects.filter(source=source).values_list("external_key", "profile_id")
    )


def test_shared_role_mailbox_never_links(make_source, import_csv):
    source = make_source()
    import_csv(
        source, HEADER + "C-1,Ann,Lee,info@acme.com,,,,,,\nC-2,Bob,Stone,INFO@acme.com,,,,,,\n"
    )
    assert len(set(keys(source).values())) == 2
    assert MergeSuggestion.objects.count() == 0


def test_shared_placeholders_never_link(make_source, import_csv):
    source = make_source()
    import_csv(
        source,
        HEADER + "C-1,Ann,Lee,test@test.com,0000000000,,,,,US\n"
        "C-2,Bob,Stone,TEST@test.com,0000000000,,,,,US\n",
    )
    assert len(set(keys(source).values())) == 2


def test_identifier_shared_by_more_records_than_the_cap_stops_linking(make_source, import_csv):
    Ruleset.objects.filter(is_active=True).update(identifier_cap=3)
    source = make_source()
    rows = "".join(f"C-{n},P{n},Q{n},shared@acme-corp.com,,,,,,\n" for n in range(5))
    import_csv(source, HEADER + rows[: len(rows) // 5 * 3])  # three records: one profile
    assert len(set(keys(source).values())) == 1
    import_csv(source, HEADER + rows)  # five: the value is over the cap and links no more
    ids = keys(source)
    assert ids["C-0"] == ids["C-1"] == ids["C-2"]
    assert len({ids["C-0"], ids["C-3"], ids["C-4"]}) == 3
    run = call_resolve(dry_run=True)
    assert run.report["overshared_identifiers"] == [{"type": "email", "records": 5}]


def test_full_run_takes_no_evidence_from_a_role_mailbox(make_source, import_csv):
    source = make_source()
    import_csv(
        source,
        HEADER + "C-1,Anna,Schmidt,info@acme.com,,,,,,\nC-2,Anna,Schmidt,info@acme.com,,,,,,\n",
    )
    run = call_resolve()

    assert (run.report["merges"], len(set(keys(source).values()))) == (0, 2)
    assert MergeSuggestion.objects.count() == 0  # as for exact links: the name alone is no pair


def test_full_run_takes_no_evidence_from_an_identifier_over_the_cap(make_source, import_csv):
    Ruleset.objects.filter(is_active=True).update(identifier_cap=3)
    source = make_source()
    rows = "".join(f"C-{n},Anna,Schmidt,shared@acme-corp.com,,,,,,\n" for n in range(5))
    import_csv(source, HEADER + rows)
    assert len(set(keys(source).values())) == 5

    run = call_resolve()

    assert (run.report["merges"], len(set(keys(source).values()))) == (0, 5)
    assert run.report["overshared_identifiers"] == [{"type": "email", "records": 5}]


def test_household_phone_with_conflicting_first_name_and_birth_date_stays_two(
    make_source, import_csv
):
    source = make_source()
    import_csv(
        source,
        HEADER + "C-1,Peter,Schulz,,030 1234567,1961-04-02,Hauptstr. 5,10115,Berlin,DE\n"
        "C-2,Lukas,Schulz,,+49 30 1234567,1994-11-23,Hauptstraße 5,10115,Berlin,DE\n",
    )
    ids = keys(source)
    assert ids["C-1"] != ids["C-2"]
    suggestion = MergeSuggestion.objects.get()
    assert (suggestion.left_id, suggestion.right_id) == (ids["C-1"], ids["C-2"])
    assert suggestion.field_scores["phone"]["similarity"] == 1.0
    assert suggestion.field_scores["birth_date"]["contribution"] == -5.0


def call_resolve(*, dry_run: bool = False) -> ResolutionRun:
    out = StringIO()
    args = ["--sync"] + (["--dry-run"] if dry_run else [])
    call_command("resolve_identities", *args, stdout=out)
    run = ResolutionRun.objects.order_by("-pk").first()
    assert "profiles before/after" in out.getvalue()
    return run


PAIR = (
    HEADER + "C-1,Lena,Müller,lena@example.de,,1990-03-14,Hauptstr. 5,10115,Köln,DE\n"
    "C-2,Lena,Mueller,lena.m@example.org,,1990-03-14,Hauptstraße 5,10115,Koeln,DE\n"
)


def test_full_run_merges_fuzzy_duplicates_and_dry_run_changes_nothing(make_source, import_csv):
    source = make_source()
    import_csv(source, PAIR)
    assert Profile.objects.count() == 2

    dry = call_resolve(dry_run=True)
    assert (dry.report["merges"], dry.report["profiles_after"], Profile.objects.count()) == (
        1,
        1,
        2,
    )

    run = call_resolve()
    assert run.status == "succeeded"
    assert run.report["profiles_before"] == 2 and run.report["profiles_after"] == 1
    assert Profile.objects.count() == 1
    assert MergeLog.objects.get().reason == "fuzzy: ruleset Default"


# The same person keyed twice: the CRM copy lacks the first name and has typos in last name,
# customer number and postcode; no match rule takes that, the typo rule does.
TYPOS = (
    HEADER + "4711023,Katharina,Schneider,,,1985-07-09,Hauptstr. 5,10115,Berlin,DE\n"
    "4711032,,Schnieder,,,1985-07-09,Hauptstr. 5,10151,Berlin,DE\n"
)


def test_full_run_merges_a_pair_with_only_typos_and_the_same_birth_date(make_source, import_csv):
    source = make_source()
    import_csv(source, TYPOS)
    assert Profile.objects.count() == 2
    run = call_resolve()
    assert (run.report["merges"], run.report["suggestions"]) == (1, 0)
    assert Profile.objects.count() == 1


def test_full_run_only_suggests_the_typo_pair_with_another_birth_date(make_source, import_csv):
    # The postcode written right this time, so the pair is still compared (blocking).
    other_date = TYPOS.replace(",1985-07-09,Hauptstr. 5,10151,", ",1991-02-03,Hauptstr. 5,10115,")
    assert other_date != TYPOS
    import_csv(make_source(), other_date)
    run = call_resolve()
    assert (run.report["merges"], run.report["suggestions"]) == (0, 1)
    assert Profile.objects.count() == 2


def test_a_ruleset_without_typo_threshold_only_suggests_the_typo_pair(make_source, import_csv):
    Ruleset.objects.filter(is_active=True).update(typo_threshold=None)
    import_csv(make_source(), TYPOS)
    run = call_resolve()
    assert (run.report["merges"], run.report["suggestions"]) == (0, 1)
    assert MergeSuggestion.objects.get().rule == ""


def snapshot_state():
    return {
        "profiles": sorted(
            Profile.objects.values_list(
                "pk",
                "first_name",
                "last_name",
                "email",
                "attributes",
                "attribute_sources",
                "created_at",
            )
        ),
        "records": sorted(SourceRecord.objects.values_list("pk", "profile_id")),
        "identities": sorted(Identity.objects.values_list("pk", "profile_id")),
        "events": sorted(Event.objects.values_list("pk", "profile_id")),
        "redirects": sorted(ProfileRedirect.objects.values_list("old_id", "profile_id")),
    }


def test_merge_then_unmerge_restores_both_exactly_and_no_run_redoes_it(
    make_source, import_csv, admin_user
):
    source = make_source()
    web = make_source(name="web", kind="api")
    import_csv(source, PAIR)
    tracking_messages_ingest(
        source=web,
        messages=[
            {
                "type": "identify",
                "messageId": "m1",
                "userId": "u1",
                "traits": {"email": "lena.m@example.org"},
            },
            {"type": "track", "messageId": "m2", "userId": "u1", "event": "Order Completed"},
        ],
    )
    before = snapshot_state()
    left, right = sorted(Profile.objects.values_list("pk", flat=True))
    suggestion = MergeSuggestion.objects.create(left_id=left, right_id=right, score=20.0)

    log = merge_suggestion_accept(suggestion=suggestion, actor=admin_user)
    assert Profile.objects.count() == 1
    assert Event.objects.filter(profile_id=left).count() == 2

    restored = profile_unmerge(merge_log=log, actor=admin_user)

    assert [p.pk for p in restored] == [right]
    assert snapshot_state() == before
    assert DoNotMerge.objects.filter(left_id=left, right_id=right).exists()
    assert AuditEvent.objects.filter(action="profile.unmerge").count() == 1
    run = call_resolve()
    assert (run.report["merges"], run.report["suggestions"]) == (0, 0)
    assert Profile.objects.count() == 2
    assert MergeSuggestion.objects.filter(status="pending").count() == 0


THREE = HEADER + "C-1,Ann,Lee,a@x.com,,,,,Aachen,\nC-2,Bob,Stone,b@x.com,,,,,Bonn,\n"


def test_undoing_the_earlier_of_two_merges_into_one_survivor_leaves_each_its_own_values(
    make_source, import_csv
):
    source = make_source()
    import_csv(source, THREE + "C-3,Cid,Cole,c@x.com,,,,,Celle,\n")
    ids = keys(source)
    a, b, c = ids["C-1"], ids["C-2"], ids["C-3"]
    first = profiles_merge(survivor_id=a, other_ids=[b], reason="t")
    second = profiles_merge(survivor_id=a, other_ids=[c], reason="t")

    profile_unmerge(merge_log=first)  # not the later one first: both logs have survivor a
    held = set(SourceRecord.objects.filter(profile_id=a).values_list("pk", flat=True))
    assert set(Profile.objects.get(pk=a).attribute_sources.values()) <= held
    profile_unmerge(merge_log=second)
    names = dict(Profile.objects.values_list("pk", "first_name"))
    assert names == {a: "Ann", b: "Bob", c: "Cid"}
    assert Profile.objects.get(pk=a).attributes["email"] == "a@x.com"


def test_unmerge_after_a_reimport_gives_the_restored_profile_its_identities_and_values(
    make_source, import_csv
):
    source = make_source()
    import_csv(source, THREE)
    ids = keys(source)
    a, b = ids["C-1"], ids["C-2"]
    log = profiles_merge(survivor_id=a, other_ids=[b], reason="t")
    # C-2 changed (its identities are written again, on the survivor); C-9 is new.
    import_csv(source, THREE.replace("Bonn", "Berlin") + "C-9,Ann,Lee,a@x.com,,,,,Aachen,\n")

    profile_unmerge(merge_log=log)

    owners = dict(Identity.objects.values_list("raw_value", "profile_id").order_by("pk"))
    assert owners == {"C-1": a, "a@x.com": a, "C-9": a, "C-2": b, "b@x.com": b}
    assert Profile.objects.get(pk=b).city == "Berlin"
    assert keys(source) == {"C-1": a, "C-2": b, "C-9": a}


def test_rejected_suggestion_is_never_suggested_again(make_source, import_csv, admin_user):
    Ruleset.objects.filter(is_active=True).update(auto_threshold=99)
    source = make_source()
    import_csv(source, PAIR)
    call_resolve()
    suggestion = MergeSuggestion.objects.get()
    merge_suggestion_reject(suggestion=suggestion, actor=admin_user)
    with pytest.raises(Exception, match="no longer pending"):
        merge_suggestion_reject(suggestion=suggestion, actor=admin_user)

    call_resolve()
    assert MergeSuggestion.objects.filter(status="pending").count() == 0
    assert Profile.objects.count() == 2


def test_do_not_merge_holds_after_one_side_is_merged_into_an_older_profile(
    make_source, import_csv, admin_user
):
    source = make_source()
    import_csv(source, HEADER + "C-0,Zoe,Quist,zoe@example.com,,,,,,\n" + PAIR[len(HEADER) :])
    ids = keys(source)
    older, lena, other_lena = ids["C-0"], ids["C-1"], ids["C-2"]
    suggestion = MergeSuggestion.objects.create(left_id=lena, right_id=other_lena, score=20.0)
    merge_suggestion_reject(suggestion=suggestion, actor=admin_user)
    profiles_merge(survivor_id=older, other_ids=[lena], reason="steward")  # lena is now #older

    # A record with one's e-mail and the other's customer number joins one; no suggestion.
    import_csv(make_source(), HEADER + "C-2,Lena,Müller,lena@example.de,,,,,,\n")
    assert MergeSuggestion.objects.filter(status="pending").count() == 0
    item = {"left": older, "right": other_lena, "score": 9.0, "fields": {}, "rule": ""}
    assert suggestions_upsert(suggestions=[item]) == 0  # the set-based path on PostgreSQL too
    run = call_resolve()

    assert (run.report["merges"], run.report["suggestions"]) == (0, 0)
    assert keys(source) == {"C-0": older, "C-1": older, "C-2": other_lena}


def test_late_older_identify_never_overwrites_a_newer_value(make_source):
    web = make_source(name="web", kind="api")
    new = {
        "type": "identify",
        "messageId": "new",
        "userId": "u1",
        "timestamp": "2026-05-01T10:00:00Z",
        "traits": {"address": {"city": "Berlin"}},
    }
    old = {
        "type": "identify",
        "messageId": "old",
        "userId": "u1",
        "timestamp": "2026-01-01T10:00:00Z",
        "traits": {"address": {"city": "Bonn"}},
    }
    tracking_messages_ingest(source=web, messages=[new])
    tracking_messages_ingest(source=web, messages=[old])
    assert Profile.objects.get().city == "Berlin"


def test_most_recent_strategy_across_sources_uses_event_time(make_source, import_csv):
    Ruleset.objects.filter(is_active=True).update(survivorship_overrides={"city": "most_recent"})
    crm = make_source(name="crm", priority=1)
    web = make_source(name="web", kind="api", priority=100)
    import_csv(crm, "customer_id,email,city\nC-1,ann@example.com,Bonn\n")
    tracking_messages_ingest(
        source=web,
        messages=[
            {
                "type": "identify",
                "messageId": "m",
                "userId": "u1",
                "timestamp": "2099-01-01T00:00:00Z",
                "traits": {"email": "ann@example.com", "address": {"city": "Berlin"}},
            }
        ],
    )
    profile = Profile.objects.get()
    web_record = SourceRecord.objects.get(source=web)
    assert (profile.city, profile.attribute_sources["city"]) == ("Berlin", web_record.pk)
    # Without the override, the better-priority source wins.
    Ruleset.objects.filter(is_active=True).update(survivorship_overrides={})
    from profiles.services.survivorship import profile_attributes_refresh

    profile_attributes_refresh(profile_ids=[profile.pk])
    assert Profile.objects.get().city == "Bonn"


def test_bulk_merge_matches_single_merges_and_unmerges_exactly(make_source, import_csv):
    source = make_source()
    rows = "".join(
        f"C-{n},First{n},Last{n},person{n}@example.com,,,,,{'Bonn' if n == 4 else ''},\n"
        for n in range(1, 8)
    )
    import_csv(source, HEADER + rows)
    p = keys(source)
    p1, p2, p3, p4, p5, p6, p7 = (p[f"C-{n}"] for n in range(1, 8))
    Event.objects.create(
        profile_id=p4, source=source, message_id="m1", type="track", timestamp=timezone.now()
    )
    profiles_merge(survivor_id=p5, other_ids=[p7], reason="exact")  # redirect p7 -> p5
    before = snapshot_state()
    record_of = {pk: SourceRecord.objects.get(external_key=key).pk for key, pk in p.items()}

    result = profiles_merge_many(
        clusters=[[p2, p1], [p5, p3, p4], [p2, p5], [p6, 10**9]], reason="fuzzy: bench"
    )

    assert (result.merges, result.absorbed) == (2, 3)
    assert result.skipped == [[p2, p5], [p6, 10**9]]  # overlaps the first two; a gone profile
    assert sorted(Profile.objects.values_list("pk", flat=True)) == [p1, p3, p6]
    assert dict(ProfileRedirect.objects.values_list("old_id", "profile_id")) == {
        p2: p1,
        p4: p3,
        p5: p3,
        p7: p3,
    }
    assert Event.objects.get().profile_id == p3
    logs = {log.survivor_id: log for log in MergeLog.objects.filter(reason="fuzzy: bench")}
    assert logs[p3].merged_ids == [p4, p5]
    assert [e["source_record_ids"] for e in logs[p3].snapshot] == [
        [record_of[p4]],
        [record_of[p5]]
        + list(SourceRecord.objects.filter(external_key="C-7").values_list("pk", flat=True)),
    ]
    assert logs[p3].snapshot[1]["redirect_ids"] == [p7]
    survivor = Profile.objects.get(pk=p3)  # survivorship ran: p3 had no city, p4 had one
    assert (survivor.attributes["city"], survivor.attribute_sources["city"]) == (
        "Bonn",
        record_of[p4],
    )
    assert AuditEvent.objects.filter(action="profile.merge", target=f"profile:{p3}").count() == 1

    for log in logs.values():
        profile_unmerge(merge_log=log)
    assert snapshot_state() == before
