"""Custom insights defined without SQL, and insights as segment conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from insights.fields import ConditionError, insight_condition_profile_ids
from insights.models import CustomInsight, CustomInsightFilter, InsightRun, ProfileInsight
from insights.services.compute import insights_compute_full
from profiles.models import Profile

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def views(send):
    """cust-a: 3 shoe views in the window (prices 40, 60, "80.5"), 1 bag view, 1 old shoe view.
    cust-b: 1 shoe view with price 200 and one whose price is not a number.
    """

    def view(user, when, **props):
        send(user, "Product Viewed", properties=props, timestamp=f"2026-{when}:00Z")

    view("cust-a", "06-25T10:00", category="Shoes", price=40)
    view("cust-a", "06-26T10:00", category="shoes", price=60)
    view("cust-a", "06-27T10:00", category="Shoes", price="80.5")
    view("cust-a", "06-27T11:00", category="Bags", price=500)
    view("cust-a", "05-01T10:00", category="Shoes", price=1000)  # outside 30 days
    view("cust-b", "06-28T10:00", category="Shoes", price=200)
    view("cust-b", "06-29T10:00", category="Shoes", price="n/a")
    send("cust-c", traits={"email": "c@example.org"})


def make_insight(key, aggregate, prop="", window=30, filters=()):
    insight = CustomInsight.objects.create(
        name=key,
        key=key,
        aggregate=aggregate,
        event_name="Product Viewed",
        property=prop,
        window_days=window,
    )
    for prop_name, operator, value in filters:
        CustomInsightFilter.objects.create(
            insight=insight, property=prop_name, operator=operator, value=value
        )
    return insight


def run_full():
    run = InsightRun.objects.create(kind=InsightRun.Kind.FULL)
    insights_compute_full(run=run, now=NOW)


def custom(profile_of, user):
    return ProfileInsight.objects.get(profile=profile_of(user)).custom


def test_custom_insights_count_sum_avg_max_with_window_and_filters(views, profile_of):
    shoes = [("category", "equals", "Shoes")]
    make_insight("shoe_views_30d", "count", filters=shoes)
    make_insight("shoe_spend_30d", "sum", "price", filters=shoes)
    make_insight("avg_price_30d", "avg", "price")
    make_insight("max_price_all", "max", "price", window=None)
    make_insight("pricey_views", "count", filters=[("price", "greater", "100")])
    make_insight("not_bags", "count", filters=[("category", "not_equals", "Bags")])
    run_full()
    a = custom(profile_of, "cust-a")
    # "shoes" (lower case) is not "Shoes": equals is exact. Prices 40 + 80.5 = 120.5.
    assert a["shoe_views_30d"] == 2
    assert a["shoe_spend_30d"] == pytest.approx(120.5)
    assert a["avg_price_30d"] == pytest.approx((40 + 60 + 80.5 + 500) / 4)
    assert a["max_price_all"] == pytest.approx(1000)
    assert (a["pricey_views"], a["not_bags"]) == (1, 3)
    b = custom(profile_of, "cust-b")
    # The "n/a" price is not a number: counted as a view, left out of sums and averages.
    assert (b["shoe_views_30d"], b["shoe_spend_30d"], b["avg_price_30d"]) == (2, 200.0, 200.0)
    c = custom(profile_of, "cust-c")
    assert c == {"shoe_views_30d": 0, "pricey_views": 0, "not_bags": 0}


def test_contains_and_is_set_filters(views, profile_of):
    make_insight("shoe_any_case", "count", filters=[("category", "contains", "shoe")])
    make_insight("priced", "count", window=None, filters=[("price", "is_set", "")])
    run_full()
    assert custom(profile_of, "cust-a")["shoe_any_case"] == 3
    assert custom(profile_of, "cust-a")["priced"] == 5


def test_insight_used_as_segment_conditions(views, profile_of, order):
    """ "predicted CLV > 500 and RFM group = At risk" through the registry-independent selector."""
    make_insight("shoe_views_30d", "count", filters=[("category", "equals", "Shoes")])
    run_full()
    a, b, c = (profile_of(u) for u in ("cust-a", "cust-b", "cust-c"))
    ProfileInsight.objects.filter(profile=a).update(
        predicted_clv=Decimal("650"), rfm_group="at_risk"
    )
    ProfileInsight.objects.filter(profile=b).update(predicted_clv=Decimal("900"), rfm_group="loyal")
    ProfileInsight.objects.filter(profile=c).update(
        predicted_clv=Decimal("120"), rfm_group="at_risk"
    )
    audience = Profile.objects.filter(
        pk__in=insight_condition_profile_ids(key="predicted_clv", operator="greater", value=500)
    ).filter(
        pk__in=insight_condition_profile_ids(key="rfm_group", operator="equals", value="At risk")
    )
    assert list(audience.values_list("pk", flat=True)) == [a.pk]
    shoe_fans = insight_condition_profile_ids(
        key="custom:shoe_views_30d", operator="greater_or_equal", value=2
    )
    assert sorted(r["profile_id"] for r in shoe_fans) == sorted([a.pk, b.pk])
    not_set = insight_condition_profile_ids(key="average_order_value", operator="is_not_set")
    assert {r["pk"] for r in not_set} == {a.pk, b.pk, c.pk}
    with pytest.raises(ConditionError):
        insight_condition_profile_ids(key="email", operator="equals", value="x")
    with pytest.raises(ConditionError):
        insight_condition_profile_ids(key="predicted_clv", operator="greater", value="lots")
