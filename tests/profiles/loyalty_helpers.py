"""Builders shared by the loyalty tests (plain functions; the tests' fixtures call them)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from profiles.models import (
    DataSource,
    Event,
    LoyaltyEarningRule,
    LoyaltyProgram,
    LoyaltyTier,
    Profile,
)

_seq = itertools.count(1)


def dt(text: str) -> datetime:
    """'2026-01-10' or '2026-01-10T12:00' as an aware UTC datetime."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC)


def make_program(**overrides) -> LoyaltyProgram:
    """A program with tiers Base (0) / Silver (500 qp) / Gold (1000 qp or 2000 spend) and rules:
    1 point and 1 qualifying point per unit of revenue, 100 points on the first order,
    200 points on the first order in the birthday month."""
    values = {
        "name": "Club",
        "slug": "club",
        "points_validity_days": 365,
        "qualifying_period_months": 12,
        "member_number_prefix": "CL",
    }
    values.update(overrides)
    program = LoyaltyProgram.objects.create(**values)
    LoyaltyTier.objects.create(program=program, name="Base", rank=0, benefits="Members' prices")
    LoyaltyTier.objects.create(
        program=program, name="Silver", rank=1, min_qualifying_points=500, benefits="Free shipping"
    )
    LoyaltyTier.objects.create(
        program=program,
        name="Gold",
        rank=2,
        min_qualifying_points=1000,
        min_spend=Decimal("2000"),
        benefits="Free shipping\nEarly access",
    )
    Rule = LoyaltyEarningRule
    Rule.objects.create(program=program, name="1 point per unit", kind=Rule.Kind.PER_UNIT)
    Rule.objects.create(
        program=program,
        name="1 qualifying point per unit",
        kind=Rule.Kind.PER_UNIT,
        currency="qualifying",
    )
    Rule.objects.create(
        program=program, name="First order", kind=Rule.Kind.FIRST_ORDER, bonus_points=100
    )
    Rule.objects.create(
        program=program, name="Birthday", kind=Rule.Kind.BIRTHDAY_MONTH, bonus_points=200
    )
    return program


def make_profile(**attributes) -> Profile:
    return Profile.objects.create(first_name=f"P{next(_seq)}", attributes=attributes)


def api_source() -> DataSource:
    source, _ = DataSource.objects.get_or_create(name="web", defaults={"kind": "api"})
    return source


def order(profile: Profile, when: str, revenue, *, order_id: str = "", **props) -> Event:
    """An ``Order Completed`` event of a profile (Segment e-commerce spec properties)."""
    n = next(_seq)
    properties = {"order_id": order_id or f"O-{n}", "revenue": revenue, **props}
    return Event.objects.create(
        source=api_source(),
        message_id=f"m-{n}",
        type="track",
        name="Order Completed",
        properties=properties,
        timestamp=dt(when),
        profile=profile,
    )


def refund(profile: Profile, when: str, order_id: str, **props) -> Event:
    n = next(_seq)
    return Event.objects.create(
        source=api_source(),
        message_id=f"m-{n}",
        type="track",
        name="Order Refunded",
        properties={"order_id": order_id, **props},
        timestamp=dt(when),
        profile=profile,
    )
