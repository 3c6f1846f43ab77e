"""Dashboards and the profile 360 page in a real headless Chromium."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from insights.models import InsightRun
from insights.services.runs import insight_run_create
from profiles.models import DataSource, Profile
from profiles.services.merging import profiles_merge
from profiles.services.tracking import tracking_messages_ingest
from segments.models import Segment, SegmentRefresh

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# Dashboards and how many charts each draws (consent and privacy draw theirs without data).
EXPECTED_CHARTS = {
    "overview": 3,
    "identity": 3,
    "segments": 1,
    "consent": 2,
    "privacy": 2,
    "value": 3,
}


@pytest.fixture
def shop_data():
    """Customers with orders on several days, an anonymous visitor merged into one of them."""
    web = DataSource.objects.create(name="web", kind=DataSource.Kind.API)
    messages = [
        {
            "type": "track",
            "anonymousId": "a-1",
            "event": "Product Viewed",
            "properties": {"name": "Mug"},
            "timestamp": "2026-06-01T10:00:00Z",
        },
    ]
    for n in range(12):
        user = f"u-{n}"
        messages.append(
            {"type": "identify", "userId": user, "traits": {"email": f"c{n}@example.org"}}
        )
        for k in range(n % 4 + 1):
            messages.append(
                {
                    "type": "track",
                    "userId": user,
                    "event": "Order Completed",
                    "timestamp": f"2026-0{1 + (n + k) % 6}-{10 + k}T10:00:00Z",
                    "properties": {"order_id": f"{user}-{k}", "total": 10 + 7 * n + k},
                }
            )
    tracking_messages_ingest(source=web, messages=messages)
    anonymous = Profile.objects.filter(source_records__external_key="anon:a-1").get()
    known = Profile.objects.filter(source_records__external_key="user:u-3").get()
    survivor = min(anonymous.pk, known.pk)
    profiles_merge(survivor_id=survivor, other_ids=[max(anonymous.pk, known.pk)], reason="test")
    segment = Segment.objects.create(name="Repeat buyers")  # size history over two days
    for days_ago, size in ((1, 4), (0, 6)):
        SegmentRefresh.objects.create(
            segment=segment,
            status="succeeded",
            size=size,
            finished_at=timezone.now() - timedelta(days=days_ago),
        )
    insight_run_create(kind=InsightRun.Kind.FULL, sync=True)
    return survivor


def login(page, live_server):
    get_user_model().objects.create_superuser("marketer", "m@example.com", "pw-marketer-1")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "marketer")
    page.fill("#id_password", "pw-marketer-1")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def test_every_dashboard_draws_its_charts_without_console_errors(
    live_server, browser_page, shop_data
):
    page = browser_page
    login(page, live_server)
    for slug, expected in EXPECTED_CHARTS.items():
        page.goto(f"{live_server.url}/admin/insights/profileinsight/dashboards/{slug}/")
        charts = page.locator(".ins-chart")
        assert charts.count() == expected, slug
        for i in range(expected):
            chart = charts.nth(i)
            chart.locator("svg.main-svg").first.wait_for(state="attached", timeout=15000)
            assert chart.locator("svg.main-svg").count() >= 1, (slug, i)
    value = f"{live_server.url}/admin/insights/profileinsight/dashboards/value/"
    page.goto(value)
    page.locator(".ins-chart").nth(1).locator(".heatmaplayer").wait_for(state="attached")
    titles = page.locator(".ins-chart .gtitle").all_text_contents()
    assert titles == [
        "Predicted CLV distribution (365 days)",
        "RFM grid: customers by recency and frequency",
        "Customers by RFM group",
    ]
    assert page.errors == []


def test_profile_360_shows_the_merged_persons_timeline(live_server, browser_page, shop_data):
    page = browser_page
    login(page, live_server)
    page.goto(f"{live_server.url}/admin/profiles/profile/{shop_data}/change/")
    page.click("text=360 view")
    page.wait_for_url(f"{live_server.url}/admin/insights/profileinsight/profile/{shop_data}/")
    rows = page.locator("#timeline tbody tr")
    names = [rows.nth(i).locator("td").nth(2).inner_text() for i in range(rows.count())]
    # u-3 has 4 orders (n % 4 + 1); the anonymous record brought its product view along.
    assert sorted(n for n in names if n) == ["Order Completed"] * 4 + ["Product Viewed"]
    through = {rows.nth(i).locator("td").nth(3).inner_text() for i in range(rows.count())}
    assert len(through) == 2  # events came through both merged records
    assert page.locator("#insights").inner_text().count("Orders (days with orders)") == 1
    assert page.errors == []
