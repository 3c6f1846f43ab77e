"""The builder's server side: tree actions, counts, type-ahead, save, why page, segment page."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from segments.models import Segment
from segments.services import segment_create, segment_refresh_request


def F(field, operator, value=None):
    node = {"type": "field", "field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def rules(*children, op="and"):
    return {
        "include": {"type": "group", "op": op, "negate": False, "children": list(children)},
        "exclude": {"type": "group", "op": "or", "negate": False, "children": []},
    }


def node_count(html: str, slug: str) -> str:
    match = re.search(rf'id="count-{slug}" class="seg-count[^"]*"[^>]*>([^<]*)<', html)
    return match.group(1) if match else ""


@pytest.fixture
def berliners(make_profile):
    make_profile(first_name="Ann", city="Berlin", country="DE", email="ann@example.de")
    make_profile(first_name="Ben", city="Hamburg", country="DE")
    make_profile(first_name="Eva", city="Berlin", country="AT")


def test_builder_page_renders_palette_starters_and_tree(admin_client, berliners):
    response = admin_client.get(reverse("admin:segments_builder") + "?start=lapsed_buyers")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-key="city"' in html and 'data-key="trait:' not in html
    assert 'value="Lapsed buyers"' in html
    assert html.count('class="seg-node seg-cond seg-kind-event"') == 2
    assert "vendor/Sortable.min.js" in html and "htmx" in html


def test_tree_actions_wrap_move_and_reorder(admin_client, berliners):
    url = reverse("admin:segments_builder_tree")
    tree = rules(F("city", "equals", "Berlin"), F("country", "equals", "DE"))

    wrapped = admin_client.post(
        url, {"rules": json.dumps(tree), "action": "wrap", "path": "include.1"}
    )
    assert wrapped.headers["HX-Trigger-After-Settle"] == "seg-changed"
    html = wrapped.content.decode()
    assert 'data-path="include.1"' in html and 'data-path="include.1.0"' in html

    moved_tree = rules(
        F("city", "equals", "Berlin"),
        {"type": "group", "op": "or", "negate": False, "children": []},
    )
    moved = admin_client.post(
        url,
        {"rules": json.dumps(moved_tree), "action": "move", "path": "include.0", "to": "include.1"},
    ).content.decode()
    assert 'data-path="include.0.0"' in moved and 'data-path="include.1"' not in moved


def test_counts_give_total_each_node_and_preview(admin_client, berliners):
    tree = rules(
        F("country", "equals", "DE"),
        {
            "type": "group",
            "op": "or",
            "negate": False,
            "children": [F("city", "equals", "Berlin"), F("city", "equals", "Hamburg")],
        },
    )
    html = admin_client.post(
        reverse("admin:segments_builder_counts"), {"rules": json.dumps(tree)}
    ).content.decode()

    assert '<strong id="seg-total" hx-swap-oob="true">2</strong>' in html
    assert node_count(html, "include-0") == "2"
    assert node_count(html, "include-1") == "3"
    assert node_count(html, "include-1-0") == "2"
    assert "ann@example.de" in html


def test_incomplete_condition_is_left_out_of_counts_and_named(admin_client, berliners):
    tree = rules(F("country", "equals", "DE"), F("city", "equals", ""))
    html = admin_client.post(
        reverse("admin:segments_builder_counts"), {"rules": json.dumps(tree)}
    ).content.decode()

    assert '<strong id="seg-total" hx-swap-oob="true">2</strong>' in html
    assert ">incomplete<" in html
    assert "A value is needed for City" in html


def group(*children, op="or", negate=False):
    return {"type": "group", "op": op, "negate": negate, "children": list(children)}


def counts(admin_client, tree) -> str:
    return admin_client.post(
        reverse("admin:segments_builder_counts"), {"rules": json.dumps(tree)}
    ).content.decode()


def total(html: str) -> str:
    return re.search(r'<strong id="seg-total" hx-swap-oob="true">([^<]*)<', html).group(1)


def test_group_of_only_incomplete_conditions_is_left_out_of_its_parent(admin_client, berliners):
    # DE AND (city = ? OR (city in ?)): the half-built OR group must not make it "no one".
    html = counts(
        admin_client,
        rules(
            F("country", "equals", "DE"),
            group(F("city", "equals", ""), group(F("city", "in", ""), op="and", negate=True)),
        ),
    )

    assert total(html) == "2"
    assert node_count(html, "include-0") == "2"
    for slug in ("include-1", "include-1-0", "include-1-1", "include-1-1-0"):
        assert node_count(html, slug) == "incomplete"
    assert "A value is needed for City" in html


@pytest.mark.parametrize(("op", "negate"), [("or", False), ("and", False), ("or", True)])
def test_include_of_only_incomplete_conditions_counts_everyone(admin_client, berliners, op, negate):
    tree = rules(F("city", "equals", ""), group(F("country", "equals", "")))
    tree["include"].update(op=op, negate=negate)

    html = counts(admin_client, tree)

    assert total(html) == "3"
    assert node_count(html, "include-0") == node_count(html, "include-1") == "incomplete"


def test_incomplete_exclude_excludes_no_one(admin_client, berliners):
    tree = rules(F("country", "equals", "DE"))
    tree["exclude"]["children"] = [F("city", "equals", ""), group(F("city", "in", ""), op="and")]

    assert total(counts(admin_client, tree)) == "2"


def test_incomplete_condition_next_to_complete_ones_stays_neutral(admin_client, berliners):
    # In OR it is no one, in AND everyone: Berlin OR ? = 2; (DE AND ?) OR Berlin = 3.
    assert (
        total(
            counts(
                admin_client, rules(F("city", "equals", "Berlin"), F("city", "equals", ""), op="or")
            )
        )
        == "2"
    )
    tree = rules(
        group(F("country", "equals", "DE"), F("city", "equals", ""), op="and"),
        F("city", "equals", "Berlin"),
        op="or",
    )
    assert total(counts(admin_client, tree)) == "3"


def test_type_ahead_offers_real_distinct_values(admin_client, berliners):
    response = admin_client.get(
        reverse("admin:segments_builder_values"), {"field": "city", "q": "b"}
    )
    assert response.content.decode().split() == ["<option", 'value="Berlin"></option>']


@pytest.fixture
def shoppers(make_profile):
    """Typed JSON attributes as imports store them (numbers, yes/no, ISO dates) and traits."""
    make_profile(
        attributes={"total_orders": 10, "total_spent": 258.17, "accepts_email_marketing": False},
        traits={"tier": "gold"},
    )
    make_profile(
        attributes={"total_orders": 2, "birth_date": "1990-04-01", "accepts_email_marketing": True},
        traits={"tier": "silver"},
    )
    make_profile(attributes={"total_orders": 9, "total_spent": 1200.0}, traits={"tier": "gold"})
    make_profile(attributes={"total_orders": None})
    make_profile(attributes={})


def options(response) -> list[str]:
    assert response.status_code == 200
    return re.findall(r'<option value="([^"]*)"></option>', response.content.decode())


@pytest.mark.parametrize(
    ("field", "q", "values"),
    [
        ("total_orders", "", ["2", "9", "10"]),  # numbers in numeric order
        ("total_orders", "1", ["10"]),
        ("total_spent", "", ["258.17", "1200.0"]),
        ("accepts_email_marketing", "", ["false", "true"]),
        ("birth_date", "19", ["1990-04-01"]),
        ("trait:tier", "", ["gold", "silver"]),
        ("trait:tier", "G", ["gold"]),
        ("trait:unknown_trait", "", []),
    ],
)
def test_type_ahead_offers_typed_json_values(admin_client, shoppers, field, q, values):
    response = admin_client.get(reverse("admin:segments_builder_values"), {"field": field, "q": q})
    assert options(response) == values


def test_save_creates_segment_and_redirects(admin_client, berliners):
    response = admin_client.post(
        reverse("admin:segments_builder_save"),
        {
            "rules": json.dumps(rules(F("city", "equals", "Berlin"))),
            "name": "Berlin",
            "description": "x",
        },
    )
    segment = Segment.objects.get()
    assert response.headers["HX-Redirect"] == reverse(
        "admin:segments_segment_change", args=[segment.pk]
    )
    assert segment.rules["include"]["children"] == [F("city", "equals", "Berlin")]


def test_save_with_a_nul_in_the_name_shows_the_problem_and_saves_nothing(admin_client, berliners):
    response = admin_client.post(
        reverse("admin:segments_builder_save"),
        {"rules": json.dumps(rules(F("city", "equals", "Berlin"))), "name": "VIP\u0001"},
    )
    assert (
        "A segment name may not hold control characters or unpaired surrogates."
        in response.content.decode()
    )
    assert Segment.objects.count() == 0


def test_admin_change_form_refuses_a_control_character_and_a_too_long_name(admin_client, db):
    segment = segment_create(name="Berlin", rules=rules())
    url = reverse("admin:segments_segment_change", args=[segment.pk])

    control = admin_client.post(url, {"name": "Ber\x07lin", "description": ""})
    too_long = admin_client.post(url, {"name": "x" * 201, "description": ""})

    assert control.status_code == 200
    assert (
        "A segment name may not hold control characters or unpaired surrogates."
        in control.content.decode()
    )
    assert too_long.status_code == 200
    # The form field's own max_length (the model's) answers first.
    assert "Ensure this value has at most 200 characters (it has 201)." in too_long.content.decode()
    segment.refresh_from_db()
    assert segment.name == "Berlin"


def test_admin_change_form_saves_a_valid_name_stripped(admin_client, db):
    segment = segment_create(name="Berlin", rules=rules())
    url = reverse("admin:segments_segment_change", args=[segment.pk])

    response = admin_client.post(url, {"name": "  Berlin VIP  ", "description": ""})

    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "Berlin VIP"


def test_save_with_invalid_rules_shows_the_problem_and_saves_nothing(admin_client, berliners):
    response = admin_client.post(
        reverse("admin:segments_builder_save"),
        {"rules": json.dumps(rules(F("total_spent", "greater", "lots"))), "name": "Big"},
    )
    assert (
        "Include › 1: &quot;lots&quot; is not a number (for Total spent)."
        in response.content.decode()
    )
    assert Segment.objects.count() == 0


def test_why_page_marks_each_condition(admin_client, berliners):
    segment = segment_create(
        name="DE Berliners",
        rules=rules(F("country", "equals", "DE"), F("city", "equals", "Berlin")),
    )
    html = admin_client.get(
        reverse("admin:segments_why", args=[segment.pk]), {"profile": "ann@example.de"}
    ).content.decode()
    assert "is in “DE Berliners”" in html

    eva = segment.pk and __import__("profiles.models").models.Profile.objects.get(first_name="Eva")
    html = admin_client.get(
        reverse("admin:segments_why", args=[segment.pk]), {"profile": str(eva.pk)}
    ).content.decode()
    assert "is not in “DE Berliners”" in html
    assert html.count("seg-why-node seg-false") == 2  # include group and the country condition
    assert html.count("seg-why-node seg-true") == 1  # city equals Berlin


def test_segment_page_shows_chart_data_and_changes(
    admin_client, berliners, django_assert_max_num_queries
):
    segment = segment_create(name="Berlin", rules=rules(F("city", "equals", "Berlin")))
    segment_refresh_request(segment=segment, sync=True)

    with django_assert_max_num_queries(25):
        html = admin_client.get(
            reverse("admin:segments_segment_change", args=[segment.pk])
        ).content.decode()
    assert 'id="seg-size-data"' in html and '"y": [2]' in html
    assert "vendor/plotly.min.js" in html
    assert html.count("<td>Entered</td>") == 2


def test_marketer_without_profile_permission_gets_no_preview(client, berliners, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("m", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="segments"))
    client.force_login(user)
    html = client.post(
        reverse("admin:segments_builder_counts"),
        {"rules": json.dumps(rules(F("city", "equals", "Berlin")))},
    ).content.decode()
    assert '<strong id="seg-total" hx-swap-oob="true">2</strong>' in html
    assert "ann@example.de" not in html and "seg-preview" not in html


def test_segment_list_has_starters_and_a_query_budget(
    admin_client, db, django_assert_max_num_queries
):
    for i in range(15):
        segment_create(name=f"Segment {i}", rules=rules(F("city", "equals", "Berlin")))

    with django_assert_max_num_queries(12):
        html = admin_client.get(reverse("admin:segments_segment_changelist")).content.decode()
    assert html.count('href="/admin/segments/segment/builder/?start=') == 4
    assert "Segment 14" in html


def test_add_goes_to_the_builder(admin_client, db):
    response = admin_client.get(reverse("admin:segments_segment_add"))
    assert response.headers["Location"] == reverse("admin:segments_builder")
