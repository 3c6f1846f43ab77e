"""Reading loyalty: members with tier and balance, a member's ledger, the profile summary and
the querysets segments use (tier, balance, qualifying points)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from cdp.models import AuditEvent
from profiles.models import (
    LoyaltyActivity,
    LoyaltyLedgerEntry,
    LoyaltyMember,
    LoyaltyTier,
    LoyaltyTierChange,
    Profile,
)

EXPIRING_SOON_DAYS = 30


def loyalty_members_queryset() -> QuerySet[LoyaltyMember]:
    """Members for lists: program, profile and tier joined in the same query."""
    return LoyaltyMember.objects.select_related("program", "profile", "tier")


def loyalty_member_ledger(*, member: LoyaltyMember) -> QuerySet[LoyaltyLedgerEntry]:
    """Every entry counting toward this member's balance (its own and those merged into it)."""
    account_id = member.merged_into_id or member.pk
    absorbed = list(
        LoyaltyMember.objects.filter(merged_into_id=account_id).values_list("pk", flat=True)
    )
    return (
        LoyaltyLedgerEntry.objects.filter(member_id__in=[account_id, *absorbed])
        .select_related("member", "rule", "created_by", "counterpart")
        .order_by("-occurred_at", "-id")
    )


def loyalty_summary(profile: Profile) -> list[dict]:
    """The profile 360 card: per program, number, tier (with benefits and until when), balance,
    qualifying points and spend, what the next tier needs, points expiring soon, last entries.

    A fixed number of queries per membership (a profile has few).
    """
    now = timezone.now()
    members = list(
        loyalty_members_queryset()
        .filter(profile=profile, status=LoyaltyMember.Status.ACTIVE)
        .order_by("program__name")
    )
    summary = []
    for member in members:
        tiers = list(LoyaltyTier.objects.filter(program_id=member.program_id).order_by("rank"))
        current_rank = member.tier.rank if member.tier else -1
        next_tier = next((t for t in tiers if t.rank > current_rank), None)
        needs = {}
        if next_tier is not None:
            if next_tier.min_qualifying_points is not None:
                needs["qualifying_points"] = max(
                    0, next_tier.min_qualifying_points - member.qualifying_points
                )
            if next_tier.min_spend is not None:
                needs["spend"] = max(Decimal(0), next_tier.min_spend - member.spend_in_period)
        ledger = loyalty_member_ledger(member=member)
        expiring = ledger.filter(
            currency="points",
            remaining__gt=0,
            expires_at__gt=now,
            expires_at__lte=now + timedelta(days=EXPIRING_SOON_DAYS),
        ).aggregate(total=Sum("remaining"))["total"]
        summary.append(
            {
                "member": member,
                "program": member.program.name,
                "member_number": member.member_number,
                "tier": member.tier.name if member.tier else "",
                "benefits": member.tier.benefit_list if member.tier else [],
                "tier_valid_until": member.tier_valid_until,
                "points_balance": member.points_balance,
                "qualifying_points": member.qualifying_points,
                "spend_in_period": member.spend_in_period,
                "next_tier": next_tier.name if next_tier else "",
                "next_tier_needs": needs,
                "expiring_soon": expiring or 0,
                "enrolled_at": member.enrolled_at,
                "recent_entries": list(ledger[:5]),
                "last_tier_change": LoyaltyTierChange.objects.filter(member=member)
                .select_related("from_tier", "to_tier")
                .first(),
            }
        )
    return summary


# --- privacy: the access export ----------------------------------------------------------------


def loyalty_members_of_profiles(*, profile_ids: list[int]) -> QuerySet[LoyaltyMember]:
    """Every membership of these profiles, also those merged into one of them."""
    return LoyaltyMember.objects.filter(
        Q(profile_id__in=profile_ids) | Q(merged_into__profile_id__in=profile_ids)
    )


def loyalty_profiles_export(*, profile_ids: list[int]) -> dict[str, list[dict]]:
    """What loyalty holds about these profiles, as tables of plain rows (the access export).

    Memberships, their whole ledger, the order events handled for them, their tier changes and
    the audit rows about the memberships. A transfer names the other member by id only.
    A fixed number of queries whatever the number of rows.
    """
    members = loyalty_members_of_profiles(profile_ids=profile_ids)
    member_ids = list(members.values_list("id", flat=True))
    return {
        "loyalty_memberships": list(
            members.order_by("enrolled_at", "id").values(
                "id",
                "program__name",
                "member_number",
                "status",
                "merged_into_id",
                "profile_id",
                "origin_profile_id",
                "enrolled_at",
                "tier__name",
                "tier_valid_until",
                "points_balance",
                "qualifying_points",
                "spend_in_period",
            )
        ),
        "loyalty_ledger": list(
            LoyaltyLedgerEntry.objects.filter(member_id__in=member_ids)
            .order_by("occurred_at", "id")
            .values(
                "id",
                "member_id",
                "kind",
                "currency",
                "points",
                "remaining",
                "occurred_at",
                "expires_at",
                "rule__name",
                "event_id",
                "order_id",
                "lot_id",
                "counterpart_id",
                "reason",
                "created_at",
            )
        ),
        "loyalty_activities": list(
            LoyaltyActivity.objects.filter(member_id__in=member_ids)
            .order_by("occurred_at", "id")
            .values(
                "id",
                "member_id",
                "program__name",
                "event_id",
                "kind",
                "order_id",
                "amount",
                "order_total",
                "note",
                "occurred_at",
            )
        ),
        "loyalty_tier_changes": list(
            LoyaltyTierChange.objects.filter(member_id__in=member_ids)
            .order_by("changed_at", "id")
            .values(
                "id",
                "member_id",
                "from_tier__name",
                "to_tier__name",
                "reason",
                "qualifying_points",
                "spend",
                "changed_at",
            )
        ),
        "loyalty_audit_log": list(
            AuditEvent.objects.filter(target__in=loyalty_member_audit_targets(member_ids))
            .order_by("created_at", "id")
            .values("id", "action", "target", "details", "created_at")
        ),
    }


def loyalty_member_audit_targets(member_ids: list[int]) -> list[str]:
    """The audit targets of these members (``audit_record(target=member)``)."""
    label = LoyaltyMember._meta.label_lower
    return [f"{label}:{pk}" for pk in member_ids]


# --- the segment conditions as plain Q objects, outside the builder (see docs/loyalty.md) ------


def loyalty_member_condition(*, program_id: int | None = None, **lookups) -> Q:
    """A Profile condition: the profile has an active membership matching ``lookups``.

    E.g. ``loyalty_member_condition(tier__name__in=["Gold"], points_balance__gte=500)``.
    The condition is one EXISTS subquery on the (program, tier) / (program, points_balance)
    indexes; profiles without a membership never match (a missing balance is not 0).
    """
    members = LoyaltyMember.objects.filter(
        profile_id=OuterRef("pk"), status=LoyaltyMember.Status.ACTIVE, **lookups
    )
    if program_id is not None:
        members = members.filter(program_id=program_id)
    return Q(Exists(members))


def loyalty_profiles_in_tiers(*, program_id: int, tier_names: list[str]) -> QuerySet[Profile]:
    return Profile.objects.filter(
        loyalty_member_condition(program_id=program_id, tier__name__in=tier_names)
    )


def loyalty_profiles_by_balance(
    *, program_id: int, minimum: int | None = None, maximum: int | None = None
) -> QuerySet[Profile]:
    lookups = {}
    if minimum is not None:
        lookups["points_balance__gte"] = minimum
    if maximum is not None:
        lookups["points_balance__lte"] = maximum
    return Profile.objects.filter(loyalty_member_condition(program_id=program_id, **lookups))
