"""Consent: import semantics, GPC on both APIs, merge keeps the most restrictive state, unmerge."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from consent.models import ConsentRecord, ConsentSource, Restriction
from consent.selectors import (
    consent_denied_profile_ids,
    consent_granted_profiles,
    consent_state,
)
from consent.services.consent import consent_record
from profiles.models import Profile, ProfileRedirect
from profiles.services.merging import profile_unmerge, profiles_merge
from tests.conftest import shopify_csv, shopify_row

MAILCHIMP_HEADER = "Email Address,First Name,Last Name,OPTIN_TIME,UNSUB_TIME,CLEAN_TIME"


def email_state(profile: Profile) -> str | None:
    states = {
        (s["purpose"], s["channel"]): s["status"] for s in consent_state(profile_id=profile.pk)
    }
    return states.get(("email_marketing", "email"))


@pytest.fixture
def shop(make_source):
    return make_source(name="shop", preset="shopify")


def shopify(email: str, accepts: str) -> str:
    return shopify_csv(shopify_row(**{"Email": email, "Accepts Email Marketing": accepts}))


# --- imports ---------------------------------------------------------------------------------


def test_shopify_yes_no_empty(shop, import_csv):
    import_csv(
        shop,
        shopify_csv(
            shopify_row(**{"Email": "yes@example.com", "Accepts Email Marketing": "yes"}),
            shopify_row(**{"Email": "no@example.com", "Accepts Email Marketing": "no"}),
            shopify_row(**{"Email": "empty@example.com", "Accepts Email Marketing": ""}),
        ),
    )
    by_email = {p.email: p for p in Profile.objects.all()}
    assert email_state(by_email["yes@example.com"]) == "granted"
    assert email_state(by_email["no@example.com"]) == "denied"
    assert email_state(by_email["empty@example.com"]) is None  # unknown
    record = ConsentRecord.objects.get(profile=by_email["yes@example.com"])
    assert record.source == ConsentSource.IMPORT
    assert record.evidence["field"] == "accepts_email_marketing"
    assert record.evidence["import_run"] is not None
    granted = set(
        consent_granted_profiles("email_marketing", "email").values_list("email", flat=True)
    )
    assert granted == {"yes@example.com"}


def test_reimport_is_idempotent(shop, import_csv):
    import_csv(shop, shopify("a@example.com", "yes"))
    import_csv(shop, shopify("a@example.com", "yes"))
    assert ConsentRecord.objects.count() == 1


def test_bulk_import_never_turns_an_earlier_opt_out_into_an_opt_in(shop, import_csv):
    import_csv(shop, shopify("a@example.com", "no"))
    profile = Profile.objects.get()
    import_csv(shop, shopify("a@example.com", "yes"))  # a later file says yes, without a time

    assert email_state(profile) == "denied"
    assert ConsentRecord.objects.filter(profile=profile).count() == 1


def test_an_opt_in_with_a_newer_explicit_time_does_replace_an_opt_out(make_source, import_csv):
    mailchimp = make_source(name="mailchimp", preset="mailchimp")
    import_csv(
        mailchimp,
        MAILCHIMP_HEADER + "\na@example.com,Ann,Lee,2024-01-01 09:00:00,2024-06-01 10:00:00,\n",
    )
    profile = Profile.objects.get()
    assert email_state(profile) == "withdrawn"
    # Older explicit opt-in: the opt-out stays.
    import_csv(mailchimp, MAILCHIMP_HEADER + "\na@example.com,Ann,Lee,2024-03-01 09:00:00,,\n")
    assert email_state(profile) == "withdrawn"
    # Newer explicit opt-in (re-subscribed): it wins.
    import_csv(mailchimp, MAILCHIMP_HEADER + "\na@example.com,Ann,Lee,2024-09-01 09:00:00,,\n")
    assert email_state(profile) == "granted"
    statuses = list(
        ConsentRecord.objects.filter(profile=profile)
        .order_by("captured_at")
        .values_list("status", "captured_at")
    )
    assert statuses == [
        ("withdrawn", datetime(2024, 6, 1, 10, tzinfo=UTC)),
        ("granted", datetime(2024, 9, 1, 9, tzinfo=UTC)),
    ]


def test_mailchimp_cleaned_is_not_a_consent_decision(make_source, import_csv):
    mailchimp = make_source(name="mailchimp", preset="mailchimp")
    import_csv(mailchimp, MAILCHIMP_HEADER + "\na@example.com,Ann,Lee,2024-01-01 09:00:00,,\n")
    profile = Profile.objects.get()
    assert email_state(profile) == "granted"
    import_csv(
        mailchimp,
        MAILCHIMP_HEADER + "\na@example.com,Ann,Lee,2024-01-01 09:00:00,,2024-07-01 00:00:00\n",
    )
    assert email_state(profile) == "granted"
    assert ConsentRecord.objects.count() == 1
    profile.refresh_from_db()
    assert profile.attributes["email_cleaned_at"] == "2024-07-01 00:00:00"


def test_salesforce_email_opt_out(make_source, import_csv):
    salesforce = make_source(name="crm", preset="salesforce")
    import_csv(
        salesforce,
        "Contact ID,First Name,Last Name,Email,Email Opt Out\n"
        "003A,Ann,Lee,ann@example.com,TRUE\n"
        "003B,Bob,Ray,bob@example.com,FALSE\n",
    )
    ann = Profile.objects.get(email="ann@example.com")
    bob = Profile.objects.get(email="bob@example.com")
    assert email_state(ann) == "withdrawn"
    assert email_state(bob) is None  # FALSE is Salesforce's default, not consent
    assert list(Profile.objects.filter(pk__in=consent_denied_profile_ids("email_marketing"))) == [
        ann
    ]


def test_an_import_opt_out_overrides_an_earlier_api_opt_in(shop, import_csv):
    import_csv(shop, shopify("a@example.com", ""))
    profile = Profile.objects.get()
    consent_record(
        profile=profile,
        purpose="email_marketing",
        channel="email",
        status="granted",
        source="form",
        captured_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    import_csv(shop, shopify("a@example.com", "no"))
    assert email_state(profile) == "denied"


# --- GPC -------------------------------------------------------------------------------------


def sale_status(profile: Profile) -> str | None:
    states = {s["purpose"]: s for s in consent_state(profile_id=profile.pk)}
    return states.get("sale_sharing", {}).get("status")


def basic(key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.mark.parametrize(("header", "expected"), [("1", "denied"), ("0", None), (None, None)])
def test_gpc_header_on_the_tracking_api(client, make_source, header, expected):
    source = make_source(name="web", kind="api")
    headers = basic(source.write_key)
    if header is not None:
        headers["Sec-GPC"] = header
    response = client.post(
        "/v1/track",
        data=json.dumps({"userId": "u-1", "event": "Viewed", "messageId": "m1"}),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 200
    profile = Profile.objects.get()
    assert sale_status(profile) == expected
    if expected:
        record = ConsentRecord.objects.get()
        assert (record.source, record.channel.key, record.conflict) == ("gpc", "all", False)
        # A second request with the signal adds nothing: the person is already opted out.
        client.post(
            "/v1/track",
            data=json.dumps({"userId": "u-1", "event": "Viewed", "messageId": "m2"}),
            content_type="application/json",
            headers=headers,
        )
        assert ConsentRecord.objects.count() == 1


def test_gpc_conflict_with_an_earlier_opt_in_is_recorded(client, make_source):
    source = make_source(name="web", kind="api")
    client.post(
        "/v1/identify",
        data=json.dumps({"userId": "u-1", "traits": {"email": "a@example.com"}}),
        content_type="application/json",
        headers=basic(source.write_key),
    )
    profile = Profile.objects.get()
    opt_in = consent_record(
        profile=profile, purpose="sale_sharing", channel="all", status="granted", source="form"
    )
    client.post(
        "/v1/page",
        data=json.dumps({"userId": "u-1", "name": "Home"}),
        content_type="application/json",
        headers={**basic(source.write_key), "Sec-GPC": "1"},
    )
    gpc = ConsentRecord.objects.get(source="gpc")
    assert gpc.conflict is True
    assert gpc.evidence["conflicts_with_record"] == opt_in.pk
    assert sale_status(profile) == "denied"


# --- merge and unmerge ----------------------------------------------------------------------


def test_merge_keeps_the_most_restrictive_state_and_both_histories(db):
    older, newer = Profile.objects.create(), Profile.objects.create()
    denied = consent_record(
        profile=older,
        purpose="email_marketing",
        channel="email",
        status="denied",
        source="import",
        captured_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    granted = consent_record(
        profile=newer,
        purpose="email_marketing",
        channel="email",
        status="granted",
        source="form",
        captured_at=datetime(2024, 6, 1, tzinfo=UTC),
    )
    consent_record(
        profile=newer,
        purpose="analytics",
        channel="web",
        status="granted",
        source="form",
    )

    log = profiles_merge(survivor_id=older.pk, other_ids=[newer.pk], reason="test")

    assert email_state(older) == "denied"
    history = set(ConsentRecord.objects.filter(profile=older).values_list("id", flat=True))
    assert {denied.pk, granted.pk} <= history
    merge_record = ConsentRecord.objects.get(source="merge")
    assert merge_record.status == "denied"
    assert log.extensions["consent"]["merge_records"] == [merge_record.pk]
    analytics = {s["purpose"]: s["status"] for s in consent_state(profile_id=older.pk)}
    assert analytics["analytics"] == "granted"  # nothing restrictive on either side


def test_unmerge_gives_each_side_its_own_state_back(db):
    a, b = Profile.objects.create(), Profile.objects.create()
    consent_record(
        profile=a,
        purpose="email_marketing",
        channel="email",
        status="granted",
        source="form",
        captured_at=datetime(2024, 6, 1, tzinfo=UTC),
    )
    b_record = consent_record(
        profile=b,
        purpose="email_marketing",
        channel="email",
        status="withdrawn",
        source="api",
        captured_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    log = profiles_merge(survivor_id=a.pk, other_ids=[b.pk], reason="test")
    assert email_state(a) == "withdrawn"
    assert ConsentRecord.objects.filter(profile=a).count() == 3

    restored = profile_unmerge(merge_log=log)

    assert [p.pk for p in restored] == [b.pk]
    assert email_state(a) == "granted"
    assert email_state(Profile.objects.get(pk=b.pk)) == "withdrawn"
    assert list(ConsentRecord.objects.filter(profile_id=b.pk).values_list("id", flat=True)) == [
        b_record.pk
    ]
    assert not ConsentRecord.objects.filter(source="merge").exists()
    assert not ProfileRedirect.objects.filter(old_id=b.pk).exists()


def test_import_records_move_back_with_their_source_record_on_unmerge(shop, import_csv):
    """Records captured while merged follow their source record home on unmerge."""
    import_csv(shop, shopify("a@example.com", ""))
    import_csv(shop, shopify("b@example.com", ""))
    a = Profile.objects.get(email="a@example.com")
    b = Profile.objects.get(email="b@example.com")
    log = profiles_merge(survivor_id=a.pk, other_ids=[b.pk], reason="test")
    import_csv(shop, shopify("b@example.com", "no"))  # recorded while merged, on A
    assert ConsentRecord.objects.get().origin_profile_id == a.pk

    profile_unmerge(merge_log=log)

    assert ConsentRecord.objects.get().profile_id == b.pk
    assert email_state(a) is None
    assert email_state(b) == "denied"


def test_merge_of_merges_unmerges_exactly(db):
    """C merged into B, then B into A: undoing B's merge gives B back its and C's records."""
    a, b, c = Profile.objects.create(), Profile.objects.create(), Profile.objects.create()
    records = {
        p.pk: consent_record(
            profile=p,
            purpose="analytics",
            channel="web",
            status=status,
            source="form",
            captured_at=datetime(2024, 1, day, tzinfo=UTC),
        )
        for p, status, day in ((a, "granted", 3), (b, "granted", 2), (c, "denied", 1))
    }
    profiles_merge(survivor_id=b.pk, other_ids=[c.pk], reason="test")
    log = profiles_merge(survivor_id=a.pk, other_ids=[b.pk], reason="test")
    profile_unmerge(merge_log=log)
    on_b = set(
        ConsentRecord.objects.filter(profile_id=b.pk, source="form").values_list("id", flat=True)
    )
    assert on_b == {records[b.pk].pk, records[c.pk].pk}
    assert set(ConsentRecord.objects.filter(profile_id=a.pk).values_list("id", flat=True)) == {
        records[a.pk].pk
    }


def test_restriction_survives_a_merge_and_removes_the_profile_from_consent_gates(db):
    a, b = Profile.objects.create(), Profile.objects.create()
    for profile in (a, b):
        consent_record(
            profile=profile,
            purpose="email_marketing",
            channel="email",
            status="granted",
            source="form",
        )
    Restriction.objects.create(profile=b)
    assert set(consent_granted_profiles("email_marketing", "email")) == {a}
    profiles_merge(survivor_id=a.pk, other_ids=[b.pk], reason="test")
    assert Restriction.objects.get().profile_id == a.pk
    assert list(consent_granted_profiles("email_marketing", "email")) == []


def test_consent_records_are_append_only(db):
    profile = Profile.objects.create()
    record = consent_record(
        profile=profile, purpose="analytics", channel="web", status="granted", source="admin"
    )
    record.status = "denied"
    with pytest.raises(TypeError):
        record.save()
    with pytest.raises(TypeError):
        ConsentRecord.objects.filter(pk=record.pk).update(status="denied")
    assert ConsentRecord.objects.get().status == "granted"


# Mailchimp's audience export is three files with different columns (real header names).
MAILCHIMP_SUBSCRIBED = (
    "Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,"
    "CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,"
    "NOTES,TAGS"
)
MAILCHIMP_UNSUBSCRIBED = (
    MAILCHIMP_SUBSCRIBED
    + ",UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,UNSUB_REASON_OTHER"
)
MAILCHIMP_CLEANED = MAILCHIMP_SUBSCRIBED + ",CLEAN_TIME,CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID"


def mailchimp_line(email: str, optin: str, *extra: str) -> str:
    cells = [email, "Ann", "Lee", "2", optin, "", "", "", "", "", "", "", "", "", "", optin]
    return ",".join([*cells, "1", "e1", "", "", *extra])


def test_mailchimp_subscribed_unsubscribed_and_cleaned_files(make_source, import_csv):
    mailchimp = make_source(name="mailchimp", preset="mailchimp")
    subscribed = "\n".join(
        [
            MAILCHIMP_SUBSCRIBED,
            mailchimp_line("sub@example.com", "2024-01-01 09:00:00"),
            mailchimp_line("unsub@example.com", "2024-01-01 09:00:00"),
            mailchimp_line("clean@example.com", "2024-01-01 09:00:00"),
        ]
    )
    unsubscribed = "\n".join(
        [
            MAILCHIMP_UNSUBSCRIBED,
            mailchimp_line(
                "unsub@example.com",
                "2024-01-01 09:00:00",
                "2024-05-01 12:00:00",
                "Spring",
                "c1",
                "NORMAL",
                "",
            ),
        ]
    )
    cleaned = "\n".join(
        [
            MAILCHIMP_CLEANED,
            mailchimp_line(
                "clean@example.com", "2024-01-01 09:00:00", "2024-06-01 08:00:00", "Summer", "c2"
            ),
        ]
    )
    runs = [import_csv(mailchimp, text + "\n") for text in (subscribed, unsubscribed, cleaned)]
    assert [r.status for r in runs] == ["succeeded"] * 3
    by_email = {p.email: p for p in Profile.objects.all()}
    assert email_state(by_email["sub@example.com"]) == "granted"
    assert email_state(by_email["unsub@example.com"]) == "withdrawn"
    # Cleaned = undeliverable: the earlier opt-in stays the consent state.
    assert email_state(by_email["clean@example.com"]) == "granted"
    assert ConsentRecord.objects.filter(profile=by_email["clean@example.com"]).count() == 1
    unsub = ConsentRecord.objects.get(profile=by_email["unsub@example.com"], status="withdrawn")
    assert unsub.captured_at == datetime(2024, 5, 1, 12, tzinfo=UTC)

    # The subscribed file imported again (an old opt-in time) does not re-subscribe anyone.
    import_csv(mailchimp, subscribed + "\n")
    assert email_state(by_email["unsub@example.com"]) == "withdrawn"
    assert ConsentRecord.objects.count() == 4


@pytest.mark.django_db
def test_consent_record_rejects_an_unknown_source_and_writes_nothing():
    from consent.services.consent import ConsentError

    person = Profile.objects.create(first_name="Ann")
    with pytest.raises(ConsentError, match="source must be one of import, api, form, gpc"):
        consent_record(
            profile=person,
            purpose="email_marketing",
            channel="email",
            status="granted",
            source="preference_centre",
        )
    assert ConsentRecord.objects.filter(profile=person).count() == 0


def test_an_explicit_consent_time_in_the_future_is_not_trusted():
    from consent.services.consent import parse_consent_time

    assert parse_consent_time("2100-01-01 00:00:00") is None
    assert parse_consent_time("2026-05-01T10:00:00Z") == datetime(2026, 5, 1, 10, tzinfo=UTC)


def test_decision_memo_decides_as_decisions_from_attributes():
    """The per-batch memo (one decision list per distinct consent values) changes nothing."""
    from consent.services.consent import (
        CONSENT_ATTRIBUTES,
        _DecisionMemo,
        decisions_from_attributes,
    )

    class Reads(dict):
        def __init__(self, *args):
            super().__init__(*args)
            self.read: set[str] = set()

        def get(self, key, default=None):
            self.read.add(key)
            return super().get(key, default)

        def __contains__(self, key):
            self.read.add(key)
            return super().__contains__(key)

        def __getitem__(self, key):
            self.read.add(key)
            return super().__getitem__(key)

    probe = Reads(
        {
            "email_opt_in_at": "2024-01-02T03:04:05Z",
            "email_subscription_status": "subscribed",
            "email_cleaned_at": "",
            "accepts_sms_marketing": False,
        }
    )
    decisions_from_attributes(probe)
    decisions_from_attributes(Reads({"email_subscription_status": "Subscribed"}))
    # Every attribute it reads is in the memo's key.
    assert probe.read <= set(CONSENT_ATTRIBUTES)

    memo = _DecisionMemo()
    cases = [
        {"accepts_email_marketing": True, "first_name": "Ann"},
        {"accepts_email_marketing": True, "first_name": "Bob"},
        {"accepts_email_marketing": 1},  # not True: no decision
        {"accepts_email_marketing": False, "email_opt_out_at": "2024-05-01"},
        {"email_opt_in_at": "2024-01-02", "accepts_email_marketing": None},
        {"email_opt_in_at": "2024-01-02"},
        {"email_subscription_status": ["subscribed"]},  # unhashable: decided, not remembered
        {},
    ]
    for attrs in cases:
        assert memo(attrs) == decisions_from_attributes(attrs), attrs
    assert memo(cases[2]) == []
    assert [(d.status, d.field) for d in memo(cases[0])] == [("granted", "accepts_email_marketing")]
    assert memo(cases[4]) == []  # the key is present: no opt-in from the time alone
    assert [d.status for d in memo(cases[5])] == ["granted"]
    assert len(memo.known) == 6  # Ann and Bob share one entry; the list is not kept
