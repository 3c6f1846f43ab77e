"""The Events API contract beyond the basics: retries, gzip, limits, order independence."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import zlib
from datetime import UTC, datetime

import pytest

from profiles.models import Event, Identity, Profile, RawRecord, SourceRecord
from profiles.services.tracking import event_time, parse_timestamp, tracking_messages_ingest
from profiles.views import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES


@pytest.fixture
def api_source(make_source):
    return make_source(name="website", kind="api")


def post(client, path, body, key, *, gzipped=False, auth="basic"):
    data = json.dumps(body).encode()
    headers = {}
    if auth == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    if gzipped:
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    return client.post(path, data=data, content_type="application/json", headers=headers)


def track(n: int, **overrides) -> dict:
    message = {
        "type": "track",
        "messageId": f"m-{n}",
        "userId": "u-1",
        "event": "Product Viewed",
        "properties": {"n": n},
        "timestamp": "2024-05-01T10:00:00Z",
    }
    message.update(overrides)
    return message


def stored() -> dict[str, int]:
    return {"raw": RawRecord.objects.count(), "events": Event.objects.count()}


def test_retried_batch_is_stored_once(client, api_source):
    batch = {"batch": [track(1), track(2), track(3)]}

    first = post(client, "/v1/batch", batch, api_source.write_key)
    retry = post(client, "/v1/batch", batch, api_source.write_key)

    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == {"success": True}
    assert stored() == {"raw": 3, "events": 3}
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-1", "m-2", "m-3"]


def test_retry_overlapping_a_new_batch_stores_only_the_new_messages(client, api_source):
    post(client, "/v1/batch", {"batch": [track(1), track(2)]}, api_source.write_key)

    post(client, "/v1/import", {"batch": [track(2), track(3)]}, api_source.write_key)

    assert stored() == {"raw": 3, "events": 3}


def test_gzip_batch_with_batch_level_context_integrations_and_sent_at(client, api_source):
    body = {
        "batch": [track(1, timestamp=None, originalTimestamp="2024-05-01T10:00:00Z"), track(2)],
        "context": {"library": {"name": "custom", "version": "1.0"}},
        "integrations": {"All": False},
        "sentAt": "2024-05-01T10:00:05Z",
        "writeKey": api_source.write_key,
    }

    response = post(client, "/v1/batch", body, None, gzipped=True, auth="body")

    assert response.status_code == 200
    raws = {r.message_id: r.payload for r in RawRecord.objects.all()}
    assert raws["m-1"]["context"] == {"library": {"name": "custom", "version": "1.0"}}
    assert raws["m-1"]["integrations"] == {"All": False}
    assert raws["m-2"]["sentAt"] == "2024-05-01T10:00:05Z"
    assert Event.objects.get(message_id="m-2").context["library"]["name"] == "custom"


def test_invalid_gzip_is_400_and_stores_nothing(client, api_source):
    response = client.post(
        "/v1/batch",
        data=b"not gzip at all",
        content_type="application/json",
        headers={
            "Content-Encoding": "gzip",
            "Authorization": "Basic "
            + base64.b64encode(f"{api_source.write_key}:".encode()).decode(),
        },
    )

    assert (response.status_code, response.json()["code"]) == (400, "invalid_gzip")
    assert stored() == {"raw": 0, "events": 0}


def basic_headers(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(), **extra}


@pytest.mark.parametrize("coding", ["x-gzip", "X-GZIP", "gzip, identity", "identity, x-gzip"])
def test_x_gzip_is_read_as_gzip(client, api_source, coding):
    data = gzip.compress(json.dumps({"batch": [track(1)]}).encode())

    response = client.post(
        "/v1/batch",
        data=data,
        content_type="application/json",
        headers=basic_headers(api_source.write_key, **{"Content-Encoding": coding}),
    )

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert Event.objects.get().properties == {"n": 1}


def test_gzip_applied_twice_is_undone_twice(client, api_source):
    data = gzip.compress(gzip.compress(json.dumps({"batch": [track(1)]}).encode()))

    response = client.post(
        "/v1/batch",
        data=data,
        content_type="application/json",
        headers=basic_headers(api_source.write_key, **{"Content-Encoding": "gzip, x-gzip"}),
    )

    assert response.status_code == 200
    assert stored() == {"raw": 1, "events": 1}


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("deflate", zlib.compress),
        ("br", lambda data: data),  # plain JSON labelled br is refused too, not guessed at
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
        ("compress", lambda data: data),
    ],
)
def test_unsupported_content_encoding_is_415_json_and_stores_nothing(
    client, api_source, coding, compress
):
    data = compress(json.dumps({"batch": [track(1)]}).encode())

    response = client.post(
        "/v1/batch",
        data=data,
        content_type="application/json",
        headers=basic_headers(api_source.write_key, **{"Content-Encoding": coding}),
    )

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_encoding"
    assert response.json()["message"].startswith(f"Content-Encoding {coding.split(', ')[-1]!r}")
    assert stored() == {"raw": 0, "events": 0}


def test_oversized_message_in_a_batch_is_400_and_stores_nothing_of_the_request(client, api_source):
    big = track(2, properties={"blob": "x" * (MAX_MESSAGE_BYTES + 10)})

    response = post(client, "/v1/batch", {"batch": [track(1), big]}, api_source.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "message_too_large"
    assert response.json()["message"].startswith("Message 1 is ")
    assert stored() == {"raw": 0, "events": 0}


def test_oversized_single_message_is_400(client, api_source):
    big = track(1, properties={"blob": "x" * MAX_MESSAGE_BYTES})

    response = post(client, "/v1/track", big, api_source.write_key)

    assert (response.status_code, response.json()["code"]) == (400, "message_too_large")
    assert stored() == {"raw": 0, "events": 0}


def test_gzip_batch_over_500_kb_decompressed_is_400_and_stores_nothing(client, api_source):
    messages = [track(n, properties={"pad": "y" * 20_000}) for n in range(30)]
    body = {"batch": messages}
    assert len(json.dumps(body)) > MAX_BATCH_BYTES
    assert len(gzip.compress(json.dumps(body).encode())) < 10_000  # small on the wire

    response = post(client, "/v1/batch", body, api_source.write_key, gzipped=True)

    assert (response.status_code, response.json()["code"]) == (400, "batch_too_large")
    assert stored() == {"raw": 0, "events": 0}


def test_batch_just_under_the_limits_is_accepted(client, api_source):
    messages = [track(n, properties={"pad": "z" * 30_000}) for n in range(16)]

    response = post(client, "/v1/batch", {"batch": messages}, api_source.write_key)

    assert response.status_code == 200
    assert stored() == {"raw": 16, "events": 16}


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T12:00:00+02:00",
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00:00.000Z",
        "2024-05-01T10:00:00.000000000Z",
        "2024-05-01T05:30:00-04:30",
        "2024-05-01T10:00:00.000+00:00",
    ],
)
def test_timestamps_with_any_offset_and_precision_are_the_same_instant(text):
    assert parse_timestamp(text) == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_clock_skew_rule():
    received = datetime(2024, 5, 1, 10, 0, 10, tzinfo=UTC)
    # The device clock is 1 hour slow: sentAt 09:00:10 when the server got it at 10:00:10.
    skewed = {"originalTimestamp": "2024-05-01T09:00:00Z", "sentAt": "2024-05-01T09:00:10Z"}

    assert event_time(skewed, received) == datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    # An explicit timestamp is the sender's word and is kept.
    explicit = {**skewed, "timestamp": "2024-05-01T08:00:00Z"}
    assert event_time(explicit, received) == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    # originalTimestamp without sentAt cannot be corrected; nothing at all means receivedAt.
    assert event_time({"originalTimestamp": "2024-05-01T09:00:00Z"}, received) == datetime(
        2024, 5, 1, 9, 0, tzinfo=UTC
    )
    assert event_time({}, received) == received


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("timestamp", 12345, "timestamp 12345 is not an ISO-8601 string"),
        ("timestamp", "2024-13-45T10:00:00Z", "timestamp '2024-13-45T10:00:00Z' is not ISO-8601"),
        ("originalTimestamp", "yesterday", "originalTimestamp 'yesterday' is not ISO-8601"),
        ("sentAt", "soon", "sentAt 'soon' is not ISO-8601"),
        (
            "timestamp",
            "0001-01-01T00:00:00+14:00",
            "timestamp '0001-01-01T00:00:00+14:00' is out of range",
        ),
        (
            "originalTimestamp",
            "9999-12-31T23:59:59-14:00",
            "originalTimestamp '9999-12-31T23:59:59-14:00' is out of range",
        ),
    ],
)
def test_a_bad_time_rejects_its_message_not_the_request(client, api_source, field, value, error):
    bad = track(2, **{"timestamp": None, field: value})

    response = post(client, "/v1/batch", {"batch": [track(1), bad]}, api_source.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_message"
    assert response.json()["rejected"] == [{"index": 1, "message": error}]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["m-1"]
    assert RawRecord.objects.get(status="rejected").error == error


def test_a_skew_correction_out_of_range_rejects_the_message(client, api_source):
    bad = track(
        1, timestamp=None, originalTimestamp="9999-12-31T00:00:00Z", sentAt="0001-01-02T00:00:00Z"
    )

    response = post(client, "/v1/track", bad, api_source.write_key)

    assert (response.status_code, response.json()["code"]) == (400, "invalid_message")
    assert Event.objects.count() == 0


STITCH_MESSAGES = [
    {"type": "track", "messageId": "t1", "anonymousId": "a-1", "event": "Viewed",
     "timestamp": "2024-05-01T10:00:00Z"},
    {"type": "identify", "messageId": "i1", "userId": "u-1", "anonymousId": "a-1",
     "traits": {"email": "lena@example.de", "firstName": "Lena"},
     "timestamp": "2024-05-01T10:01:00Z"},
    {"type": "alias", "messageId": "al1", "previousId": "a-2", "userId": "u-1",
     "timestamp": "2024-05-01T10:02:00Z"},
    {"type": "track", "messageId": "t2", "anonymousId": "a-2", "event": "Viewed",
     "timestamp": "2024-05-01T10:03:00Z"},
    {"type": "identify", "messageId": "i2", "userId": "u-1",
     "traits": {"firstName": "Lena Marie"}, "timestamp": "2024-05-01T10:04:00Z"},
]  # fmt: skip


def final_state() -> dict:
    """Everything that must not depend on arrival order (profile ids aside)."""
    events = Event.objects.select_related("profile")
    groups = {}
    for event in events:
        groups.setdefault(event.profile_id, set()).add(event.message_id)
    return {
        "profiles": Profile.objects.count(),
        "event_groups": sorted(sorted(g) for g in groups.values()),
        "records": sorted(
            (r.external_key, json.dumps(r.attributes, sort_keys=True))
            for r in SourceRecord.objects.all()
        ),
        "identities": sorted(
            Identity.objects.values_list("source_record__external_key", "type", "key")
        ),
        "profile": sorted(
            (p.first_name, p.email, json.dumps(p.attributes, sort_keys=True))
            for p in Profile.objects.all()
        ),
    }


@pytest.mark.django_db(transaction=True)
def test_alias_and_identify_give_the_same_final_state_in_any_arrival_order(make_source):
    states = []
    orders = list(itertools.permutations(range(len(STITCH_MESSAGES))))[::7]  # 18 orders
    for order in orders:
        source = make_source(kind="api")
        for index in order:
            result = tracking_messages_ingest(source=source, messages=[STITCH_MESSAGES[index]])
            assert result["accepted"] == 1
        states.append(final_state())
        for model in (Event, RawRecord, Identity, SourceRecord, Profile):
            model.objects.all().delete()

    assert len(orders) == 18
    assert all(state == states[0] for state in states)
    assert states[0]["profiles"] == 1
    assert states[0]["profile"][0][:2] == ("Lena Marie", "lena@example.de")


def test_two_users_identified_on_one_device_in_one_batch_stay_two_people(make_source):
    from profiles.models import MergeSuggestion

    source = make_source(kind="api")
    tracking_messages_ingest(
        source=source,
        messages=[{"type": "track", "messageId": "t", "anonymousId": "anon-1", "event": "Viewed"}],
    )
    visitor = SourceRecord.objects.get().profile_id
    identify = {"type": "identify", "anonymousId": "anon-1"}

    tracking_messages_ingest(
        source=source,
        messages=[
            {**identify, "messageId": "i-a", "userId": "u-A", "traits": {"firstName": "Ann"}},
            {**identify, "messageId": "i-b", "userId": "u-B", "traits": {"firstName": "Bob"}},
        ],
    )

    profile_of = dict(SourceRecord.objects.values_list("external_key", "profile_id"))
    # The first identify takes the visitor's profile; the second user, whose user id conflicts
    # with it, gets a profile of their own and the pair goes to review.
    assert profile_of["user:u-A"] == profile_of["anon:anon-1"] == visitor
    assert profile_of["user:u-B"] != visitor
    assert list(Profile.objects.order_by("pk").values_list("first_name", flat=True)) == [
        "Ann",
        "Bob",
    ]
    assert list(MergeSuggestion.objects.values_list("left_id", "right_id", "status")) == [
        (visitor, profile_of["user:u-B"], "pending")
    ]


def test_alias_with_previous_id_equal_to_user_id_changes_nothing(client, api_source):
    post(client, "/v1/identify", {"type": "identify", "userId": "u-1", "messageId": "i"},
         api_source.write_key)  # fmt: skip
    before = sorted(Identity.objects.values_list("type", "key"))

    response = post(
        client,
        "/v1/alias",
        {"type": "alias", "previousId": "u-1", "userId": "u-1", "messageId": "a"},
        api_source.write_key,
    )

    assert response.status_code == 200
    assert sorted(Identity.objects.values_list("type", "key")) == before == [("user_id", "u-1")]
    assert Profile.objects.count() == 1
    assert SourceRecord.objects.count() == 1


def test_nested_traits_and_properties_are_kept_exactly(client, api_source):
    traits = {
        "address": {"street": "Hauptstr. 1", "city": "Köln", "geo": {"lat": 50.9, "lng": 6.9}},
        "list": [1, {"a": None}, "x"],
        "empty": {},
        "flag": False,
        "dotted.key": "kept",
    }
    properties = {"products": [{"sku": "A", "variants": {"size": 42}}], "total": 1e-7}

    post(client, "/v1/identify", {"type": "identify", "userId": "u", "traits": traits,
                                  "messageId": "i"}, api_source.write_key)  # fmt: skip
    post(client, "/v1/track", {"type": "track", "userId": "u", "event": "E",
                               "properties": properties, "messageId": "t"},
         api_source.write_key)  # fmt: skip

    record = SourceRecord.objects.get()
    assert {k: record.traits[k] for k in traits} == traits
    assert Event.objects.get(type="identify").properties == traits
    assert Event.objects.get(type="track").properties == properties
    assert RawRecord.objects.get(message_id="i").payload["traits"] == traits


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_for_the_same_new_user_all_succeed_and_store_each_event_once(
    live_server, make_source
):
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from django.db import connection

    source = make_source(kind="api")
    auth = (source.write_key, "")

    def send(n: int) -> int:
        batch = [
            track(n * 10 + i, userId="u-race", anonymousId=f"a-{n}", event="Viewed")
            for i in range(10)
        ]
        # Every batch is sent twice: a client retry racing its own first attempt.
        return requests.post(
            f"{live_server.url}/v1/batch", json={"batch": batch}, auth=auth
        ).status_code

    # SQLite's in-memory test database (shared cache) raises "table is locked" instead of
    # waiting like the WAL file in production does: concurrency is exercised on PostgreSQL.
    workers = 8 if connection.vendor == "postgresql" else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(send, [n for n in range(8) for _ in range(2)]))

    assert codes == [200] * 16
    assert Event.objects.count() == 80
    assert RawRecord.objects.count() == 80
    assert SourceRecord.objects.filter(external_key="user:u-race").count() == 1
    assert Profile.objects.count() == 1
    assert Identity.objects.filter(type="anonymous_id").count() == 8


def people_messages(first: int, count: int) -> list[dict]:
    """identify + track + alias for each of ``count`` new users."""
    messages = []
    for n in range(first, first + count):
        user = f"u-{n}"
        messages += [
            {"type": "identify", "messageId": f"i-{n}", "userId": user, "anonymousId": f"a-{n}",
             "traits": {"email": f"{user}@example.de", "firstName": "Ann"}},
            {"type": "track", "messageId": f"t-{n}", "userId": user, "event": "Viewed",
             "properties": {"n": n}},
            {"type": "alias", "messageId": f"al-{n}", "userId": user, "previousId": f"p-{n}"},
        ]  # fmt: skip
    return messages


def test_a_batch_takes_the_same_number_of_queries_for_5_or_50_people(
    make_source, django_assert_max_num_queries
):
    source = make_source(kind="api")
    with django_assert_max_num_queries(40) as small:
        tracking_messages_ingest(source=source, messages=people_messages(0, 5))

    with django_assert_max_num_queries(len(small.captured_queries) + 2):
        result = tracking_messages_ingest(source=source, messages=people_messages(100, 50))

    assert result["accepted"] == 150
    assert Event.objects.count() == 165
    assert Profile.objects.count() == 55


def session_messages(person: int, count: int) -> list[dict]:
    """A visit as the SDKs send it: a page, an identify, then tracks (one of them an order)."""
    user, anon = f"u-{person}", f"a-{person}"
    messages = [
        {"type": "page", "messageId": f"p-{person}", "anonymousId": anon, "name": "Home",
         "properties": {"path": "/"}, "context": {"ip": "192.0.2.1"}},
        {"type": "identify", "messageId": f"i-{person}", "userId": user, "anonymousId": anon,
         "traits": {"email": f"{user}@example.de", "firstName": "Ann", "lastName": "Ng"}},
    ]  # fmt: skip
    for n in range(count - 2):
        event = "Order Completed" if n == 0 else "Product Viewed"
        messages.append(
            {"type": "track", "messageId": f"t-{person}-{n}", "userId": user, "anonymousId": anon,
             "event": event, "properties": {"order_id": f"o-{person}", "total": 10.5}}
        )  # fmt: skip
    return messages


def test_a_100_message_batch_through_the_api_takes_a_fixed_number_of_queries(
    client, api_source, django_assert_max_num_queries
):
    # 20 new people (new records, identities and profiles to resolve: 24 queries on SQLite, 23
    # on PostgreSQL), then 100 more messages of the same people (known records, new events
    # only: 10 queries, no resolution). One query per message would need 100 or more.
    first = [m for person in range(20) for m in session_messages(person, 5)]
    again = [
        {**track(1000 + n), "messageId": f"x-{n}", "userId": f"u-{n % 20}"} for n in range(100)
    ]

    with django_assert_max_num_queries(24):
        response = post(client, "/v1/batch", {"batch": first}, api_source.write_key)
    assert response.status_code == 200
    with django_assert_max_num_queries(10) as known:
        response = post(client, "/v1/batch", {"batch": again}, api_source.write_key)

    assert response.status_code == 200
    assert (RawRecord.objects.count(), Event.objects.count(), Profile.objects.count()) == (
        200,
        200,
        20,
    )
    assert sum("profiles_profile" in q["sql"] for q in known.captured_queries) == 0
    assert Event.objects.filter(message_id="x-7", profile__isnull=False).count() == 1


def test_a_failed_apply_keeps_every_message_pending_and_a_resend_applies_them(
    api_source, monkeypatch
):
    messages = [track(1), track(2), {"type": "track"}]

    def broken(**kwargs):
        raise RuntimeError("resolution failed")

    monkeypatch.setattr("profiles.services.tracking.profiles_resolve", broken)
    with pytest.raises(RuntimeError):
        tracking_messages_ingest(source=api_source, messages=messages)

    assert list(RawRecord.objects.order_by("pk").values_list("message_id", "status")) == [
        ("m-1", "pending"),
        ("m-2", "pending"),
        (None, "rejected"),
    ]
    assert (Event.objects.count(), SourceRecord.objects.count()) == (0, 0)

    monkeypatch.undo()
    result = tracking_messages_ingest(source=api_source, messages=messages[:2])

    assert (result["accepted"], result["duplicates"]) == (2, 0)
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-1", "m-2"]
    assert RawRecord.objects.filter(status="accepted").count() == 2
    assert Event.objects.filter(profile__isnull=False).count() == 2
