"""Loyalty fields of the segment registry: tier, points balance, qualifying points, spend.

Discovered by ``segments.registry.registry_build``, which imports ``<app>/segment_fields`` for
every installed app. A condition holds when the profile has an *active* membership (in any
program) whose value matches; a profile without one never matches a positive condition (a
missing balance is not 0), and members merged into another member are never looked at (the
head holds the group's tier and balance).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from segments.registry import Field, FieldType, Registry, Target

GROUP = "Loyalty"


@dataclass(frozen=True)
class ActiveMembershipTarget(Target):
    """A column of ``LoyaltyMember``, counting only active members."""

    model: str = "profiles.LoyaltyMember"
    profile_path: str = "profile"

    def _wrap(self, condition: Q) -> Q:
        return super()._wrap(condition & Q(status="active"))

    def values_queryset(self):
        queryset, expression = super().values_queryset()
        return queryset.filter(status="active"), expression


FIELDS = (
    Field(
        key="loyalty_tier",
        label="Loyalty tier",
        type=FieldType.STRING,
        target=ActiveMembershipTarget("tier__name"),
        group=GROUP,
        description="The tier name of an active membership (any program).",
    ),
    Field(
        key="loyalty_points_balance",
        label="Loyalty points balance",
        type=FieldType.INTEGER,
        target=ActiveMembershipTarget("points_balance"),
        group=GROUP,
        description="Redeemable points of an active membership.",
        suggest_values=False,
    ),
    Field(
        key="loyalty_qualifying_points",
        label="Loyalty qualifying points (period)",
        type=FieldType.INTEGER,
        target=ActiveMembershipTarget("qualifying_points"),
        group=GROUP,
        description="Qualifying points in the program's qualifying period.",
        suggest_values=False,
    ),
    Field(
        key="loyalty_spend_in_period",
        label="Loyalty spend (period)",
        type=FieldType.NUMBER,
        target=ActiveMembershipTarget("spend_in_period"),
        group=GROUP,
        description="Order value minus refunds in the program's qualifying period.",
        suggest_values=False,
    ),
    Field(
        key="loyalty_program",
        label="Loyalty program",
        type=FieldType.STRING,
        target=ActiveMembershipTarget("program__name"),
        group=GROUP,
        description="The name of a program the profile is an active member of.",
    ),
)


def register(registry: Registry) -> None:
    for field in FIELDS:
        registry.register_field(field)
