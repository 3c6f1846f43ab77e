"""Edge cases of the bulk paths (imports, /v1/batch, bulk merges), on SQLite and PostgreSQL.

An adversarial review of the three performance rewrites: each test states a result the old,
per-row paths gave, and checks the fast path still gives it.
"""

from __future__ import annotations

import pytest

from cdp.bulk import column_by_pairs
from consent.models import ConsentRecord, ConsentSource
from consent.services.suppression import suppression_add
from profiles.models import (
    Identity,
    MergeLog,
    MergeSuggestion,
    Profile,
    RawRecord,
    ResolutionRun,
    Ruleset,
    SourceRecord,
)
from profiles.services.mapping import FieldSpec, RowError, RowMapper
from profiles.services.merging import (
    MergeError,
    profile_unmerge,
    profiles_merge,
    profiles_merge_many,
)
from profiles.services.resolution import resolution_run_create
from profiles.services.survivorship import (
    MOST_RECENT,
    SOURCE_PRIORITY,
    survivor_values,
)
from profiles.services.tracking import tracking_messages_ingest
from tests.conftest import shopify_csv, shopify_row

HEADER = "customer_id,first_name,last_name,email,phone\n"


def counts(run) -> tuple[int, int, int, int]:
    run.refresh_from_db()
    return run.created_count, run.updated_count, run.unchanged_count, run.rejected_count


def graph() -> dict:
    """Everything resolution wrote, by natural keys (comparable across runs)."""
    return {
        "profiles": Profile.objects.count(),
        "records": sorted(
            SourceRecord.objects.values_list("source_id", "external_key", "profile_id"), key=repr
        ),
        "identities": sorted(
            Identity.objects.values_list("source_record_id", "type", "key", "profile_id"),
            key=repr,
        ),
    }


# --- imports: re-import, overlap, cross-source joins ---------------------------------------


def test_reimporting_the_same_file_changes_nothing_and_counts_every_row_unchanged(
    make_source, import_csv
):
    source = make_source()
    content = HEADER + (
        "C-1,Ann,Lee,ann@example.com,+4915112345671\n"
        "C-2,Bob,Ray,bob@example.com,\n"
        "C-3,Cy,Day,,+4915112345673\n"
    )
    first = import_csv(source, content)
    assert counts(first) == (3, 0, 0, 0)
    before = graph()

    again = import_csv(source, content)

    assert counts(again) == (0, 0, 3, 0)
    assert graph() == before
    assert Profile.objects.count() == 3
    assert Identity.objects.count() == 7  # 3 customer ids, 2 e-mails, 2 phones
    assert RawRecord.objects.filter(import_run=again, status="accepted").count() == 3


def test_an_overlapping_file_updates_changed_rows_adds_new_ones_and_keeps_profiles(
    make_source, import_csv
):
    source = make_source()
    import_csv(
        source,
        HEADER + "C-1,Ann,Lee,ann@example.com,\nC-2,Bob,Ray,bob@example.com,\n",
    )
    profile_of = dict(SourceRecord.objects.values_list("external_key", "profile_id"))

    run = import_csv(
        source,
        HEADER
        + "C-2,Bob,Ray,bob@example.com,\n"  # unchanged
        + "C-1,Anna,Lee,ann@example.com,\n"  # changed first name
        + "C-3,Cy,Day,cy@example.com,\n",  # new
    )

    assert counts(run) == (1, 1, 1, 0)
    assert Profile.objects.count() == 3
    after = dict(SourceRecord.objects.values_list("external_key", "profile_id"))
    assert (after["C-1"], after["C-2"]) == (profile_of["C-1"], profile_of["C-2"])
    assert Profile.objects.get(pk=after["C-1"]).first_name == "Anna"
    # One e-mail identity per record: the changed record's identities were replaced, not added.
    emails = Identity.objects.filter(type="email")
    assert sorted(emails.values_list("key", "profile_id")) == sorted(
        [
            ("ann@example.com", after["C-1"]),
            ("bob@example.com", after["C-2"]),
            ("cy@example.com", after["C-3"]),
        ]
    )


def test_a_row_whose_email_is_known_from_another_source_joins_that_profile(make_source, import_csv):
    crm = make_source(name="crm", priority=1)
    shop = make_source(name="shop", priority=50)
    import_csv(crm, HEADER + "C-1,Ann,Lee,Ann@Example.com,\n")
    ann = Profile.objects.get()

    import_csv(
        shop, "customer_id,first_name,email\nS-9,Ann,ann@example.COM\nS-10,Zed,z@example.com\n"
    )

    assert Profile.objects.count() == 2
    shop_record = SourceRecord.objects.get(source=shop, external_key="S-9")
    assert shop_record.profile_id == ann.pk
    assert set(
        Identity.objects.filter(key="ann@example.com").values_list("profile_id", flat=True)
    ) == {ann.pk}
    ann.refresh_from_db()
    # Survivorship ran for the joined profile (no fast path for it): the better source's name.
    assert (ann.first_name, ann.attribute_sources["first_name"]) == (
        "Ann",
        SourceRecord.objects.get(source=crm).pk,
    )


def test_two_new_rows_in_one_batch_sharing_a_phone_become_one_profile(make_source, import_csv):
    source = make_source(default_region="DE")
    run = import_csv(
        source,
        "first_name,last_name,email,phone\n"
        "Ann,Lee,ann@example.com,+49 151 12345678\n"
        "Ann,Lee,,0151 12345678\n",
    )
    assert counts(run) == (2, 0, 0, 0)
    profiles = set(SourceRecord.objects.values_list("profile_id", flat=True))
    assert len(profiles) == 1 and Profile.objects.count() == 1
    profile = Profile.objects.get()
    assert (profile.email, profile.first_name) == ("ann@example.com", "Ann")
    assert set(Identity.objects.values_list("profile_id", flat=True)) == {profile.pk}


def test_a_new_row_sharing_a_key_with_a_row_of_a_later_batch_joins_it(
    make_source, import_csv, monkeypatch
):
    """Batches are resolved one after another: the second batch's row meets the first's
    profile (written by the fast path) through its identity."""
    from profiles.services import imports

    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    source = make_source()
    import_csv(
        source,
        HEADER
        + "C-1,Ann,Lee,ann@example.com,\n"
        + "C-2,Bob,Ray,bob@example.com,\n"
        + "C-3,Ann,Lee,ann@example.com,\n",
    )
    profile_of = dict(SourceRecord.objects.values_list("external_key", "profile_id"))
    assert profile_of["C-3"] == profile_of["C-1"] != profile_of["C-2"]
    assert Profile.objects.count() == 2


# --- the mapper's memo ---------------------------------------------------------------------


def test_memo_keeps_an_error_per_column_and_a_value_for_the_same_text_elsewhere():
    mapper = RowMapper(
        [
            FieldSpec("email", "email", is_key=True),
            FieldSpec("born", "birth_date", date_format="%d.%m.%Y"),
            FieldSpec("signed", "signed_up_at", date_format="%m.%d.%Y"),
        ]
    )
    # 13.01.2024 is a date day-first, not month-first.
    first = mapper.map({"email": "a@example.com", "born": "13.01.2024", "signed": ""})
    assert first.attributes["birth_date"] == "2024-01-13"
    with pytest.raises(RowError) as error:
        mapper.map({"email": "b@example.com", "born": "", "signed": "13.01.2024"})
    assert str(error.value).startswith("signed:")
    # The cached error is the signed column's; the same text in the born column still maps.
    again = mapper.map({"email": "c@example.com", "born": "13.01.2024", "signed": "01.13.2024"})
    assert (again.attributes["birth_date"], again.attributes["signed_up_at"]) == (
        "2024-01-13",
        "2024-01-13",
    )
    with pytest.raises(RowError) as repeated:
        mapper.map({"email": "d@example.com", "born": "", "signed": "13.01.2024"})
    assert (str(repeated.value), repeated.value.reason) == (str(error.value), error.value.reason)


def test_memo_error_in_an_import_rejects_each_row_with_the_value_and_maps_the_others(
    make_source, import_csv
):
    source = make_source()
    run = import_csv(
        source,
        "email,birth_date,first_name\n"
        "a@example.com,not a date,Ann\n"
        "b@example.com,1990-02-03,Bob\n"
        "c@example.com,not a date,Cy\n"
        "d@example.com,1990-02-03,Dee\n",
    )
    assert counts(run) == (2, 0, 0, 2)
    rejected = RawRecord.objects.filter(import_run=run, status="rejected").order_by("row_number")
    assert [r.row_number for r in rejected] == [1, 3]
    assert rejected[0].error == rejected[1].error != ""
    assert sorted(Profile.objects.values_list("first_name", "attributes__birth_date")) == [
        ("Bob", "1990-02-03"),
        ("Dee", "1990-02-03"),
    ]


# --- ids drawn from the sequence, then the ORM -----------------------------------------------


def test_ids_reserved_by_copy_leave_the_sequence_ahead_for_orm_inserts(make_source, import_csv):
    source = make_source()
    import_csv(source, HEADER + "".join(f"C-{n},N{n},L{n},p{n}@example.com,\n" for n in range(5)))
    record = SourceRecord.objects.order_by("-pk").first()
    top = {
        "profile": Profile.objects.order_by("-pk").first().pk,
        "record": record.pk,
        "identity": Identity.objects.order_by("-pk").first().pk,
    }

    profile = Profile.objects.create()
    other = SourceRecord.objects.create(source=source, external_key="orm-1", profile=profile)
    identity = Identity.objects.create(
        type="email", raw_value="x@example.com", key="x@example.com", source_record=other
    )

    assert profile.pk > top["profile"]
    assert other.pk > top["record"]
    assert identity.pk > top["identity"]
    # And the next import after ORM inserts does not collide either.
    run = import_csv(source, HEADER + "C-9,Nine,L,nine@example.com,\n")
    assert counts(run) == (1, 0, 0, 0)
    assert SourceRecord.objects.get(external_key="C-9").pk > other.pk


# --- suppression list ----------------------------------------------------------------------


def test_an_erased_person_is_suppressed_even_when_every_row_would_take_the_fast_path(
    make_source, import_csv
):
    suppression_add(keys=[("phone", "+4915112345670")])
    source = make_source()
    run = import_csv(
        source,
        HEADER + "C-1,Eve,E,,+49 151 12345670\nC-2,Ann,Lee,ann@example.com,\n",
    )
    run.refresh_from_db()
    assert (run.created_count, run.suppressed_count) == (1, 1)
    assert list(Profile.objects.values_list("first_name", flat=True)) == ["Ann"]
    assert not Identity.objects.filter(key="+4915112345670").exists()
    suppressed = RawRecord.objects.get(import_run=run, status="suppressed")
    assert (suppressed.row_number, suppressed.payload) == (1, {})


# --- tracking API ----------------------------------------------------------------------------


def _batch() -> list[dict]:
    return [
        {
            "type": "page",
            "messageId": "b-1",
            "anonymousId": "anon-1",
            "name": "Home",
            "timestamp": "2024-05-01T10:00:00Z",
        },
        {
            "type": "identify",
            "messageId": "b-2",
            "anonymousId": "anon-1",
            "userId": "u-1",
            "traits": {"email": "lena@example.de", "firstName": "Lena"},
            "timestamp": "2024-05-01T10:01:00Z",
        },
        {
            "type": "track",
            "messageId": "b-3",
            "anonymousId": "anon-1",
            "event": "Signed Up",
            "timestamp": "2024-05-01T10:02:00Z",
        },
    ]


def _tracking_state() -> dict:
    return {
        **graph(),
        "events": sorted(event_values(), key=repr),
        "raw": sorted(
            RawRecord.objects.values_list("message_id", "status", "source_record_id"), key=repr
        ),
        "profile": sorted(Profile.objects.values_list("pk", "email", "first_name")),
    }


def event_values():
    from profiles.models import Event

    return Event.objects.values_list("message_id", "profile_id", "source_record_id")


def test_anonymous_visitor_identified_in_the_same_batch_then_the_batch_retried(make_source):
    source = make_source(name="web", kind="api")

    first = tracking_messages_ingest(source=source, messages=_batch())
    state = _tracking_state()
    second = tracking_messages_ingest(source=source, messages=_batch())

    assert (first["accepted"], first["duplicates"]) == (3, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 3)
    assert _tracking_state() == state
    profile = Profile.objects.get()
    assert (profile.email, profile.first_name) == ("lena@example.de", "Lena")
    assert set(event_values().values_list("profile_id", flat=True)) == {profile.pk}
    assert RawRecord.objects.count() == 3


def test_setting_profiles_by_record_rewrites_only_the_rows_whose_profile_differs(make_source):
    from profiles.models import Event

    source = make_source(name="web", kind="api")
    tracking_messages_ingest(source=source, messages=_batch())
    profile = Profile.objects.get()
    record = SourceRecord.objects.get(external_key="anon:anon-1")  # events b-1 and b-3
    other = Profile.objects.create()
    pairs = [(record.pk, profile.pk)]

    assert column_by_pairs(Event, "profile_id", "source_record_id", pairs) == 0
    assert column_by_pairs(Identity, "profile_id", "source_record_id", pairs) == 0
    Event.objects.filter(message_id="b-3").update(profile=other)
    assert column_by_pairs(Event, "profile_id", "source_record_id", pairs) == 1
    assert set(event_values().values_list("profile_id", flat=True)) == {profile.pk}
    Event.objects.filter(message_id="b-1").update(profile=None)
    assert column_by_pairs(Event, "profile_id", "source_record_id", pairs) == 1
    assert column_by_pairs(Event, "profile_id", "source_record_id", [(record.pk, None)]) == 2
    assert dict(event_values().values_list("message_id", "profile_id")) == {
        "b-1": None,
        "b-2": profile.pk,
        "b-3": None,
    }


def test_a_retry_with_one_new_message_applies_only_that_one(make_source):
    source = make_source(name="web", kind="api")
    tracking_messages_ingest(source=source, messages=_batch())
    profile = Profile.objects.get()
    extra = {
        "type": "identify",
        "messageId": "b-4",
        "userId": "u-1",
        "traits": {"lastName": "Vogt"},
        "timestamp": "2024-05-01T10:03:00Z",
    }

    result = tracking_messages_ingest(source=source, messages=[*_batch(), extra])

    assert (result["accepted"], result["duplicates"]) == (1, 3)
    assert Profile.objects.get().pk == profile.pk
    assert Profile.objects.get().last_name == "Vogt"
    assert RawRecord.objects.count() == 4


# --- consent through a bulk merge and its unmerge ------------------------------------------


def _consent_rows() -> list[tuple]:
    return sorted(
        ConsentRecord.objects.values_list(
            "pk", "profile_id", "purpose__key", "channel__key", "status", "source"
        )
    )


def test_import_consent_survives_a_bulk_merge_and_comes_back_exactly_on_unmerge(
    make_source, import_csv
):
    shop = make_source(name="shop", preset="shopify")
    import_csv(
        shop,
        shopify_csv(
            shopify_row(**{"Email": "yes@example.com", "First Name": "Ann",
                           "Accepts Email Marketing": "yes"}),
            shopify_row(**{"Email": "no@example.com", "First Name": "Ann",
                           "Accepts Email Marketing": "no"}),
            shopify_row(**{"Email": "other@example.com", "First Name": "Bob",
                           "Accepts Email Marketing": "yes"}),
        ),
    )  # fmt: skip
    by_email = dict(Profile.objects.values_list("email", "pk"))
    yes, no, other = (
        by_email[e] for e in ("yes@example.com", "no@example.com", "other@example.com")
    )
    before = _consent_rows()
    assert len(before) == 3

    result = profiles_merge_many(clusters=[[yes, no]], reason="fuzzy: test")

    assert (result.merges, result.absorbed) == (1, 1)
    survivor = min(yes, no)
    merged = ConsentRecord.objects.filter(profile_id=survivor, purpose__key="email_marketing")
    # Both histories moved; the opt-out is re-stated as the most restrictive state.
    statuses = sorted(merged.values_list("source", "status"))
    assert ("import", "denied") in statuses and ("import", "granted") in statuses
    assert ConsentRecord.objects.filter(profile_id=other).count() == 1

    profile_unmerge(merge_log=MergeLog.objects.get(reason="fuzzy: test"))

    assert _consent_rows() == before
    assert not ConsentRecord.objects.filter(source=ConsentSource.MERGE).exists()


# --- full runs -----------------------------------------------------------------------------


FUZZY = (
    "customer_id,first_name,last_name,email,birth_date,street,postcode,city\n"
    "C-1,Katharina,Schneider,k.schneider@example.com,1985-07-09,Hauptstr. 5,10115,Berlin\n"
    "C-2,Katharina,Schneider,kathi@example.com,1985-07-09,Hauptstr. 5,10115,Berlin\n"
    "C-3,Jonas,Becker,jonas@example.com,1990-01-02,Ring 1,50667,Köln\n"
    "C-4,Jonas,Bekker,jb@example.com,,Ring 1,50667,Köln\n"
    "C-5,Mia,Wolf,mia@example.com,1970-03-03,Weg 9,80331,München\n"
)


def _full_run():
    ruleset = Ruleset.objects.get(is_active=True)
    return resolution_run_create(ruleset=ruleset, sync=True)


def test_a_second_full_run_merges_nothing_and_suggests_nothing_new(make_source, import_csv):
    import_csv(make_source(), FUZZY)
    first = _full_run()
    first.refresh_from_db()
    assert first.status == ResolutionRun.Status.SUCCEEDED
    profiles = sorted(Profile.objects.values_list("pk", "attributes"))
    suggestions = sorted(MergeSuggestion.objects.values_list("left_id", "right_id", "status"))
    logs = MergeLog.objects.count()

    second = _full_run()
    second.refresh_from_db()

    assert second.status == ResolutionRun.Status.SUCCEEDED
    assert (second.report["merges"], second.report["profiles_merged_away"]) == (0, 0)
    assert second.report["suggestions_created"] == 0
    assert MergeLog.objects.count() == logs
    assert sorted(Profile.objects.values_list("pk", "attributes")) == profiles
    assert (
        sorted(MergeSuggestion.objects.values_list("left_id", "right_id", "status")) == suggestions
    )
    assert first.report["profiles_before"] - first.report["profiles_after"] == logs_absorbed()


def logs_absorbed() -> int:
    return sum(len(log.merged_ids) for log in MergeLog.objects.all())


# --- survivorship after a bulk merge ---------------------------------------------------------


def _records_for(profile_id: int) -> list[dict]:
    return [
        {
            "id": row["id"],
            "priority": row["source__priority"],
            "updated_at": row["updated_at"].isoformat(),
            "attributes": row["attributes"] or {},
            "observed_at": row["observed_at"] or {},
        }
        for row in SourceRecord.objects.filter(profile_id=profile_id).values(
            "id", "attributes", "observed_at", "updated_at", "source__priority"
        )
    ]


@pytest.mark.parametrize("strategy", [SOURCE_PRIORITY, MOST_RECENT])
def test_bulk_merge_survivorship_is_what_survivor_values_computes(
    make_source, import_csv, strategy
):
    Ruleset.objects.filter(is_active=True).update(
        survivorship_default=strategy, survivorship_overrides={}
    )
    crm = make_source(name="crm", priority=1)
    web = make_source(name="web", kind="api", priority=100)
    import_csv(crm, "customer_id,email,first_name,city\nC-1,crm@example.com,Anna,Bonn\n")
    tracking_messages_ingest(
        source=web,
        messages=[
            {
                "type": "identify",
                "messageId": "m-1",
                "userId": "u-1",
                "timestamp": "2099-01-01T00:00:00Z",
                "traits": {"email": "web@example.com", "firstName": "Ann",
                           "address": {"city": "Berlin"}, "lastName": "Lee"},
            }
        ],
    )  # fmt: skip
    a = SourceRecord.objects.get(source=crm).profile_id
    b = SourceRecord.objects.get(source=web).profile_id
    assert a != b

    profiles_merge_many(clusters=[[a, b]], reason="fuzzy: test")

    survivor = Profile.objects.get()
    expected, sources = survivor_values(_records_for(survivor.pk), default=strategy)
    assert survivor.attributes == expected
    assert survivor.attribute_sources == sources
    web_wins = strategy == MOST_RECENT
    assert survivor.first_name == ("Ann" if web_wins else "Anna")
    assert survivor.city == ("Berlin" if web_wins else "Bonn")
    assert survivor.last_name == "Lee"
    assert survivor.email == ("web@example.com" if web_wins else "crm@example.com")


def test_survivorship_on_postgresql_orders_event_times_by_code_point_not_collation(
    make_source, import_csv
):
    """A record observed at a whole second vs one observed a microsecond later: the later wins
    under most_recent on both paths."""
    Ruleset.objects.filter(is_active=True).update(
        survivorship_default=MOST_RECENT, survivorship_overrides={}
    )
    source = make_source(name="crm", priority=1)
    import_csv(source, "customer_id,email,city\nC-1,a@example.com,Bonn\nC-2,b@example.com,Köln\n")
    one, two = SourceRecord.objects.order_by("pk")
    SourceRecord.objects.filter(pk=one.pk).update(observed_at={"city": "2024-05-01T10:00:00+00:00"})
    SourceRecord.objects.filter(pk=two.pk).update(
        observed_at={"city": "2024-05-01T10:00:00.000001+00:00"}
    )
    profiles_merge_many(clusters=[[one.profile_id, two.profile_id]], reason="fuzzy: test")
    survivor = Profile.objects.get()
    assert (survivor.city, survivor.attribute_sources["city"]) == ("Köln", two.pk)


# --- chained merges and their undo -------------------------------------------------------------


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "single"])
def test_undoing_two_chained_merges_in_reverse_order_restores_all_three(
    make_source, import_csv, bulk
):
    source = make_source()
    import_csv(source, HEADER + "".join(f"C-{n},N{n},L,p{n}@example.com,\n" for n in (1, 2, 3)))
    one, two, three = sorted(Profile.objects.values_list("pk", flat=True))
    own = dict(SourceRecord.objects.values_list("profile_id", "pk"))
    if bulk:
        profiles_merge_many(clusters=[[two, three]], reason="fuzzy: first")
        profiles_merge_many(clusters=[[one, two]], reason="fuzzy: second")
    else:
        profiles_merge(survivor_id=two, other_ids=[three], reason="fuzzy: first")
        profiles_merge(survivor_id=one, other_ids=[two], reason="fuzzy: second")
    first = MergeLog.objects.get(reason="fuzzy: first")

    assert first.survivor_id == two  # kept although profile two is gone for now
    with pytest.raises(MergeError, match="undo the later merge first"):
        profile_unmerge(merge_log=first)
    profile_unmerge(merge_log=MergeLog.objects.get(reason="fuzzy: second"))
    profile_unmerge(merge_log=MergeLog.objects.get(reason="fuzzy: first"))

    assert sorted(Profile.objects.values_list("pk", flat=True)) == [one, two, three]
    assert dict(SourceRecord.objects.values_list("profile_id", "pk")) == own


# --- an anonymous visitor identified later as a known customer ------------------------------


def test_a_known_customer_identifying_an_earlier_anonymous_visit_absorbs_it_once(
    make_source, import_csv
):
    import_csv(make_source(name="crm"), HEADER + "C-1,Ann,Lee,ann@example.com,\n")
    crm_profile = Profile.objects.get().pk
    web = make_source(name="web", kind="api")
    tracking_messages_ingest(
        source=web,
        messages=[{"type": "page", "messageId": "p-1", "anonymousId": "anon-9", "name": "Home",
                   "timestamp": "2024-05-01T09:00:00Z"}],
    )  # fmt: skip
    assert Profile.objects.count() == 2
    identify = [
        {"type": "identify", "messageId": "i-1", "anonymousId": "anon-9", "userId": "u-9",
         "traits": {"email": "ANN@example.com"}, "timestamp": "2024-05-01T09:05:00Z"},
    ]  # fmt: skip

    tracking_messages_ingest(source=web, messages=identify)
    state = _tracking_state()
    retry = tracking_messages_ingest(source=web, messages=identify)

    assert retry["duplicates"] == 1
    assert _tracking_state() == state
    assert list(Profile.objects.values_list("pk", flat=True)) == [crm_profile]
    assert set(event_values().values_list("profile_id", flat=True)) == {crm_profile}
    assert MergeLog.objects.get().merged_ids == [crm_profile + 1]
    assert not MergeSuggestion.objects.exists()
