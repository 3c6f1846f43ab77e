"""Exact identity resolution: shared normalised identities make one profile; merges are logged."""

from __future__ import annotations

from collections import Counter

import pytest

from cdp.models import AuditEvent
from profiles.models import Event, Identity, MergeLog, Profile, ProfileRedirect, SourceRecord
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


def test_record_with_both_identifiers_bridges_two_profiles_into_the_lower_id(
    web, make_source, import_csv
):
    identify(web, "u-a", "m-a", email=EMAIL, firstName="Ann")
    identify(web, "u-b", "m-b", phone=PHONE, lastName="Lee")
    a_id, b_id = profile_of(web, "user:u-a"), profile_of(web, "user:u-b")
    b_record = SourceRecord.objects.get(external_key="user:u-b")
    assert a_id < b_id
    assert Profile.objects.count() == 2

    crm = make_source(name="crm")
    import_csv(crm, "customer_id,email,phone,country\nC-1,Ann.Lee@Example.com,(202) 555-0143,US\n")

    assert list(Profile.objects.values_list("pk", flat=True)) == [a_id]
    survivor = Profile.objects.get()
    assert (survivor.first_name, survivor.last_name, survivor.email, survivor.phone) == (
        "Ann",
        "Lee",
        EMAIL,
        PHONE,
    )
    assert set(SourceRecord.objects.values_list("profile_id", flat=True)) == {a_id}
    assert set(Identity.objects.values_list("profile_id", flat=True)) == {a_id}
    assert list(Event.objects.order_by("message_id").values_list("message_id", "profile_id")) == [
        ("m-a", a_id),
        ("m-a-order", a_id),
        ("m-b", a_id),
        ("m-b-order", a_id),
    ]
    assert ProfileRedirect.objects.get(old_id=b_id).profile_id == a_id
    assert ProfileRedirect.objects.count() == 1
    log = MergeLog.objects.get()
    assert (log.survivor_id, log.merged_ids, log.reason) == (a_id, [b_id], "shared identifier")
    assert len(log.snapshot) == 1
    snapshot = log.snapshot[0]
    assert snapshot["id"] == b_id
    assert snapshot["source_record_ids"] == [b_record.pk]
    assert snapshot["redirect_ids"] == []
    assert (snapshot["fields"]["last_name"], snapshot["fields"]["phone"]) == ("Lee", PHONE)
    assert profile_resolve_id(b_id).pk == a_id
    audit = AuditEvent.objects.get(action="profile.merge")
    assert (audit.target, audit.details) == (
        f"profile:{a_id}",
        {"merged_ids": [b_id], "reason": "shared identifier"},
    )


def test_survivor_is_the_lower_id_whichever_record_bridges(web):
    identify(web, "u-b", "m-b", phone=PHONE)
    identify(web, "u-a", "m-a", email=EMAIL)
    phone_profile, email_profile = profile_of(web, "user:u-b"), profile_of(web, "user:u-a")

    identify(web, "u-a", "m-a2", phone=PHONE)

    assert phone_profile < email_profile
    assert list(Profile.objects.values_list("pk", flat=True)) == [phone_profile]
    assert ProfileRedirect.objects.get().old_id == email_profile


def test_chained_merges_repoint_earlier_redirects(web):
    identify(web, "u-1", "m-1", email=EMAIL)
    identify(web, "u-2", "m-2", phone=PHONE)
    identify(web, "u-3", "m-3", customerId="K-7")
    p1, p2, p3 = (profile_of(web, f"user:u-{n}") for n in (1, 2, 3))

    identify(web, "u-4", "m-4", phone=PHONE, customerId="K-7")  # p2 absorbs p3
    identify(web, "u-5", "m-5", email=EMAIL, phone=PHONE)  # p1 absorbs p2

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
