"""Loyalty selectors: the profile 360 summary, segment querysets on tier and balance, schedules."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from profiles.loyalty_selectors import (
    loyalty_member_condition,
    loyalty_profiles_by_balance,
    loyalty_profiles_in_tiers,
    loyalty_summary,
)
from profiles.models import Profile
from profiles.services.loyalty import (
    loyalty_events_earn,
    loyalty_member_enrol,
    loyalty_points_adjust,
    loyalty_points_redeem,
)
from tests.profiles.loyalty_helpers import dt, make_profile, make_program, order

pytestmark = pytest.mark.django_db


@pytest.fixture
def program():
    return make_program()


def test_segment_on_tier_and_balance(program, django_assert_max_num_queries):
    gold_rich, gold_poor, silver_rich = make_profile(), make_profile(), make_profile()
    outsider = make_profile()
    for profile, spend in ((gold_rich, 1100), (gold_poor, 1000), (silver_rich, 600)):
        loyalty_member_enrol(program=program, profile=profile, at=dt("2026-01-01"))
        order(profile, "2026-02-01", spend)
    loyalty_events_earn(program=program, at=dt("2026-02-02"))
    member = gold_poor.loyalty_members.get()
    loyalty_points_redeem(member=member, points=1000, reason="x", at=dt("2026-02-03"))
    # Balances now: gold_rich 1200, gold_poor 100, silver_rich 700.

    gold = loyalty_profiles_in_tiers(program_id=program.pk, tier_names=["Gold"])
    rich = loyalty_profiles_by_balance(program_id=program.pk, minimum=500)
    both = Profile.objects.filter(
        loyalty_member_condition(
            program_id=program.pk, tier__name__in=["Gold"], points_balance__gte=500
        )
    )

    with django_assert_max_num_queries(1):
        assert sorted(gold.values_list("pk", flat=True)) == sorted([gold_rich.pk, gold_poor.pk])
    assert sorted(rich.values_list("pk", flat=True)) == sorted([gold_rich.pk, silver_rich.pk])
    assert list(both.values_list("pk", flat=True)) == [gold_rich.pk]
    not_rich = Profile.objects.exclude(loyalty_member_condition(points_balance__gte=500))
    assert sorted(not_rich.values_list("pk", flat=True)) == sorted([gold_poor.pk, outsider.pk])


def test_summary_for_the_profile_page(program, django_assert_max_num_queries):
    now = timezone.now()
    profile = make_profile()
    member = loyalty_member_enrol(
        program=program, profile=profile, member_number="CL-5", at=now - timedelta(days=360)
    )
    # Points are valid 365 days: these 40 expire in 9 days, the order's points much later.
    loyalty_points_adjust(member=member, points=40, reason="soon", at=now - timedelta(days=356))
    order(profile, (now - timedelta(days=50)).strftime("%Y-%m-%dT%H:%M"), 300)
    loyalty_events_earn(program=program, at=now - timedelta(days=49))

    with django_assert_max_num_queries(6):
        (card,) = loyalty_summary(profile)

    assert card["member_number"] == "CL5"
    assert card["tier"] == "Base"
    assert card["benefits"] == ["Members' prices"]
    assert card["points_balance"] == 440
    assert card["qualifying_points"] == 300
    assert card["spend_in_period"] == Decimal("300.00")
    assert card["next_tier"] == "Silver"
    assert card["next_tier_needs"] == {"qualifying_points": 200}
    assert card["expiring_soon"] == 40
    assert sorted(e.points for e in card["recent_entries"]) == [40, 100, 300, 300]
    assert card["last_tier_change"].to_tier.name == "Base"
    assert loyalty_summary(make_profile()) == []


def test_schedule_command_is_idempotent():
    call_command("loyalty_schedule")
    call_command("loyalty_schedule", "--earn-minutes", "2")

    schedules = {s.name: s for s in Schedule.objects.all()}
    assert sorted(schedules) == [
        "loyalty: earn points from new events",
        "loyalty: evaluate tiers",
        "loyalty: expire points",
    ]
    assert schedules["loyalty: earn points from new events"].minutes == 2
    assert schedules["loyalty: expire points"].func == "profiles.loyalty_tasks.loyalty_scheduled"


def test_scheduled_task_earns_for_every_program(program):
    from profiles.loyalty_tasks import loyalty_scheduled
    from profiles.models import LoyaltyJobRun

    profile = make_profile()
    loyalty_member_enrol(program=program, profile=profile, at=dt("2026-01-01"))
    order(profile, "2026-02-01", 25)

    assert loyalty_scheduled("earn") == "succeeded"

    run = LoyaltyJobRun.objects.get()
    assert run.counts["points_earned"] == 125
    assert profile.loyalty_members.get().points_balance == 125
