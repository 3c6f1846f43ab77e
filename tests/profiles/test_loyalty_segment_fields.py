"""Loyalty fields in the segment registry, through the real rule compiler.

Ann is Gold with 800 points; Bob is Silver with 100; Cara (Base, 500 points) is merged into
Dan's membership, whose group balance is 510; Eve is not a member.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from profiles.models import LoyaltyMember, LoyaltyTier, Profile
from profiles.services.loyalty import (
    loyalty_member_enrol,
    loyalty_points_adjust,
    loyalty_tiers_evaluate,
)
from segments.compiler import CompileContext, rules_compile
from segments.registry import get_registry
from tests.profiles.loyalty_helpers import dt, make_program
from tests.profiles.test_loyalty import profiles_merge

pytestmark = pytest.mark.django_db
NAMES: dict[str, int] = {}


def F(field, operator, value=None):
    node = {"type": "field", "field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def AND(*children, negate=False):
    return {"type": "group", "op": "and", "negate": negate, "children": list(children)}


def members(rules) -> set[str]:
    ctx = CompileContext(
        registry=get_registry(),
        now=datetime(2026, 3, 1, tzinfo=UTC),
        tz=ZoneInfo("Europe/Berlin"),
    )
    if rules["type"] != "group":
        rules = AND(rules)
    q = rules_compile(rules, ctx).q
    ids = set(Profile.objects.filter(q).values_list("pk", flat=True))
    # By profile id: a merge may refresh the survivor's name from its source records.
    return {name for name, pk in NAMES.items() if pk in ids}


@pytest.fixture
def people():
    NAMES.clear()
    program = make_program()
    gold = LoyaltyTier.objects.get(program=program, name="Gold")
    silver = LoyaltyTier.objects.get(program=program, name="Silver")
    member = {}
    for name, points in (("Ann", 800), ("Bob", 100), ("Cara", 500), ("Dan", 10)):
        profile = Profile.objects.create(first_name=name)
        NAMES[name] = profile.pk
        member[name] = loyalty_member_enrol(program=program, profile=profile, at=dt("2026-01-01"))
        loyalty_points_adjust(member=member[name], points=points, reason="x", at=dt("2026-01-02"))
    LoyaltyMember.objects.filter(pk=member["Ann"].pk).update(tier=gold)
    LoyaltyMember.objects.filter(pk=member["Bob"].pk).update(tier=silver)
    profiles_merge(
        survivor_id=member["Dan"].profile_id, other_ids=[member["Cara"].profile_id], reason="t"
    )
    NAMES["Eve"] = Profile.objects.create(first_name="Eve").pk
    NAMES.pop("Cara")  # merged away
    return member


def test_registered_in_the_loyalty_group_of_the_palette():
    sections = {s["group"]: s["items"] for s in get_registry().palette()}
    keys = [(i["key"], i["value_type"]) for i in sections["Loyalty"]]
    assert keys == [
        ("loyalty_tier", "string"),
        ("loyalty_points_balance", "integer"),
        ("loyalty_qualifying_points", "integer"),
        ("loyalty_spend_in_period", "number"),
        ("loyalty_program", "string"),
    ]


def test_segment_on_tier_and_balance(people):
    assert LoyaltyMember.objects.get(pk=people["Dan"].pk).points_balance == 510

    assert members(F("loyalty_tier", "equals", "Gold")) == {"Ann"}
    assert members(F("loyalty_tier", "in", ["Gold", "Silver"])) == {"Ann", "Bob"}
    assert members(F("loyalty_points_balance", "greater_or_equal", 500)) == {"Ann", "Dan"}
    assert members(
        AND(F("loyalty_tier", "equals", "Base"), F("loyalty_points_balance", "between", [500, 600]))
    ) == {"Dan"}
    # Cara's own member row (merged into Dan's) is never looked at: 500 is not the balance.
    assert members(F("loyalty_points_balance", "equals", 500)) == set()
    # A non-member has no balance: not "less than 200", but "not at least 500" includes her.
    assert members(F("loyalty_points_balance", "less", 200)) == {"Bob"}
    assert members(AND(F("loyalty_points_balance", "greater_or_equal", 500), negate=True)) == {
        "Bob",
        "Eve",
    }
    assert members(F("loyalty_program", "is_set")) == {"Ann", "Bob", "Dan"}


def test_qualifying_points_and_spend_follow_tier_evaluation(people):
    program = people["Ann"].program
    LoyaltyMember.objects.filter(pk=people["Bob"].pk).update(qualifying_points=0)
    loyalty_tiers_evaluate(program=program, at=dt("2026-02-01"))

    assert members(F("loyalty_qualifying_points", "equals", 0)) == {"Ann", "Bob", "Dan"}
    assert members(F("loyalty_spend_in_period", "greater", 0)) == set()
