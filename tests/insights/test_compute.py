"""Insights for a small hand-computed set of customers (values worked out in the comments)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from insights.models import InsightRun, ProfileInsight
from insights.services.compute import insights_compute_full, insights_compute_incremental
from insights.services.runs import insight_run_create

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)  # 14:00 in Europe/Berlin, "today" = 2026-06-30


@pytest.fixture
def shop(settings, send, order):
    """Five people. Amounts in EUR unless said; USD converts at 0.5, JPY has no rate.

    cust-a: a1 30 + a2 20 on 2026-06-01 (two orders, one day), a3 50 on 06-20 refunded 10
            (partial), a4 25 on 06-25 refunded without an amount (whole order: removed),
            a1 retried with its messageId and re-sent by a second source with a new one.
            -> 3 orders, revenue 30 + 20 + 40 = 90, refunded 35, AOV 30, 2 purchase days.
    cust-b: 100 USD on 2026-03-01 -> 1 order, revenue 50.
    cust-c: 10 each on 01-10, 02-10, 05-10 and 06-28 -> 4 orders, revenue 40.
    cust-d: 200 JPY on 2025-12-01 -> 1 order, not converted: revenue 0, no AOV.
    cust-e: no orders; page views on three days of the last 30 and an identify.
    """
    from profiles.models import DataSource

    settings.CDP_CURRENCY = "EUR"
    settings.CDP_CURRENCY_RATES = {"USD": 0.5}
    order("cust-a", "a1", "2026-06-01T10:00:00Z", 30, messageId="m-a1")
    order("cust-a", "a1", "2026-06-01T10:00:00Z", 30, messageId="m-a1")  # retry: stored once
    server = DataSource.objects.create(name="server", kind=DataSource.Kind.API)
    order("cust-a", "a1", "2026-06-01T10:00:05Z", 30, messageId="srv-a1", source=server)
    order("cust-a", "a2", "2026-06-01T15:00:00Z", "20.00")  # a numeric string counts too
    order("cust-a", "a3", "2026-06-20T09:00:00Z", 50)
    send(
        "cust-a",
        "Order Refunded",
        properties={"order_id": "a3", "total": 10},
        timestamp="2026-06-22T09:00:00Z",
    )
    order("cust-a", "a4", "2026-06-25T09:00:00Z", 25)
    send(
        "cust-a", "Order Refunded", properties={"order_id": "a4"}, timestamp="2026-06-26T09:00:00Z"
    )
    order("cust-b", "b1", "2026-03-01T12:00:00Z", 100, currency="usd")
    for n, day in enumerate(["2026-01-10", "2026-02-10", "2026-05-10", "2026-06-28"]):
        order("cust-c", f"c{n}", f"{day}T08:00:00Z", 10)
    order("cust-d", "d1", "2025-12-01T08:00:00Z", 200, currency="JPY")
    send("cust-e", traits={"email": "e@example.org"})
    for when in ["06-05T08:00", "06-05T18:00", "06-12T08:00", "06-29T08:00"]:
        send("cust-e", None, type="page", name="Home", timestamp=f"2026-{when}:00Z")
    send("cust-e", None, type="page", name="Home", timestamp="2026-05-01T08:00:00Z")  # too old


def insight(profile_of, user: str) -> ProfileInsight:
    return ProfileInsight.objects.get(profile=profile_of(user))


def test_full_run_orders_revenue_refunds_currencies(shop, profile_of):
    run = InsightRun.objects.create(kind=InsightRun.Kind.FULL)
    insights_compute_full(run=run, now=NOW)
    a = insight(profile_of, "cust-a")
    assert (a.order_count, a.revenue, a.refunded) == (3, Decimal("90.00"), Decimal("35.00"))
    assert a.average_order_value == Decimal("30.00")
    assert a.first_order_at == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert a.last_order_at == datetime(2026, 6, 20, 9, 0, tzinfo=UTC)
    assert (a.days_since_last_order, a.purchase_days) == (10, 2)
    b = insight(profile_of, "cust-b")
    assert (b.order_count, b.revenue, b.days_since_last_order) == (1, Decimal("50.00"), 121)
    c = insight(profile_of, "cust-c")
    assert (c.order_count, c.revenue, c.average_order_value) == (
        4,
        Decimal("40.00"),
        Decimal("10.00"),
    )
    d = insight(profile_of, "cust-d")
    assert (d.order_count, d.unconverted_order_count, d.revenue) == (1, 1, Decimal("0.00"))
    assert d.average_order_value is None and d.days_since_last_order == 211
    e = insight(profile_of, "cust-e")
    assert (e.order_count, e.rfm_group, e.recency_score) == (0, "", None)
    # Page views on 06-05 (twice), 06-12 and 06-29: 4 events on 3 days; 3/30 of days = 10.
    assert (e.events_30d, e.active_days_30d, e.engagement_score) == (4, 3, 10)
    assert run.profiles_done == 5


def test_full_run_rfm_quintiles_and_groups(shop, profile_of):
    """4 customers: cut points are the sorted values themselves (positions 0..3).

    recency  D 2025-12-01 < B 03-01 < A 06-20 < C 06-28  -> D1 B2 A3 C4
    frequency D1 B1 A3 C4, cuts [1,1,3,4]                -> D1 B1 A3 C4
    monetary D0 < C40 < B50 < A90                        -> D1 C2 B3 A4
    groups (R,F): A (3,3) need attention, B (2,1) hibernating, C (4,4) loyal, D (1,1) lost
    """
    run = InsightRun.objects.create(kind=InsightRun.Kind.FULL)
    insights_compute_full(run=run, now=NOW)
    scores = {
        user: (i.recency_score, i.frequency_score, i.monetary_score, i.rfm_group)
        for user in ("cust-a", "cust-b", "cust-c", "cust-d")
        for i in [insight(profile_of, user)]
    }
    assert scores == {
        "cust-a": (3, 3, 4, "need_attention"),
        "cust-b": (2, 1, 3, "hibernating"),
        "cust-c": (4, 4, 2, "loyal"),
        "cust-d": (1, 1, 1, "lost"),
    }
    assert run.rfm_cuts["frequency"] == [1.0, 1.0, 3.0, 4.0]
    assert run.rfm_cuts["monetary"] == [0.0, 40.0, 50.0, 90.0]


# CDNOW's published fits, alpha converted from weeks to days.
PARAMS = {
    "bgnbd": {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44},
}


def test_predicted_clv_uses_purchase_days(shop, profile_of):
    """With fixed parameters the predictions depend only on (x, t_x, T, m) per customer.

    cust-a: purchase days 06-01 and 06-20 -> x=1, t_x=19, T=29, m=40 (the repeat day's net).
    cust-b: x=0 -> expected order value is the population mean p*v/(q-1) = 35.2190 EUR.
    The expected values come from lifetimes' own formulas (an independent implementation).
    """
    pd = pytest.importorskip("pandas")
    lifetimes = pytest.importorskip("lifetimes")
    InsightRun.objects.create(
        kind=InsightRun.Kind.FULL,
        status=InsightRun.Status.SUCCEEDED,
        clv_params=PARAMS,
        rfm_cuts={"customers": 0},
        last_event_id=0,
    )
    run = InsightRun.objects.create(kind=InsightRun.Kind.INCREMENTAL)
    insights_compute_incremental(run=run, now=NOW)
    bgf = lifetimes.BetaGeoFitter()
    bgf.params_ = pd.Series(PARAMS["bgnbd"])
    ggf = lifetimes.GammaGammaFitter()
    ggf.params_ = pd.Series(PARAMS["gamma_gamma"])
    a = insight(profile_of, "cust-a")
    purchases = bgf.conditional_expected_number_of_purchases_up_to_time(365, 1, 19, 29)
    value = ggf.conditional_expected_average_profit(pd.Series([1]), pd.Series([40.0])).iloc[0]
    assert a.predicted_purchases_365d == pytest.approx(purchases, rel=1e-6)
    assert float(a.predicted_clv) == pytest.approx(purchases * value, abs=0.01)
    b = insight(profile_of, "cust-b")
    b_purchases = bgf.conditional_expected_number_of_purchases_up_to_time(365, 0, 0, 121)
    assert float(b.predicted_clv) == pytest.approx(b_purchases * 6.25 * 15.44 / 2.74, abs=0.01)
    assert b.probability_alive == pytest.approx(1.0)
    assert insight(profile_of, "cust-e").predicted_clv is None


def test_incremental_run_recomputes_only_touched_profiles(shop, profile_of, order):
    first = insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    assert first.status == InsightRun.Status.SUCCEEDED
    c_before = insight(profile_of, "cust-c").computed_at
    order("cust-b", "b2", "2026-06-29T12:00:00Z", 30)
    run = insight_run_create(kind=InsightRun.Kind.INCREMENTAL, sync=True)
    assert (run.status, run.profiles_total) == (InsightRun.Status.SUCCEEDED, 1)
    b = insight(profile_of, "cust-b")
    assert (b.order_count, b.revenue) == (2, Decimal("80.00"))
    assert insight(profile_of, "cust-c").computed_at == c_before


def test_incremental_run_follows_a_merge_and_its_undo(shop, profile_of):
    from profiles.models import MergeLog
    from profiles.services.merging import profile_unmerge, profiles_merge

    insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    b, c = profile_of("cust-b"), profile_of("cust-c")
    survivor, other = sorted([b.pk, c.pk])
    profiles_merge(survivor_id=survivor, other_ids=[other], reason="steward")
    run = insight_run_create(kind=InsightRun.Kind.INCREMENTAL, sync=True)
    merged = ProfileInsight.objects.get(profile_id=survivor)
    # b's 1 order (50) and c's 4 orders (40) now belong to one person.
    assert (run.profiles_total, merged.order_count, merged.revenue) == (1, 5, Decimal("90.00"))
    assert not ProfileInsight.objects.filter(profile_id=other).exists()
    profile_unmerge(merge_log=MergeLog.objects.get())
    insight_run_create(kind=InsightRun.Kind.INCREMENTAL, sync=True)
    counts = dict(
        ProfileInsight.objects.filter(profile_id__in=[b.pk, c.pk]).values_list(
            "profile_id", "order_count"
        )
    )
    assert counts == {b.pk: 1, c.pk: 4}
