"""The tracking API contract (Segment HTTP tracking spec) through Django's test client."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime

import pytest

from profiles.models import Event, Identity, Profile, RawRecord, SourceRecord


@pytest.fixture
def api_source(make_source):
    return make_source(name="website", kind="api")


def basic(key: str, colon: bool = True) -> dict[str, str]:
    credentials = f"{key}:" if colon else key
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def send(client, path: str, body: object, *, key: str | None = None, colon: bool = True):
    headers = basic(key, colon) if key is not None else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", headers=headers)


def identify(**overrides) -> dict:
    message = {
        "type": "identify",
        "messageId": "msg-identify-1",
        "userId": "u-1",
        "traits": {"email": "Lena.Vogt@Example.DE", "firstName": "Lena"},
        "timestamp": "2024-05-01T10:00:00.000Z",
    }
    message.update(overrides)
    return message


def track(**overrides) -> dict:
    message = {
        "type": "track",
        "messageId": "msg-track-1",
        "userId": "u-1",
        "event": "Order Completed",
        "properties": {"order_id": "o-1", "total": 42.5, "currency": "EUR"},
        "timestamp": "2024-05-01T10:05:00.000Z",
    }
    message.update(overrides)
    return message


# --- success and authentication ------------------------------------------------------------


@pytest.mark.parametrize("colon", [True, False], ids=["with-colon", "without-colon"])
def test_identify_with_basic_auth_answers_exactly_success(client, api_source, colon):
    response = send(client, "/v1/identify", identify(), key=api_source.write_key, colon=colon)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == b'{"success": true}'
    event = Event.objects.get()
    assert (event.source_id, event.type, event.user_id) == (api_source.pk, "identify", "u-1")


def test_write_key_in_the_body_is_accepted(client, api_source):
    response = send(client, "/v1/track", {**track(), "writeKey": api_source.write_key})

    assert response.status_code == 200
    assert response.json() == {"success": True}
    event = Event.objects.get()
    assert (event.source_id, event.name) == (api_source.pk, "Order Completed")
    assert "writeKey" not in RawRecord.objects.get().payload


def test_unknown_write_key_is_401_json(client, api_source):
    response = send(client, "/v1/track", track(), key="not-a-key")

    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_write_key",
        "message": "The write key is not known.",
    }
    assert RawRecord.objects.count() == 0


def test_missing_write_key_is_401_json(client, api_source):
    response = send(client, "/v1/track", track())

    assert response.status_code == 401
    assert response.json() == {"code": "missing_write_key", "message": "No write key was sent."}


@pytest.mark.parametrize("credentials", ["***not base64***", "%%%", "bGVuYQ=x"])
def test_malformed_basic_auth_is_401_json(client, api_source, credentials):
    response = client.post(
        "/v1/track",
        data=json.dumps(track()),
        content_type="application/json",
        headers={"Authorization": f"Basic {credentials}"},
    )

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_auth"
    assert Event.objects.count() == 0


def test_an_empty_basic_user_leaves_the_key_to_the_body(client, api_source):
    body = {**track(), "writeKey": api_source.write_key}

    response = send(client, "/v1/track", body, key="")

    assert response.status_code == 200
    assert Event.objects.count() == 1


def test_malformed_json_is_400_json(client, api_source):
    response = send(client, "/v1/track", '{"type": "track", "event": ', key=api_source.write_key)

    assert response.status_code == 400
    assert response.json() == {"code": "invalid_json", "message": "The body is not valid JSON."}
    assert RawRecord.objects.count() == 0


def test_json_that_is_not_an_object_is_400(client, api_source):
    response = send(client, "/v1/batch", "[1, 2]", key=api_source.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


def test_get_is_405_json(client, api_source):
    response = client.get("/v1/track")

    assert response.status_code == 405
    assert response.json() == {"code": "method_not_allowed", "message": "Use POST."}
    assert response["Allow"] == "POST, OPTIONS"


def test_unknown_tracking_path_is_404_json(client):
    response = client.post("/v1/nothing", data="{}", content_type="application/json")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "No such endpoint."}


# --- storing messages ----------------------------------------------------------------------


def test_duplicate_message_id_is_stored_once(client, api_source):
    first = send(client, "/v1/track", track(), key=api_source.write_key)
    second = send(client, "/v1/track", track(), key=api_source.write_key)
    in_batch = send(client, "/v1/batch", {"batch": [track(), track()]}, key=api_source.write_key)

    assert [first.status_code, second.status_code, in_batch.status_code] == [200, 200, 200]
    assert second.json() == {"success": True}
    assert Event.objects.count() == 1
    assert RawRecord.objects.count() == 1


def test_same_message_id_in_two_sources_is_two_events(client, make_source):
    one = make_source(kind="api")
    two = make_source(kind="api")

    send(client, "/v1/track", track(), key=one.write_key)
    send(client, "/v1/track", track(), key=two.write_key)

    assert sorted(Event.objects.values_list("source_id", flat=True)) == [one.pk, two.pk]


def test_raw_message_is_stored_as_sent(client, api_source):
    message = track(
        properties={"order_id": "o-9", "products": [{"sku": "A-1", "price": 9.99}], "note": "ü"},
        context={"ip": "203.0.113.7", "library": {"name": "test", "version": "1"}},
        anonymousId="anon-1",
    )

    send(client, "/v1/track", message, key=api_source.write_key)

    raw = RawRecord.objects.get()
    assert raw.payload == message
    assert (raw.message_id, raw.status, raw.error) == ("msg-track-1", "accepted", "")
    event = Event.objects.get()
    assert event.raw_record_id == raw.pk
    assert event.properties == message["properties"]
    assert event.context == message["context"]
    assert event.timestamp == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)
    assert raw.source_record_id == event.source_record_id


def test_message_without_message_id_gets_a_content_hash_id(client, api_source):
    message = track()
    del message["messageId"]

    send(client, "/v1/track", message, key=api_source.write_key)
    send(client, "/v1/track", message, key=api_source.write_key)

    event = Event.objects.get()
    assert event.message_id.startswith("hash-")
    assert len(event.message_id) == len("hash-") + 64


# --- endpoints -----------------------------------------------------------------------------


def test_identify_track_and_batch_endpoints_all_store_events(client, api_source):
    key = api_source.write_key
    responses = [
        send(client, "/v1/identify", identify(), key=key),
        send(client, "/v1/track", track(), key=key),
        send(
            client,
            "/v1/batch",
            {
                "batch": [
                    {"type": "page", "messageId": "m-page", "userId": "u-1", "name": "Home"},
                    {"type": "screen", "messageId": "m-screen", "userId": "u-1", "name": "Cart"},
                    track(messageId="m-track-2", event="Product Viewed"),
                ]
            },
            key=key,
        ),
        send(
            client, "/v1/page", {"messageId": "m-page-2", "userId": "u-1", "name": "Faq"}, key=key
        ),
    ]

    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert [r.json() for r in responses] == [{"success": True}] * 4
    assert sorted(Event.objects.values_list("type", "name")) == [
        ("identify", ""),
        ("page", "Faq"),
        ("page", "Home"),
        ("screen", "Cart"),
        ("track", "Order Completed"),
        ("track", "Product Viewed"),
    ]
    profile = Profile.objects.get()
    assert set(Event.objects.values_list("profile_id", flat=True)) == {profile.pk}
    assert profile.email == "lena.vogt@example.de"
    assert profile.first_name == "Lena"


def test_single_message_endpoint_rejects_another_type(client, api_source):
    response = send(client, "/v1/identify", track(), key=api_source.write_key)

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_type",
        "message": "This endpoint takes identify messages.",
    }
    assert Event.objects.count() == 0


def test_batch_must_hold_a_list(client, api_source):
    response = send(client, "/v1/batch", {"batch": {"type": "track"}}, key=api_source.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_batch"


def test_batch_applies_batch_level_context(client, api_source):
    body = {"batch": [track()], "context": {"ip": "198.51.100.1"}}

    send(client, "/v1/batch", body, key=api_source.write_key)

    assert Event.objects.get().context == {"ip": "198.51.100.1"}


def test_batch_level_context_and_integrations_merge_with_a_messages_own(client, api_source):
    # Segment: the batch's context and integrations "will be merged with any context inside
    # each of the items in the batch"; a key the message sets itself wins.
    message = track(context={"ip": "203.0.113.7"}, integrations={"Mixpanel": False})
    body = {
        "batch": [message],
        "context": {"ip": "198.51.100.1", "library": {"name": "custom", "version": "1.0"}},
        "integrations": {"All": True, "Mixpanel": True},
    }

    send(client, "/v1/batch", body, key=api_source.write_key)

    assert Event.objects.get().context == {
        "ip": "203.0.113.7",
        "library": {"name": "custom", "version": "1.0"},
    }
    assert RawRecord.objects.get().payload["integrations"] == {"All": True, "Mixpanel": False}


def test_invalid_message_in_a_batch_is_kept_rejected_and_the_rest_applied(client, api_source):
    bad = {"type": "track", "messageId": "m-bad", "userId": "u-1"}  # no event name
    response = send(client, "/v1/batch", {"batch": [track(), bad]}, key=api_source.write_key)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_message"
    assert body["rejected"] == [{"index": 1, "message": "track needs an event name"}]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["msg-track-1"]
    rejected = RawRecord.objects.get(status="rejected")
    assert (rejected.payload, rejected.error) == (bad, "track needs an event name")


def test_message_without_any_id_is_rejected(client, api_source):
    response = send(
        client, "/v1/track", {"event": "Signed Up", "messageId": "m"}, key=api_source.write_key
    )

    assert response.status_code == 400
    assert response.json()["rejected"] == [
        {"index": 0, "message": "userId or anonymousId is required"}
    ]


def test_gzip_body_is_read(client, api_source):
    data = gzip.compress(json.dumps({"batch": [track()]}).encode())

    response = client.post(
        "/v1/batch",
        data=data,
        content_type="application/json",
        headers={**basic(api_source.write_key), "Content-Encoding": "gzip"},
    )

    assert response.status_code == 200
    assert Event.objects.get().name == "Order Completed"


def test_oversized_message_is_400(client, api_source):
    message = track(properties={"blob": "x" * 33_000})

    response = send(client, "/v1/track", message, key=api_source.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "message_too_large"
    assert Event.objects.count() == 0


# --- identities ----------------------------------------------------------------------------


def test_anonymous_events_join_the_profile_of_the_user_id(client, api_source):
    key = api_source.write_key
    send(client, "/v1/track", track(messageId="m-1", userId=None, anonymousId="anon-7"), key=key)
    send(client, "/v1/identify", identify(messageId="m-2", anonymousId="anon-7"), key=key)
    send(
        client,
        "/v1/track",
        track(messageId="m-3", userId=None, anonymousId="anon-7", event="Product Viewed"),
        key=key,
    )

    assert Profile.objects.count() == 1
    profile = Profile.objects.get()
    assert list(Event.objects.values_list("profile_id", flat=True).distinct()) == [profile.pk]
    assert sorted(SourceRecord.objects.values_list("external_key", flat=True)) == [
        "anon:anon-7",
        "user:u-1",
    ]
    assert Identity.objects.get(type="user_id").profile_id == profile.pk


def test_identify_with_anonymous_id_then_anonymous_track_joins_the_user(client, api_source):
    key = api_source.write_key
    send(client, "/v1/identify", identify(anonymousId="anon-8"), key=key)
    send(client, "/v1/track", track(userId=None, anonymousId="anon-8"), key=key)

    identify_event = Event.objects.get(type="identify")
    track_event = Event.objects.get(type="track")
    assert track_event.anonymous_id == "anon-8"
    assert track_event.user_id == ""
    assert track_event.profile_id == identify_event.profile_id
    assert Profile.objects.get().email == "lena.vogt@example.de"


def test_different_users_are_different_profiles(client, api_source):
    key = api_source.write_key
    send(client, "/v1/identify", identify(), key=key)
    send(
        client,
        "/v1/identify",
        identify(messageId="m-2", userId="u-2", traits={"email": "ann@example.com"}),
        key=key,
    )

    assert sorted(Profile.objects.values_list("email", flat=True)) == [
        "ann@example.com",
        "lena.vogt@example.de",
    ]


def test_alias_links_a_previous_anonymous_id(client, api_source):
    key = api_source.write_key
    send(client, "/v1/track", track(messageId="m-1", userId=None, anonymousId="anon-9"), key=key)
    send(
        client,
        "/v1/alias",
        {"type": "alias", "messageId": "m-2", "previousId": "anon-9", "userId": "u-1"},
        key=key,
    )

    assert Profile.objects.count() == 1
    assert Event.objects.get(type="alias").properties == {"previousId": "anon-9"}


def test_older_trait_never_overwrites_a_newer_one(client, api_source):
    key = api_source.write_key
    newer = identify(traits={"firstName": "Helena"}, timestamp="2024-05-02T00:00:00Z")
    older = identify(
        messageId="m-old", traits={"firstName": "Lena"}, timestamp="2024-05-01T00:00:00Z"
    )
    send(client, "/v1/identify", newer, key=key)
    send(client, "/v1/identify", older, key=key)

    assert Profile.objects.get().first_name == "Helena"
    assert SourceRecord.objects.get().traits == {"firstName": "Helena"}


@pytest.mark.parametrize("camel_first", [True, False])
def test_segment_spelling_wins_over_snake_case_whatever_the_key_order(
    client, api_source, camel_first
):
    pairs = [
        (("firstName", "Lena"), ("first_name", "Helena")),
        (("lastName", "Vogt"), ("last_name", "Fogt")),
        (("customerId", "C-1"), ("customer_id", "C-2")),
    ]
    traits = {k: v for both in pairs for k, v in (both if camel_first else both[::-1])}
    address = [("postalCode", "10115"), ("postal_code", "99999")]
    traits["address"] = dict(address if camel_first else address[::-1])
    assert list(traits)[0] == ("firstName" if camel_first else "first_name")

    response = send(client, "/v1/identify", identify(traits=traits), key=api_source.write_key)

    assert response.status_code == 200
    record = SourceRecord.objects.get()
    assert record.attributes == {
        "first_name": "Lena",
        "last_name": "Vogt",
        "customer_id": "C-1",
        "postcode": "10115",
    }
    assert record.traits == traits  # both spellings kept verbatim
    assert list(
        Identity.objects.filter(type="customer_id").values_list("raw_value", flat=True)
    ) == ["C-1"]
    profile = Profile.objects.get()
    assert (profile.first_name, profile.last_name) == ("Lena", "Vogt")
    assert RawRecord.objects.get().error == ""


def test_snake_case_spelling_is_read_when_the_segment_one_is_absent_or_blank(client, api_source):
    traits = {"first_name": "Helena", "lastName": " ", "last_name": "Fogt", "customer_id": "C-2"}

    send(client, "/v1/identify", identify(traits=traits), key=api_source.write_key)

    assert SourceRecord.objects.get().attributes == {
        "first_name": "Helena",
        "last_name": "Fogt",
        "customer_id": "C-2",
    }


def test_a_full_name_fills_the_parts_no_trait_of_their_own_gives(client, api_source):
    traits = {"name": "Ana Maria Vogt", "firstName": "", "lastName": "Vogt-Lang"}

    send(client, "/v1/identify", identify(traits=traits), key=api_source.write_key)

    assert SourceRecord.objects.get().attributes == {
        "first_name": "Ana",
        "last_name": "Vogt-Lang",
    }


def test_unusable_trait_value_is_noted_on_the_raw_record(client, api_source):
    message = identify(traits={"email": "not-an-address", "birthday": "someday"})

    response = send(client, "/v1/identify", message, key=api_source.write_key)

    assert response.status_code == 200
    raw = RawRecord.objects.get()
    assert raw.status == "accepted"
    assert raw.error == (
        "trait email: not a valid e-mail address: An email address must have an @-sign.; "
        "trait birth_date: 'someday' is not a date in ISO format (YYYY-MM-DD)"
    )
    email = Identity.objects.get(type="email")
    assert (email.raw_value, email.key) == ("not-an-address", None)
    assert email.flag.startswith("not a valid e-mail address")


def test_a_phone_trait_in_excel_scientific_notation_is_not_the_phone_attribute(client, api_source):
    message = identify(traits={"phone": "2.02555E+09", "address": {"country": "US"}})

    response = send(client, "/v1/identify", message, key=api_source.write_key)

    assert response.status_code == 200
    record = SourceRecord.objects.get()
    assert "phone" not in record.attributes
    assert record.traits["phone"] == "2.02555E+09"
    phone = Identity.objects.get(type="phone")
    assert (phone.raw_value, phone.key) == ("2.02555E+09", None)
    assert RawRecord.objects.get().error == (
        "trait phone: scientific notation (a spreadsheet mangled this number)"
    )
    assert Profile.objects.get().phone == ""


def test_a_trait_that_is_a_list_object_or_true_false_is_kept_but_not_an_attribute(
    client, api_source
):
    traits = {
        "email": ["lena@example.de"],
        "firstName": "Lena",
        "lastName": {"family": "Vogt"},
        "phone": True,
    }

    response = send(client, "/v1/identify", identify(traits=traits), key=api_source.write_key)

    assert response.status_code == 200
    record = SourceRecord.objects.get()
    assert record.traits == traits
    assert record.attributes == {"first_name": "Lena"}
    assert list(Identity.objects.values_list("type", "raw_value")) == [("user_id", "u-1")]
    assert RawRecord.objects.get().error == (
        "trait email: a list or object, not a single value; "
        "trait last_name: a list or object, not a single value; "
        "trait phone: true/false is not a phone value"
    )


def test_a_group_call_without_a_group_id_is_rejected(client, api_source):
    message = {"type": "group", "messageId": "g-1", "userId": "u-1", "traits": {"name": "Acme"}}

    response = send(client, "/v1/group", message, key=api_source.write_key)

    assert response.status_code == 400
    assert response.json()["rejected"] == [{"index": 0, "message": "group needs a groupId"}]
    assert Event.objects.count() == 0


def test_event_time_corrects_the_senders_clock_skew(client, api_source):
    message = track(timestamp=None, originalTimestamp="2024-05-01T10:00:00Z")
    message.pop("timestamp")
    body = {"batch": [message], "sentAt": "2024-05-01T10:00:10Z"}

    before = datetime.now(UTC)
    send(client, "/v1/batch", body, key=api_source.write_key)
    after = datetime.now(UTC)

    event = Event.objects.get()
    # The sender's clock runs behind by (received - sentAt); the event happened 10 s before send.
    assert before.timestamp() - 10 <= event.timestamp.timestamp() <= after.timestamp() - 10


# --- browsers: CORS for analytics.js / RudderStack JS sending straight from a page ------------


def test_a_browser_preflight_is_answered_for_any_page_by_default(client, db):
    response = client.options(
        "/v1/batch",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert response["Access-Control-Allow-Headers"] == (
        "Authorization, Content-Type, Content-Encoding, Sec-GPC"
    )
    assert Event.objects.count() == 0


def test_a_browser_sends_text_plain_with_the_write_key_in_the_body(client, api_source):
    """analytics.js posts text/plain (no preflight) with writeKey in the body."""
    body = json.dumps({**track(), "writeKey": api_source.write_key})

    response = client.post(
        "/v1/track", body, content_type="text/plain", headers={"Origin": "https://shop.example.com"}
    )

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert response["Access-Control-Allow-Origin"] == "*"
    assert Event.objects.count() == 1


def test_listed_origins_only_when_configured(client, api_source, settings):
    settings.CDP_TRACKING_CORS_ORIGINS = ["https://shop.example.com"]
    preflight = {"Access-Control-Request-Method": "POST"}

    allowed = client.options(
        "/v1/batch", headers={"Origin": "https://shop.example.com", **preflight}
    )
    other = client.options("/v1/batch", headers={"Origin": "https://evil.example", **preflight})
    no_origin = send(client, "/v1/track", track(), key=api_source.write_key)

    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert allowed["Vary"] == "Origin"
    assert other.status_code == 204
    assert "Access-Control-Allow-Origin" not in other
    assert "Access-Control-Allow-Methods" not in other
    assert no_origin.status_code == 200
    assert "Access-Control-Allow-Origin" not in no_origin


# --- no query per message ------------------------------------------------------------------


def _batch_of_people(start: int, people: int, per_person: int) -> dict:
    messages = []
    for p in range(start, start + people):
        messages.append(
            identify(
                messageId=f"id-{p}",
                userId=f"u-{p}",
                traits={"email": f"person{p}@example.com", "firstName": f"P{p}"},
            )
        )
        for n in range(per_person - 1):
            messages.append(
                track(
                    messageId=f"t-{p}-{n}", userId=f"u-{p}", event="Product Viewed", properties={}
                )
            )
    return {"batch": messages}


def test_a_batch_costs_the_same_queries_whatever_its_size(client, api_source):
    """New people and known people alike: no query or commit per message."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(body: dict) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert send(client, "/v1/batch", body, key=api_source.write_key).status_code == 200
        return len(ctx.captured_queries)

    small_new = queries(_batch_of_people(0, 2, 3))  # 2 new people, 6 messages
    large_new = queries(_batch_of_people(100, 20, 5))  # 20 new people, 100 messages
    small_known = queries(_batch_of_people(0, 2, 3) | {"batch": [
        track(messageId=f"again-{i}", userId="u-0", event="Product Viewed") for i in range(6)
    ]})  # fmt: skip
    large_known = queries({"batch": [
        track(messageId=f"more-{i}", userId=f"u-{100 + i % 20}", event="Product Viewed")
        for i in range(100)
    ]})  # fmt: skip

    assert Event.objects.count() == 6 + 100 + 6 + 100
    assert Profile.objects.count() == 22
    assert small_new == large_new
    assert small_known == large_known
    assert large_known < large_new


def test_a_batch_opens_no_savepoint_and_reads_no_match_criteria_it_does_not_use(client, api_source):
    """Resolution runs in the request's transaction; the active ruleset's criteria are read
    only when a record meets more than one profile (or a pair is suggested)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from profiles.models import MatchCriterion

    assert MatchCriterion.objects.filter(rule__ruleset__is_active=True).exists()
    send(client, "/v1/batch", _batch_of_people(0, 2, 3), key=api_source.write_key)
    body = _batch_of_people(0, 2, 3) | {"batch": [
        identify(messageId="new-1", userId="u-0", traits={"email": "u0@example.com"}),
        identify(messageId="new-2", userId="u-9", traits={"email": "u9@example.com"}),
    ]}  # fmt: skip
    with CaptureQueriesContext(connection) as ctx:
        assert send(client, "/v1/batch", body, key=api_source.write_key).status_code == 200
    sql = [q["sql"] for q in ctx.captured_queries]

    assert Profile.objects.count() == 3
    assert Identity.objects.filter(key__in=["u0@example.com", "u9@example.com"]).count() == 2
    # The request's own transaction is the one savepoint (inside the test's transaction).
    assert len([s for s in sql if s.upper().startswith("SAVEPOINT")]) == 1
    assert [s for s in sql if "matchcriterion" in s] == []
