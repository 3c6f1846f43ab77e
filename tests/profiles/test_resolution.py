"""Exact identity resolution: shared normalised identities make one profile; merges are logged."""

from __future__ import annotations

from collections import Counter

import pytest

from profiles.models import (
    Event,
    Identity,
    MergeLog,
    MergeSuggestion,
    Profile,
    ProfileRedirect,
    SourceRecord,
)
from profiles.services.merging import profiles_merge
from profiles.services.resolution import profile_resolve_id, profiles_resolve
from profiles.services.tracking import tracking_messages_ingest

EMAIL = "ann.lee@example.com"
PHONE = "+12025550143"


@pytest.fixture
def web(make_source):
    return make_source(name="web", kind="api")


def identify(source, user_id: str, message_id: str, **traits) -> None:
    result = tracking_messages_ingest(
        source=source,
        messages=[
            {"type": "identify", "messageId": message_id, "userId": user_id, "traits": traits},
            {
                "type": "track",
                "messageId": message_id + "-order",
                "userId": user_id,
                "event": "Order Completed",
                "properties": {"order_id": message_id},
            },
        ],
    )
    assert result == {"accepted": 2, "duplicates": 0, "rejected": []}


def profile_of(source, external_key: str) -> int:
    return SourceRecord.objects.get(source=source, external_key=external_key).profile_id


def test_bridging_record_joins_the_better_profile_and_the_pair_becomes_a_suggestion(
    web, make_source, import_csv
):
    identify(web, "u-a", "m-a", email=EMAIL, firstName="Ann", lastName="Lee")
    identify(web, "u-b", "m-b", phone=PHONE, firstName="Bob", lastName="Stone")
    a_id, b_id = profile_of(web, "user:u-a"), profile_of(web, "user:u-b")

    crm = make_source(name="crm")
    import_csv(
        crm,
        "customer_id,first_name,last_name,email,phone,country\n"
        "C-1,Ann,Lee,Ann.Lee@Example.com,(202) 555-0143,US\n",
    )

    # Never merged by the bridge: both profiles live; the record joined Ann (same name).
    assert sorted(Profile.objects.values_list("pk", flat=True)) == [a_id, b_id]
    assert profile_of(crm, "C-1") == a_id
    assert MergeLog.objects.count() == 0
    assert ProfileRedirect.objects.count() == 0
    suggestion = MergeSuggestion.objects.get()
    assert (suggestion.left_id, suggestion.right_id, suggestion.status) == (a_id, b_id, "pending")
    assert suggestion.field_scores["first_name"]["contribution"] < 0
    assert suggestion.reasons == ["shares an identifier with both sides"]


def test_bridging_record_joins_the_profile_with_the_stronger_evidence(make_source, import_csv):
    source = make_source()
    import_csv(source, f"customer_id,phone,country\nC-1,{PHONE},US\n")
    import_csv(source, f"customer_id,email\nC-2,{EMAIL}\n")
    phone_profile, email_profile = profile_of(source, "C-1"), profile_of(source, "C-2")

    import_csv(source, f"customer_id,email,phone,country\nC-3,{EMAIL},{PHONE},US\n")

    # A shared e-mail (8 points) is stronger evidence than a shared phone (7 points).
    assert profile_of(source, "C-3") == email_profile
    assert Profile.objects.count() == 2
    suggestion = MergeSuggestion.objects.get()
    assert (suggestion.left_id, suggestion.right_id) == (phone_profile, email_profile)


def test_bridging_record_with_a_conflicting_user_id_gets_its_own_profile(web):
    identify(web, "u-a", "m-a", email=EMAIL)
    a_id = profile_of(web, "user:u-a")

    identify(web, "u-c", "m-c", email=EMAIL)

    c_id = profile_of(web, "user:u-c")
    assert c_id != a_id
    assert Profile.objects.count() == 2
    assert list(MergeSuggestion.objects.values_list("left_id", "right_id")) == [(a_id, c_id)]


def test_chained_merges_repoint_earlier_redirects(web):
    identify(web, "u-1", "m-1", email=EMAIL)
    identify(web, "u-2", "m-2", phone=PHONE)
    identify(web, "u-3", "m-3", customerId="K-7")
    p1, p2, p3 = (profile_of(web, f"user:u-{n}") for n in (1, 2, 3))

    profiles_merge(survivor_id=p2, other_ids=[p3], reason="test")
    profiles_merge(survivor_id=p1, other_ids=[p2], reason="test")

    assert list(Profile.objects.values_list("pk", flat=True)) == [p1]
    assert dict(ProfileRedirect.objects.values_list("old_id", "profile_id")) == {p2: p1, p3: p1}
    assert profile_resolve_id(p3).pk == p1
    second = MergeLog.objects.get(merged_ids=[p2])
    assert second.snapshot[0]["redirect_ids"] == [p3]
    assert Event.objects.exclude(profile_id=p1).count() == 0


def test_records_bridged_inside_one_file_make_one_profile_without_a_merge(make_source, import_csv):
    source = make_source()
    import_csv(
        source,
        "customer_id,email,phone,country\n"
        f"C-1,{EMAIL},,\n"
        f"C-2,,{PHONE},\n"
        f"C-3,{EMAIL.upper()},(202) 555-0143,US\n",
    )

    assert Profile.objects.count() == 1
    assert SourceRecord.objects.filter(profile=Profile.objects.get()).count() == 3
    assert MergeLog.objects.count() == 0


def test_two_rows_of_one_file_with_conflicting_birth_dates_never_share_a_profile(
    make_source, import_csv
):
    import_csv(make_source(), f"customer_id,email\nC-0,{EMAIL}\n")
    existing = Profile.objects.get().pk

    import_csv(
        make_source(),
        "customer_id,email,first_name,birth_date\n"
        f"C-1,{EMAIL},Ann,1980-01-01\n"
        f"C-2,{EMAIL},Bob,1990-02-02\n",
    )

    profile_of = dict(SourceRecord.objects.values_list("external_key", "profile_id"))
    assert profile_of["C-1"] == existing
    assert profile_of["C-2"] != existing
    assert list(MergeSuggestion.objects.values_list("left_id", "right_id")) == [
        (existing, profile_of["C-2"])
    ]


def test_placeholder_identifiers_never_bridge(make_source, import_csv):
    source = make_source()
    import_csv(
        source,
        "customer_id,first_name,email,phone\n"
        "C-1,Ann,test@test.com,+11111111111\n"
        "C-2,Bob,Test@Test.com,+11111111111\n",
    )

    assert sorted(Profile.objects.values_list("first_name", flat=True)) == ["Ann", "Bob"]
    assert MergeLog.objects.count() == 0


def test_no_two_profiles_share_an_identity_key(make_source, import_csv, web):
    source = make_source()
    # e-mails by n % 6 and phones by n % 3 chain every row into one of three people.
    rows = "".join(f"C-{n},user{n % 6}@example.com,+1 202-555-010{n % 3}\n" for n in range(30))
    import_csv(source, "customer_id,email,phone\n" + rows)
    identify(web, "u-1", "m-1", email="user4@example.com")

    assert Profile.objects.count() == 3
    owners = Counter(
        Identity.objects.filter(key__isnull=False)
        .values_list("type", "key", "profile_id")
        .distinct()
    )
    keys = Counter((id_type, key) for id_type, key, _profile in owners)
    assert len(keys) == 6 + 3 + 30 + 1  # e-mails, phones, customer numbers, the user id
    assert [key for key, count in keys.items() if count > 1] == []
    # user4 is in the n % 3 == 1 family, so the tracked user joined the profile of +12025550101.
    phone_owner = Identity.objects.filter(key="+12025550101").values("profile_id").distinct()
    assert [row["profile_id"] for row in phone_owner] == [profile_of(web, "user:u-1")]


def test_resolve_with_no_records_does_nothing(db):
    assert profiles_resolve(source_record_ids=[]) == {"created": 0, "assigned": 0, "merged": 0}


def test_profile_resolve_id_of_an_unknown_id_is_none(db):
    assert profile_resolve_id(123456) is None
