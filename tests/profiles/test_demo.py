"""`manage.py demo`: loads the demo data and computes insights once, idempotently."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from insights.models import InsightRun, ProfileInsight
from profiles.models import Profile


def demo() -> str:
    out = io.StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_demo_computes_insights_once_and_a_second_demo_keeps_them():
    first = demo()

    runs = list(InsightRun.objects.values_list("kind", "status"))
    assert runs == [("full", "succeeded")]
    profiles = Profile.objects.count()
    assert profiles > 1000
    assert ProfileInsight.objects.count() == profiles
    buyers = ProfileInsight.objects.filter(order_count__gt=0)
    assert buyers.exclude(rfm_group="").count() == buyers.count() > 0
    assert f"Insights: full run #{InsightRun.objects.get().pk} succeeded" in first

    second = demo()

    assert list(InsightRun.objects.values_list("kind", "status")) == runs
    assert ProfileInsight.objects.count() == profiles
    assert "Insights: unchanged data, already computed" in second
