"""Loyalty management inside the unified profile: programs, tiers, members and a points ledger.

LoyaltyProgram -> LoyaltyTier, LoyaltyEarningRule; LoyaltyMember (a profile enrolled in a
program) -> LoyaltyLedgerEntry (append-only), LoyaltyActivity (events seen), LoyaltyTierChange.
The balance is derived from the ledger; ``LoyaltyMember.points_balance`` is the cached sum the
services refresh in the same transaction as every ledger write. See docs/loyalty.md.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

__all__ = [
    "LoyaltyActivity",
    "LoyaltyCurrency",
    "LoyaltyEarningRule",
    "LoyaltyJobRun",
    "LoyaltyLedgerEntry",
    "LoyaltyMember",
    "LoyaltyProgram",
    "LoyaltyTier",
    "LoyaltyTierChange",
]


class LoyaltyCurrency(models.TextChoices):
    """The two point currencies of every program."""

    POINTS = "points", "Points (redeemable, non-qualifying)"
    QUALIFYING = "qualifying", "Qualifying points (tier status)"


class LoyaltyProgram(models.Model):
    """A loyalty program: its point validity, qualifying period and the currency it counts."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    description = models.TextField(blank=True)
    currency = models.CharField(
        max_length=3,
        blank=True,
        help_text="ISO 4217 code of the money orders must be in to earn (e.g. EUR); "
        "blank: orders in any currency earn.",
    )
    points_validity_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=730,
        help_text="Days after which earned points expire (oldest first); blank: never.",
    )
    qualifying_period_months = models.PositiveSmallIntegerField(
        default=12,
        help_text="Rolling window for tier qualification; also how long a tier is kept.",
    )
    member_number_prefix = models.CharField(max_length=10, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LoyaltyTier(models.Model):
    """A status level of a program; ``rank`` orders tiers (0 = the entry tier).

    A member qualifies for a tier when either threshold that is set is reached within the
    program's qualifying period; a tier with no threshold is reached by enrolling.
    """

    program = models.ForeignKey(LoyaltyProgram, on_delete=models.CASCADE, related_name="tiers")
    name = models.CharField(max_length=60)
    rank = models.PositiveSmallIntegerField()
    min_qualifying_points = models.PositiveIntegerField(null=True, blank=True)
    min_spend = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    benefits = models.TextField(blank=True, help_text="One benefit per line.")

    class Meta:
        ordering = ["program_id", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["program", "rank"], name="uniq_loyalty_tier_rank"),
            models.UniqueConstraint(fields=["program", "name"], name="uniq_loyalty_tier_name"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def benefit_list(self) -> list[str]:
        return [line.strip() for line in self.benefits.splitlines() if line.strip()]


class LoyaltyEarningRule(models.Model):
    """How events earn points: per currency unit of an order, or a fixed bonus."""

    class Kind(models.TextChoices):
        PER_UNIT = "per_unit", "Points per currency unit of the order"
        FIRST_ORDER = "first_order", "Bonus on the member's first order"
        BIRTHDAY_MONTH = "birthday_month", "Bonus on the first order in the birthday month"

    program = models.ForeignKey(
        LoyaltyProgram, on_delete=models.CASCADE, related_name="earning_rules"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PER_UNIT)
    currency = models.CharField(
        max_length=12, choices=LoyaltyCurrency.choices, default=LoyaltyCurrency.POINTS
    )
    points_per_unit = models.DecimalField(
        max_digits=8, decimal_places=3, default=1, help_text="For per-unit rules."
    )
    bonus_points = models.PositiveIntegerField(default=0, help_text="For bonus rules.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["program_id", "id"]

    def __str__(self) -> str:
        return self.name


class LoyaltyMember(models.Model):
    """A profile enrolled in a program.

    A merge absorbs other members of the same program: they get status ``merged`` and
    ``merged_into`` the surviving member, and keep their ledger entries (their origin); the
    balance of the survivor counts the entries of every member merged into it. ``origin_profile_id``
    is the profile the member enrolled with, so an unmerge can give the membership back.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        MERGED = "merged", "Merged into another member"

    program = models.ForeignKey(LoyaltyProgram, on_delete=models.PROTECT, related_name="members")
    profile = models.ForeignKey(
        "profiles.Profile", on_delete=models.PROTECT, related_name="loyalty_members"
    )
    origin_profile_id = models.BigIntegerField()
    member_number = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="absorbed"
    )
    tier = models.ForeignKey(
        LoyaltyTier, null=True, blank=True, on_delete=models.PROTECT, related_name="members"
    )
    tier_valid_until = models.DateTimeField(
        null=True, blank=True, help_text="End of the qualifying period: no downgrade before it."
    )
    premerge_tier = models.ForeignKey(
        LoyaltyTier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    premerge_tier_valid_until = models.DateTimeField(null=True, blank=True)
    points_balance = models.IntegerField(default=0, help_text="Sum of the ledger (points).")
    qualifying_points = models.IntegerField(
        default=0, help_text="Qualifying points in the qualifying period, at the last evaluation."
    )
    spend_in_period = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        default=0,
        help_text="Order value in the qualifying period, at the last evaluation.",
    )
    enrolled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["member_number"]
        permissions = [("adjust_points", "Can adjust loyalty points")]
        constraints = [
            models.UniqueConstraint(
                fields=["program", "member_number"], name="uniq_loyalty_member_number"
            ),
            models.UniqueConstraint(
                fields=["program", "profile"],
                condition=Q(status="active"),
                name="uniq_loyalty_active_member_per_profile",
            ),
            models.CheckConstraint(
                condition=Q(points_balance__gte=0), name="loyalty_points_balance_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["profile", "program"]),
            models.Index(fields=["program", "tier"]),
            models.Index(fields=["program", "points_balance"]),
            models.Index(fields=["merged_into"]),
        ]

    def __str__(self) -> str:
        return self.member_number


class LoyaltyLedgerEntry(models.Model):
    """One movement of points; append-only (never updated except ``remaining``, never deleted
    except by erasure).

    Credits are lots: ``remaining`` is what is left of them after debits consumed them, oldest
    expiry first (FIFO), and ``expires_at`` when what is left expires. ``member`` is the member
    the entry was posted to (its origin), also after a merge.
    """

    class Kind(models.TextChoices):
        EARN = "earn", "Earn"
        REDEEM = "redeem", "Redeem"
        ADJUST = "adjust", "Adjustment"
        EXPIRE = "expire", "Expiry"
        TRANSFER_IN = "transfer_in", "Transfer in"
        TRANSFER_OUT = "transfer_out", "Transfer out"
        REVERSAL = "reversal", "Reversal (refund)"
        SETTLEMENT = "settlement", "Unmerge settlement"

    member = models.ForeignKey(LoyaltyMember, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    currency = models.CharField(max_length=12, choices=LoyaltyCurrency.choices)
    points = models.IntegerField(help_text="Positive: credit; negative: debit.")
    remaining = models.IntegerField(default=0, help_text="Of a credit: points not yet used.")
    occurred_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    rule = models.ForeignKey(
        LoyaltyEarningRule, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    event = models.ForeignKey(
        "profiles.Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    order_id = models.CharField(max_length=200, blank=True)
    lot = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The credit an expiry or reversal is about.",
    )
    counterpart = models.ForeignKey(
        LoyaltyMember, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "loyalty ledger entries"
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "event"],
                condition=Q(rule__isnull=False, event__isnull=False),
                name="uniq_loyalty_entry_rule_event",
            ),
            models.UniqueConstraint(
                fields=["lot"], condition=Q(kind="expire"), name="uniq_loyalty_expiry_per_lot"
            ),
            models.CheckConstraint(
                condition=Q(remaining__gte=0), name="loyalty_remaining_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["member", "currency", "occurred_at"]),
            models.Index(
                fields=["expires_at"],
                condition=Q(remaining__gt=0),
                name="loyalty_open_lot_expiry",
            ),
            models.Index(fields=["member", "order_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.points:+d} {self.currency}"


class LoyaltyActivity(models.Model):
    """An event the earning job has handled for a member: marks it done and holds its spend.

    ``amount`` is the order's value (negative for a refund) that counts as spend for tiers.
    """

    class Kind(models.TextChoices):
        ORDER = "order", "Order"
        REFUND = "refund", "Refund"
        IGNORED = "ignored", "Ignored (see note)"

    # No index of its own: the unique (program, event) index serves every lookup by program.
    program = models.ForeignKey(
        LoyaltyProgram, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    member = models.ForeignKey(LoyaltyMember, on_delete=models.CASCADE, related_name="activities")
    event = models.ForeignKey(
        "profiles.Event", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    order_id = models.CharField(max_length=200, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    order_total = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "loyalty activities"
        constraints = [
            models.UniqueConstraint(fields=["program", "event"], name="uniq_loyalty_activity_event")
        ]
        indexes = [
            models.Index(fields=["member", "occurred_at"]),
            models.Index(fields=["member", "order_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.order_id}"


class LoyaltyTierChange(models.Model):
    """Every change of a member's tier, with why it happened."""

    member = models.ForeignKey(LoyaltyMember, on_delete=models.CASCADE, related_name="tier_changes")
    from_tier = models.ForeignKey(
        LoyaltyTier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_tier = models.ForeignKey(
        LoyaltyTier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=300)
    qualifying_points = models.IntegerField(default=0)
    spend = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["member", "changed_at"])]

    def __str__(self) -> str:
        return f"{self.from_tier} → {self.to_tier}"


class LoyaltyJobRun(models.Model):
    """The run row of a loyalty job (earning, expiry, tier evaluation) with counts and timings."""

    class Kind(models.TextChoices):
        EARN = "earn", "Earn points from events"
        EXPIRE = "expire", "Expire points"
        TIERS = "tiers", "Evaluate tiers"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    program = models.ForeignKey(
        LoyaltyProgram, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["kind", "status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"
