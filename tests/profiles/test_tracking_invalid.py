"""Hostile or malformed input to the tracking API: each bad message is rejected with its reason
and kept as a rejected raw record, the other messages of the request are stored and applied, and
the answer is always JSON (never a 500)."""

from __future__ import annotations

import base64
import json

import pytest

from profiles.models import Event, RawRecord
from profiles.services.tracking import json_value_problem


@pytest.fixture
def api_source(make_source):
    return make_source(name="website", kind="api")


def post(client, path: str, body: object, key: str):
    """POST a body; a str body is sent as it is (JSON text written by hand)."""
    data = body if isinstance(body, str) else json.dumps(body)
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    return client.post(
        path, data=data, content_type="application/json", headers={"Authorization": auth}
    )


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


def assert_only_the_good_message_applied(response, error: str) -> RawRecord:
    """The request answered 400 invalid_message for message 1 only; message 0 was applied."""
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_message"
    assert body["rejected"] == [{"index": 1, "message": error}]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["m-1"]
    assert list(RawRecord.objects.values_list("status", flat=True).order_by("pk")) == [
        "accepted",
        "rejected",
    ]
    rejected = RawRecord.objects.get(status="rejected")
    assert rejected.error == error
    return rejected


# --- unpaired surrogates -------------------------------------------------------------------

SURROGATE_EVENT = '{"type": "track", "messageId": "m-2", "userId": "u-1", "event": "\\ud800"}'
SURROGATE_ERROR = "event holds an unpaired surrogate (\\ud800), which cannot be stored"
SURROGATE_TRAIT = (
    '{"type": "identify", "messageId": "m-2", "userId": "u-1", "traits": {"\\ud83d": "x"}}'
)


@pytest.mark.parametrize(
    ("bad", "error", "kept"),
    [
        (
            SURROGATE_EVENT,
            SURROGATE_ERROR,
            '"event": "\\ud800"',
        ),
        (
            SURROGATE_TRAIT,
            'traits["\\ud83d"] holds an unpaired surrogate (\\ud83d), which cannot be stored',
            '"traits": {"\\ud83d": "x"}',
        ),
    ],
    ids=["event", "trait-key"],
)
def test_an_unpaired_surrogate_rejects_its_message_and_keeps_it_as_json_text(
    client, api_source, bad, error, kept
):
    body = '{"batch": [' + json.dumps(track(1)) + ", " + bad + "]}"

    response = post(client, "/v1/batch", body, api_source.write_key)

    rejected = assert_only_the_good_message_applied(response, error)
    # The message is kept as the JSON text it was sent as, escapes included: nothing is lost.
    assert list(rejected.payload) == ["json"]
    assert kept in rejected.payload["json"]
    assert json.loads(rejected.payload["json"]) == json.loads(bad)


def test_an_unpaired_surrogate_without_message_id_is_rejected_not_a_500(client, api_source):
    body = '{"type": "track", "userId": "u-1", "event": "\\ud800"}'

    response = post(client, "/v1/track", body, api_source.write_key)

    assert response.status_code == 400
    assert response.json()["rejected"] == [{"index": 0, "message": SURROGATE_ERROR}]
    assert RawRecord.objects.get().status == "rejected"
    assert Event.objects.count() == 0


def test_a_nul_character_rejects_its_message(client, api_source):
    # PostgreSQL stores no U+0000 in text or jsonb: the same rule on every database.
    bad = track(2, properties={"note": "a\x00b"})

    response = post(client, "/v1/batch", {"batch": [track(1), bad]}, api_source.write_key)

    rejected = assert_only_the_good_message_applied(
        response, "properties.note holds U+0000, which cannot be stored"
    )
    assert json.loads(rejected.payload["json"]) == bad


def test_a_write_key_with_an_unpaired_surrogate_is_401(client, api_source):
    body = '{"writeKey": "\\ud800", "type": "track", "userId": "u-1", "event": "x"}'

    response = client.post("/v1/track", data=body, content_type="application/json")

    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_write_key",
        "message": "The write key is not known.",
    }
    assert RawRecord.objects.count() == 0


def test_a_surrogate_in_a_batch_over_32_kb_is_rejected_with_its_message_only(client, api_source):
    # Over 32 KB the view measures each message: the surrogate must not fail that measure.
    padding = [track(n, properties={"pad": "x" * 1000}) for n in range(3, 43)]
    body = '{"batch": [' + ", ".join(map(json.dumps, [track(1)])) + ", " + SURROGATE_EVENT
    body += ", " + ", ".join(map(json.dumps, padding)) + "]}"
    assert len(body) > 32 * 1024

    response = post(client, "/v1/batch", body, api_source.write_key)

    assert response.status_code == 400
    assert response.json()["rejected"] == [{"index": 1, "message": SURROGATE_ERROR}]
    assert Event.objects.count() == 41


# --- non-finite numbers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "shown"),
    [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("1e999", "Infinity")],
)
def test_a_non_finite_number_rejects_its_message(client, api_source, number, shown):
    # Python's json reads NaN, Infinity and an overflowing 1e999; JSON columns refuse them all.
    bad = '{"type": "track", "messageId": "m-2", "userId": "u-1", "event": "Order Completed", '
    bad += '"properties": {"total": ' + number + "}}"
    body = '{"batch": [' + json.dumps(track(1)) + ", " + bad + "]}"

    response = post(client, "/v1/batch", body, api_source.write_key)

    rejected = assert_only_the_good_message_applied(
        response, f"properties.total is not a finite number ({shown})"
    )
    assert rejected.payload == {"json": json.dumps(json.loads(bad))}
    assert f'"total": {shown}' in rejected.payload["json"]


def test_a_non_finite_number_in_the_batch_context_rejects_every_message(client, api_source):
    body = '{"batch": [' + json.dumps(track(1)) + '], "context": {"screen": {"density": NaN}}}'

    response = post(client, "/v1/batch", body, api_source.write_key)

    assert response.status_code == 400
    assert response.json()["rejected"] == [
        {"index": 0, "message": "context.screen.density is not a finite number (NaN)"}
    ]
    assert Event.objects.count() == 0
    # The message itself is storable as sent (the batch context is not part of it).
    assert RawRecord.objects.get().payload == track(1)


# --- nesting depth -------------------------------------------------------------------------


def nested(levels: int) -> str:
    """JSON text of objects nested ``levels`` deep: {"a": {"a": ... 1 ...}}."""
    return '{"a": ' * levels + "1" + "}" * levels


def test_properties_nested_5000_deep_are_400_not_a_500_and_nothing_is_stored(client, api_source):
    body = '{"userId": "deep", "event": "D", "properties": ' + nested(5000) + "}"

    response = post(client, "/v1/track", body, api_source.write_key)

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_json",
        "message": "The body nests objects and arrays deeper than 256 levels.",
    }
    assert RawRecord.objects.count() == 0


def test_a_body_just_over_256_levels_is_400_invalid_json(client, api_source):
    # body, batch, message: 3 levels; properties and what it nests: 254 more = 257.
    bad = '{"type": "track", "userId": "u-1", "event": "D", "properties": ' + nested(254) + "}"
    body = '{"batch": [' + json.dumps(track(1)) + ", " + bad + "]}"

    response = post(client, "/v1/batch", body, api_source.write_key)

    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")
    assert RawRecord.objects.count() == 0


@pytest.mark.parametrize(("levels", "accepted"), [(63, True), (64, False), (200, False)])
def test_a_message_nested_deeper_than_64_levels_is_rejected_alone(
    client, api_source, levels, accepted
):
    # The message is level 1 and properties (the outermost nested object) level 2: 63 nested
    # objects reach level 64, the deepest allowed.
    bad = '{"type": "track", "messageId": "m-2", "userId": "u-1", "event": "D", "properties": '
    bad += nested(levels) + "}"
    body = '{"batch": [' + json.dumps(track(1)) + ", " + bad + "]}"

    response = post(client, "/v1/batch", body, api_source.write_key)

    if accepted:
        assert response.json() == {"success": True}
        assert Event.objects.count() == 2
        return
    rejected = assert_only_the_good_message_applied(
        response, "properties nests deeper than 64 levels"
    )
    assert rejected.payload == json.loads(bad)  # kept as sent


# --- types and lengths of names and ids ----------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"event": {"a": 1}}, "event must be a string"),
        ({"event": ["Order Completed"]}, "event must be a string"),
        ({"event": 42}, "event must be a string"),
        ({"event": "E" * 201}, "event is 201 characters; the limit is 200"),
        ({"userId": "u" * 20000}, "userId is 20000 characters; the limit is 200"),
        ({"userId": True}, "userId must be a string or an integer"),
        ({"userId": 1.5}, "userId must be a string or an integer"),
        ({"userId": ["u-1"]}, "userId must be a string or an integer"),
        ({"anonymousId": {"id": 1}}, "anonymousId must be a string or an integer"),
        ({"anonymousId": "a" * 201}, "anonymousId is 201 characters; the limit is 200"),
        ({"messageId": {"id": 1}}, "messageId must be a string or an integer"),
        ({"messageId": "m" * 201}, "messageId is 201 characters; the limit is 200"),
        ({"type": {"a": 1}}, "type must be one of alias, group, identify, page, screen, track"),
        (
            {"type": "group", "groupId": ["x"]},
            "groupId must be a string or an integer",
        ),
        ({"type": "alias", "previousId": {"a": 1}}, "previousId must be a string or an integer"),
        ({"type": "page", "name": {"a": 1}}, "name must be a string"),
        ({"type": "screen", "name": "S" * 201}, "name is 201 characters; the limit is 200"),
    ],
    ids=lambda value: str(value)[:30] if isinstance(value, dict) else None,
)
def test_a_name_or_id_of_the_wrong_type_or_too_long_rejects_its_message(
    client, api_source, overrides, error
):
    bad = track(2, **overrides)

    response = post(client, "/v1/batch", {"batch": [track(1), bad]}, api_source.write_key)

    rejected = assert_only_the_good_message_applied(response, error)
    assert rejected.payload == bad


@pytest.mark.parametrize(
    ("overrides", "stored"),
    [
        ({"userId": 12345}, ("track", "Product Viewed", "12345")),
        ({"userId": "u" * 200}, ("track", "Product Viewed", "u" * 200)),
        ({"event": "E" * 200}, ("track", "E" * 200, "u-1")),
        ({"type": "group", "groupId": 77}, ("group", "77", "u-1")),
        ({"type": "group", "groupId": "acme"}, ("group", "acme", "u-1")),
        ({"type": "page", "name": "Home"}, ("page", "Home", "u-1")),
    ],
    ids=str,
)
def test_names_and_ids_within_the_rules_are_stored_as_given(client, api_source, overrides, stored):
    response = post(client, "/v1/batch", {"batch": [track(1, **overrides)]}, api_source.write_key)

    assert response.json() == {"success": True}
    event = Event.objects.get()
    assert (event.type, event.name, event.user_id) == stored


def test_an_integer_message_id_is_stored_as_its_decimal_text_also_zero(client, api_source):
    batch = {"batch": [track(1, messageId=0), track(2, messageId=7)]}

    first = post(client, "/v1/batch", batch, api_source.write_key)
    again = post(client, "/v1/batch", {"batch": [track(1, messageId="0")]}, api_source.write_key)

    assert (first.json(), again.json()) == ({"success": True}, {"success": True})
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["0", "7"]
    assert sorted(RawRecord.objects.values_list("message_id", flat=True)) == ["0", "7"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (json.loads(nested(64)), None),
        (json.loads(nested(65)), "a nests deeper than 64 levels"),
        ({"text": "{[" * 40}, None),  # brackets inside text are no nesting
        ({"text": "a \\u0000 b"}, None),  # the escape as six characters is plain text
        ({"text": "a \x00 b"}, "text holds U+0000, which cannot be stored"),
        ({"n": [1.5, float("inf")]}, "n[1] is not a finite number (Infinity)"),
        (
            {"k\ud800": 1},
            '["k\\ud800"] holds an unpaired surrogate (\\ud800), which cannot be stored',
        ),
    ],
    ids=["64-levels", "65-levels", "brackets-in-text", "escape-text", "nul", "infinity", "key"],
)
def test_json_value_problem_at_the_edges(value, problem):
    assert json_value_problem(value) == problem
