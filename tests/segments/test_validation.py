"""Rules that cannot run are rejected with a message that says what and where."""

from __future__ import annotations

import pytest

from segments.compiler import rules_validate
from segments.registry import get_registry


def F(field, operator, value=None):
    node = {"type": "field", "field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def problems(*children) -> list[dict]:
    rules = {"include": {"type": "group", "op": "and", "children": list(children)}}
    return rules_validate(rules, get_registry())[1]


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (F("shoe_size", "equals", "42"), 'Unknown field "shoe_size".'),
        (F("trait:bad name!", "equals", "x"), 'Unknown field "trait:bad name!".'),
        (F("email; DROP TABLE profiles_profile", "equals", "x"), "Unknown field"),
        (F("city", "greater", "B"), 'Unknown operator "greater" for City (string)'),
        (F("city", "LIKE '%'", "B"), """Unknown operator "LIKE '%'" for City"""),
        (F("total_spent", "greater", "lots"), '"lots" is not a number (for Total spent).'),
        (F("total_spent", "greater", True), "True is not a number (for Total spent)."),
        (F("total_orders", "equals", 2.5), "2.5 is not a whole number (for Total orders)."),
        (F("birth_date", "before", "01/02/1990"), '"01/02/1990" is not a date as YYYY-MM-DD'),
        (F("created_at", "within_last", "a week"), '"a week" is not a whole number of days'),
        (F("created_at", "within_last", 0), "between 1 and 36500"),
        (F("created_at", "in_period", "last_decade"), '"last_decade" is not a calendar period'),
        (F("accepts_email_marketing", "equals", "maybe"), '"maybe" is not yes/no'),
        (F("city", "equals", {"$ne": 1}), "{'$ne': 1} is not text (for City)."),
        (F("city", "equals", "  "), "A value is needed for City; use 'is not set'"),
        (F("total_spent", "between", [100, 10]), "The first value must not be after the second"),
        (F("country", "in", []), "'is one of' needs a list of values (for Country)."),
        (
            {"type": "sql", "query": "1=1"},
            'Unknown condition type "sql"; use one of: group, field,',
        ),
        (
            {"type": "event", "event": "Order Completed", "frequency": {"op": "often"}},
            '"often" is not a frequency',
        ),
        (
            {
                "type": "event",
                "event": "X",
                "where": [{"property": "a'b", "operator": "equals", "value": 1}],
            },
            '"a\'b" is not a property name',
        ),
        (
            {
                "type": "event",
                "event": "X",
                "where": [{"property": "total", "operator": "greater", "value": "ten"}],
            },
            '"ten" is not a number (for total).',
        ),
        ({"type": "segment", "segment": "abc"}, "Choose a segment (its id)."),
    ],
)
def test_bad_rules_are_rejected_with_a_clear_message(node, message):
    found = problems(F("city", "equals", "Berlin"), node)

    assert len(found) == 1
    assert found[0]["path"].startswith("include.1")
    assert message in found[0]["message"]


def test_every_problem_is_reported_with_its_path():
    rules = {
        "include": {
            "type": "group",
            "op": "xor",
            "children": [
                F("nope", "equals", "x"),
                {"type": "group", "op": "or", "children": [F("city", "gt", 1)]},
            ],
        },
        "exclude": "everyone",
        "limit": 5,
    }
    found = rules_validate(rules, get_registry())[1]

    assert [p["path"] for p in found] == ["rules", "include", "include.0", "include.1.0", "exclude"]


def test_valid_values_are_normalised():
    clean, found = rules_validate(
        {
            "include": {
                "type": "group",
                "children": [F("total_spent", "greater", "50"), F("email", "equals", " Ann@X.DE ")],
            }
        },
        get_registry(),
    )
    assert found == []
    assert [c["value"] for c in clean["include"]["children"]] == [50.0, "ann@x.de"]
