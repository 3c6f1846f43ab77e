"""REST API: count, list, create, read, members; token auth; JSON errors."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from segments.models import Segment
from segments.services import segment_create, segment_refresh_request

BERLIN = {
    "type": "group",
    "op": "and",
    "children": [{"type": "field", "field": "city", "operator": "equals", "value": "Berlin"}],
}


@pytest.fixture
def api(db, django_user_model):
    user = django_user_model.objects.create_user("marketer", password="pw")
    user.groups.add(Group.objects.get(name="Marketer"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def people(make_profile):
    return [
        make_profile(first_name="Ann", city="Berlin", email="ann@example.de"),
        make_profile(first_name="Ben", city="Hamburg"),
        make_profile(first_name="Eva", city="Berlin"),
    ]


def test_count(api, people):
    response = api.post("/api/segments/count", {"rules": {"include": BERLIN}}, format="json")
    assert (response.status_code, response.json()) == (200, {"count": 2})


def test_count_accepts_a_bare_group(api, people):
    assert api.post("/api/segments/count", {"rules": BERLIN}, format="json").json() == {"count": 2}


def test_count_with_invalid_rules_is_a_clear_400(api, people):
    rules = {
        "include": {
            "type": "group",
            "children": [{"type": "field", "field": "city", "operator": "greater", "value": 1}],
        }
    }
    response = api.post("/api/segments/count", {"rules": rules}, format="json")

    body = response.json()
    assert response.status_code == 400
    assert body["code"] == "invalid_rules"
    assert body["errors"] == [
        {
            "path": "include.0",
            "message": 'Unknown operator "greater" for City (string); use one of: equals, '
            "not_equals, contains, not_contains, starts_with, in, not_in, is_set, is_not_set.",
        }
    ]
    assert body["message"].startswith("The rules are not valid: include.0: Unknown operator")


@pytest.mark.parametrize(
    ("body", "code"),
    [({}, "missing_rules"), ([], "missing_rules"), ({"rules": "x"}, "invalid_rules")],
)
def test_count_rejects_malformed_bodies(api, body, code):
    response = api.post("/api/segments/count", body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_broken_json_is_a_json_error(api):
    response = api.post("/api/segments/count", "{nope", content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")


def test_token_is_required(db):
    response = APIClient().post("/api/segments/count", {"rules": BERLIN}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_create_list_read_and_members(api, people):
    created = api.post(
        "/api/segments",
        {"name": "Berliners", "description": "City", "rules": {"include": BERLIN}},
        format="json",
    )
    assert created.status_code == 201
    segment_id = created.json()["id"]
    assert created.json()["rules"]["include"]["children"][0]["value"] == "Berlin"

    listed = api.get("/api/segments").json()["results"]
    assert [(s["id"], s["name"], s["size"]) for s in listed] == [(segment_id, "Berliners", None)]

    segment_refresh_request(segment=Segment.objects.get(pk=segment_id), sync=True)
    detail = api.get(f"/api/segments/{segment_id}").json()
    assert (detail["name"], detail["size"]) == ("Berliners", 2)

    page = api.get(f"/api/segments/{segment_id}/members?limit=1").json()
    assert [m["first_name"] for m in page["results"]] == ["Ann"]
    rest = api.get(f"/api/segments/{segment_id}/members?limit=1&after={page['next_after']}").json()
    assert [m["first_name"] for m in rest["results"]] == ["Eva"]
    assert rest["next_after"] == rest["results"][0]["id"]


def test_create_rejects_duplicates_and_bad_rules(api, people):
    segment_create(name="Berliners", rules={"include": BERLIN})

    duplicate = api.post("/api/segments", {"name": "berliners", "rules": BERLIN}, format="json")
    bad = api.post(
        "/api/segments", {"name": "X", "rules": {"include": {"type": "nope"}}}, format="json"
    )

    assert (duplicate.status_code, duplicate.json()["code"]) == (400, "invalid_segment")
    assert "already exists" in duplicate.json()["message"]
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_rules")
    assert Segment.objects.count() == 1


def test_unknown_segment_is_404_json(api):
    response = api.get("/api/segments/999")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_members_need_permission_to_view_profiles(db, django_user_model, people):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("analyst", password="pw")
    user.user_permissions.set(Permission.objects.filter(codename="view_segment"))
    client = APIClient()
    client.force_authenticate(user)
    segment = segment_create(name="B", rules={"include": BERLIN})

    assert client.post("/api/segments/count", {"rules": BERLIN}, format="json").json() == {
        "count": 2
    }
    response = client.get(f"/api/segments/{segment.pk}/members")
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    created = client.post("/api/segments", {"name": "C", "rules": BERLIN}, format="json")
    assert created.status_code == 403


def _include(*children) -> dict:
    return {"rules": {"include": {"type": "group", "op": "and", "children": list(children)}}}


def _field(field, operator, value) -> dict:
    return {"type": "field", "field": field, "operator": operator, "value": value}


def _event_where(value) -> dict:
    where = [{"property": "total", "operator": "greater", "value": value}]
    return {"type": "event", "event": "Order Completed", "where": where}


INT64 = "a whole number from -9223372036854775808 to 9223372036854775807"


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (
            # sent as a JSON number and as text: both beyond a 64-bit integer
            _include(_field("total_orders", "greater", 99999999999999999999)),
            "include.0",
            f"99999999999999999999 is out of range for Total orders; use {INT64}.",
        ),
        (
            _include(_field("city", "equals", "Berlin"), _field("total_orders", "less", "-1e19")),
            "include.1",
            f'"-1e19" is out of range for Total orders; use {INT64}.',
        ),
        (
            _include(_field("total_orders", "between", [1, 2**63])),
            "include.0",
            f"9223372036854775808 is out of range for Total orders; use {INT64}.",
        ),
        (
            _include(_field("total_spent", "greater", 10**400)),
            "include.0",
            "1" + "0" * 56 + "... is out of range for Total spent.",
        ),
        (
            _include(_event_where(99999999999999999999)),
            "include.0.where.0",
            f"99999999999999999999 is out of range for total; use {INT64}.",
        ),
        (
            _include(_event_where("nan")),
            "include.0.where.0",
            '"nan" is not a number (for total).',
        ),
        (
            _include(_event_where("1e400")),
            "include.0.where.0",
            '"1e400" is not a number (for total).',
        ),
    ],
)
def test_count_with_numbers_beyond_the_field_type_is_a_400(api, people, body, path, message):
    response = api.post("/api/segments/count", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_rules"
    assert response.json()["errors"] == [{"path": path, "message": message}]


def _nested(depth: int) -> str:
    leaf = '{"type": "field", "field": "city", "operator": "equals", "value": "Berlin"}'
    group = '{"type": "group", "op": "and", "children": ['
    return '{"rules": {"include": ' + group * depth + leaf + "]}" * depth + "}}"


def test_count_with_groups_nested_too_deep_names_the_group(api, people):
    response = api.post("/api/segments/count", _nested(14), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "include" + ".0" * 13, "message": "Groups can be nested at most 12 deep."}
    ]


def test_count_with_groups_nested_thousands_deep_is_a_400(api, people):
    response = api.post("/api/segments/count", _nested(3000), content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_rules",
        "message": "The rules are nested too deeply: groups can be nested at most 12 deep.",
    }


def test_count_with_groups_nested_twelve_deep_counts(api, people):
    response = api.post("/api/segments/count", _nested(12), content_type="application/json")
    assert (response.status_code, response.json()) == (200, {"count": 2})


# --- segment names: text a database can store, no control characters, model's max length ---


def post_raw(api, body: str):
    """POST a raw JSON body (escapes such as \\ud800 reach the parser as written)."""
    return api.post("/api/segments", body, content_type="application/json")


RULES_JSON = '{"include": {"type": "group", "op": "and", "children": []}}'


@pytest.mark.parametrize(
    "name_json",
    [r'"\ud800"', r'"Berlin \udfff"', r'"\u0000"', r'"VIP\u0000"', r'"a\nb"', r'"tab\there"'],
    ids=["lone-high-surrogate", "lone-low-surrogate", "nul", "nul-inside", "newline", "tab"],
)
def test_create_with_an_unstorable_or_control_character_name_is_a_400(api, db, name_json):
    response = post_raw(api, f'{{"name": {name_json}, "rules": {RULES_JSON}}}')

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_segment",
        "message": "A segment name may not hold control characters or unpaired surrogates.",
    }
    assert Segment.objects.count() == 0


def test_create_with_a_name_longer_than_the_model_field_is_a_400(api, db):
    response = post_raw(api, f'{{"name": "{"x" * 201}", "rules": {RULES_JSON}}}')

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_segment",
        "message": "A segment name has at most 200 characters.",
    }
    assert Segment.objects.count() == 0


def test_create_with_a_name_of_exactly_200_characters_and_unicode_is_201(api, db):
    name = "Zoë 😀 " + "x" * 194
    response = post_raw(api, f'{{"name": "{name}", "rules": {RULES_JSON}}}')

    assert response.status_code == 201
    assert Segment.objects.get().name == name
    assert len(name) == 200


@pytest.mark.parametrize(
    "description_json",
    [r'"\ud800"', r'"ok \udfff"', r'"\u0000"', r'"bell\u0007"'],
    ids=["lone-high-surrogate", "lone-low-surrogate", "nul", "bell"],
)
def test_create_with_an_unstorable_description_is_a_400_not_a_500(api, db, description_json):
    body = f'{{"name": "VIP", "description": {description_json}, "rules": {RULES_JSON}}}'
    response = post_raw(api, body)

    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_segment",
        "message": "A segment description may not hold control characters (other than line "
        "breaks and tabs) or unpaired surrogates.",
    }
    assert Segment.objects.count() == 0


def test_a_description_keeps_line_breaks_and_tabs_and_has_a_length_limit(api, db):
    kept = post_raw(
        api, f'{{"name": "A", "description": " one\\ntwo\\tthree ", "rules": {RULES_JSON}}}'
    )
    too_long = post_raw(
        api, f'{{"name": "B", "description": "{"x" * 2001}", "rules": {RULES_JSON}}}'
    )

    assert kept.status_code == 201
    assert Segment.objects.get(name="A").description == "one\ntwo\tthree"
    assert (too_long.status_code, too_long.json()["message"]) == (
        400,
        "A segment description has at most 2,000 characters.",
    )


def test_list_pages_by_offset_and_limit_and_refuses_bad_numbers(api, db):
    for name in ("Alpha", "Beta", "Gamma"):
        segment_create(name=name, rules={"include": BERLIN})

    first = api.get("/api/segments?limit=2").json()
    second = api.get(f"/api/segments?limit=2&offset={first['next_offset']}").json()

    assert (first["count"], [s["name"] for s in first["results"]]) == (3, ["Alpha", "Beta"])
    assert ([s["name"] for s in second["results"]], second["next_offset"]) == (["Gamma"], None)
    for query in (
        "limit=abc",
        "limit=0",
        "limit=1001",
        "limit=%2B1",  # +1
        "limit=1_0",
        "offset=-1",
        "offset=1.5",
        "offset=9223372036854775808",  # beyond a bigint: was a 500
        "offset=99999999999999999999999",
    ):
        response = api.get(f"/api/segments?{query}")
        assert (response.status_code, response.json()["code"]) == (400, "invalid"), query
    alpha = Segment.objects.get(name="Alpha").pk
    huge = api.get(f"/api/segments/{alpha}/members?after=99999999999999999999")
    assert (huge.status_code, huge.json()["message"]) == (
        400,
        "after must be between 0 and 9223372036854775807.",
    )
    members = api.get(f"/api/segments/{alpha}/members?limit=x")
    assert (members.status_code, members.json()["message"]) == (
        400,
        "limit must be a whole number.",
    )


# --- rule values a database cannot store; group keys that are not part of a group ---


@pytest.mark.parametrize(
    ("value_json", "where"),
    [
        (r'"\ud800"', "rules.include.children.0.value"),
        (r'"Ber\u0000lin"', "rules.include.children.0.value"),
        (r'["Berlin", "\udfff"]', "rules.include.children.0.value.1"),
    ],
    ids=["lone-surrogate", "nul", "surrogate-in-list"],
)
def test_count_with_unstorable_text_in_a_rule_is_a_400_not_a_500(api, people, value_json, where):
    operator = "in" if value_json.startswith("[") else "equals"
    body = (
        '{"rules": {"include": {"type": "group", "op": "and", "children": [{"type": "field", '
        f'"field": "city", "operator": "{operator}", "value": {value_json}}}]}}}}}}'
    )
    response = api.post("/api/segments/count", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_rules"
    assert response.json()["errors"] == [
        {
            "path": "rules",
            "message": f"Text at {where} may not hold NUL or unpaired surrogate characters.",
        }
    ]


def test_a_group_with_a_misspelt_children_key_is_a_400_not_everyone(api, people):
    group = {"type": "group", "op": "and", "rules": BERLIN["children"]}

    response = api.post("/api/segments/count", {"rules": {"include": group}}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "include", "message": "Unknown keys in a group: rules."}
    ]
    created = api.post("/api/segments", {"name": "Typo", "rules": group}, format="json")
    assert created.status_code == 400
    assert Segment.objects.count() == 0
