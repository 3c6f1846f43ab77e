"""Insights as fields of the segment registry, through the real rule compiler.

``insights/segment_fields.py`` is discovered by ``segments.registry`` (``test_custom.py`` covers
the same conditions through ``insights.fields.insight_condition_profile_ids``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from insights.models import CustomInsight, InsightRun, ProfileInsight
from insights.services.runs import insight_run_create
from segments.registry import get_registry, registry_reset
from segments.selectors import rules_profiles


def F(field, operator, value=None):
    node = {"type": "field", "field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def AND(*children, negate=False):
    return {"type": "group", "op": "and", "negate": negate, "children": list(children)}


@pytest.fixture
def people(send, profile_of):
    """ann: CLV 650, At risk, 3 shoe views; bob: CLV 900, Loyal; cy: CLV 120, At risk;
    dee: no insight row at all (never computed)."""
    registry_reset()
    CustomInsight.objects.create(
        name="Shoe views", key="shoe_views", aggregate="count", event_name="Product Viewed"
    )
    for user in ("ann", "bob", "cy"):
        send(user, traits={"email": f"{user}@example.org"})
    for day in (1, 2, 3):
        when = f"2026-06-0{day}T10:00:00Z"
        send("ann", "Product Viewed", properties={"category": "Shoes"}, timestamp=when)
    insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    send("dee", traits={"email": "dee@example.org"})  # after the run: no insight row
    values = {"ann": (650, "at_risk"), "bob": (900, "loyal"), "cy": (120, "at_risk")}
    for user, (clv, group) in values.items():
        ProfileInsight.objects.filter(profile=profile_of(user)).update(
            predicted_clv=Decimal(clv), rfm_group=group
        )
    yield {user: profile_of(user).pk for user in ("ann", "bob", "cy", "dee")}
    registry_reset()


def members(rules, people) -> set[str]:
    names = {pk: user for user, pk in people.items()}
    return {names[pk] for pk in rules_profiles(rules).values_list("pk", flat=True)}


def test_predicted_clv_above_500_and_rfm_group_at_risk(people):
    rules = AND(
        F("insight:predicted_clv", "greater", 500), F("insight:rfm_group", "equals", "At risk")
    )
    assert members(rules, people) == {"ann"}
    assert members(AND(F("insight:rfm_group", "in", ["at_risk", "Loyal"])), people) == {
        "ann",
        "bob",
        "cy",
    }


def test_negation_and_missing_insights(people):
    # Not (CLV > 500): cy, and dee who has no insight row (missing is not greater than 500).
    assert members(AND(F("insight:predicted_clv", "greater", 500), negate=True), people) == {
        "cy",
        "dee",
    }
    assert members(AND(F("insight:predicted_clv", "is_not_set")), people) == {"dee"}


def test_custom_insight_field(people):
    assert get_registry().field("insight:custom:shoe_views").type == "number"
    rules = AND(F("insight:custom:shoe_views", "greater_or_equal", 2))
    assert members(rules, people) == {"ann"}
    # bob and cy have a count of 0 (a count is 0, not missing, for computed profiles).
    assert members(AND(F("insight:custom:shoe_views", "equals", 0)), people) == {"bob", "cy"}
