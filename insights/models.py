"""Calculated insights: one materialised row per profile, custom definitions, and run rows."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone


class RfmGroup(models.TextChoices):
    """Named groups of the recency x frequency grid (see docs/insights.md for the mapping)."""

    CHAMPIONS = "champions", "Champions"
    LOYAL = "loyal", "Loyal"
    POTENTIAL_LOYALISTS = "potential_loyalists", "Potential loyalists"
    NEW = "new", "New customers"
    PROMISING = "promising", "Promising"
    NEED_ATTENTION = "need_attention", "Need attention"
    ABOUT_TO_SLEEP = "about_to_sleep", "About to sleep"
    AT_RISK = "at_risk", "At risk"
    CANNOT_LOSE = "cannot_lose", "Can't lose them"
    HIBERNATING = "hibernating", "Hibernating"
    LOST = "lost", "Lost"


class ProfileInsight(models.Model):
    """The insights of one profile, materialised by an insight run (full or incremental).

    Money is in the workspace currency (``settings.CDP_CURRENCY``); orders in other currencies
    are converted by ``settings.CDP_CURRENCY_RATES`` or, without a rate, counted in
    ``unconverted_order_count`` and left out of every amount. Customers without orders have
    ``order_count`` 0 and no RFM scores or CLV.
    """

    profile = models.OneToOneField(
        "profiles.Profile", on_delete=models.CASCADE, primary_key=True, related_name="insight"
    )
    order_count = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(
        max_digits=14, decimal_places=2, default=0, help_text="Historical CLV: net of refunds."
    )
    refunded = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    average_order_value = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True
    )
    unconverted_order_count = models.PositiveIntegerField(default=0)
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)
    days_since_last_order = models.PositiveIntegerField(null=True, blank=True)
    purchase_days = models.PositiveIntegerField(
        default=0, help_text="Distinct days with an order (several orders on one day are one)."
    )
    recency_score = models.PositiveSmallIntegerField(null=True, blank=True)
    frequency_score = models.PositiveSmallIntegerField(null=True, blank=True)
    monetary_score = models.PositiveSmallIntegerField(null=True, blank=True)
    rfm_group = models.CharField(max_length=20, choices=RfmGroup.choices, blank=True)
    events_30d = models.PositiveIntegerField(default=0)
    active_days_30d = models.PositiveSmallIntegerField(default=0)
    engagement_score = models.PositiveSmallIntegerField(
        default=0, help_text="0-100: share of the last 30 days with any activity."
    )
    predicted_purchases_365d = models.FloatField(null=True, blank=True)
    probability_alive = models.FloatField(null=True, blank=True)
    predicted_clv = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Expected revenue in the next 365 days (BG/NBD x Gamma-Gamma).",
    )
    custom = models.JSONField(default=dict, blank=True, help_text="Custom insights by key.")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["rfm_group"]),
            models.Index(fields=["recency_score", "frequency_score"]),
            models.Index(fields=["predicted_clv"]),
            models.Index(fields=["revenue"]),
            models.Index(fields=["order_count"]),
            models.Index(fields=["last_order_at"]),
            models.Index(fields=["engagement_score"]),
        ]

    def __str__(self) -> str:
        return f"Insights of profile #{self.profile_id}"


key_validator = RegexValidator(
    r"^[a-z][a-z0-9_]{0,49}$", "Lower-case letters, digits and _; starts with a letter."
)


class CustomInsight(models.Model):
    """A per-profile aggregate of events a marketer defines in the admin, without SQL.

    E.g. "sum of ``total`` of ``Order Completed`` in the last 90 days where ``currency`` equals
    EUR". The value of each profile lands in ``ProfileInsight.custom[key]``.
    """

    class Aggregate(models.TextChoices):
        COUNT = "count", "Count of events"
        SUM = "sum", "Sum of a property"
        AVG = "avg", "Average of a property"
        MIN = "min", "Minimum of a property"
        MAX = "max", "Maximum of a property"

    name = models.CharField(max_length=100, unique=True)
    key = models.CharField(
        max_length=50,
        unique=True,
        validators=[key_validator],
        help_text="Name used in segments and the API, e.g. orders_90d.",
    )
    aggregate = models.CharField(max_length=5, choices=Aggregate.choices)
    event_name = models.CharField(max_length=200, help_text="Event name, e.g. Order Completed.")
    property = models.CharField(
        max_length=200,
        blank=True,
        help_text="Numeric event property (not for count), e.g. total. Dots reach nested keys.",
    )
    window_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Only events of the last N days; empty = all time."
    )
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CustomInsightFilter(models.Model):
    """A condition on an event property; all filters of an insight must hold (AND)."""

    class Operator(models.TextChoices):
        EQUALS = "equals", "equals"
        NOT_EQUALS = "not_equals", "does not equal"
        CONTAINS = "contains", "contains"
        GREATER = "greater", "is greater than"
        LESS = "less", "is less than"
        IS_SET = "is_set", "is set"

    insight = models.ForeignKey(CustomInsight, on_delete=models.CASCADE, related_name="filters")
    property = models.CharField(max_length=200, help_text="Event property, e.g. currency.")
    operator = models.CharField(max_length=12, choices=Operator.choices)
    value = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["insight", "id"]

    def __str__(self) -> str:
        return f"{self.property} {self.get_operator_display()} {self.value}".strip()


class InsightRun(models.Model):
    """One computation of insights: the job's run row with progress, counts and fitted models.

    A full run computes every profile, the RFM quintile cut points and the CLV model fits;
    an incremental run recomputes the profiles touched since the last run and reuses them.
    """

    class Kind(models.TextChoices):
        FULL = "full", "Full"
        INCREMENTAL = "incremental", "Incremental"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    profiles_total = models.PositiveIntegerField(null=True, blank=True)
    profiles_done = models.PositiveIntegerField(default=0)
    rfm_cuts = models.JSONField(default=dict, blank=True, help_text="Quintile cut points.")
    clv_params = models.JSONField(default=dict, blank=True, help_text="BG/NBD, Gamma-Gamma.")
    error = models.TextField(blank=True)
    last_event_id = models.BigIntegerField(
        null=True, blank=True, help_text="Events up to this id are included (the next run's start)."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "kind", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} insight run #{self.pk}"

    @property
    def progress_percent(self) -> int:
        if not self.profiles_total:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return min(100, round(100 * self.profiles_done / self.profiles_total))


class InsightMetric(models.Model):
    """One number a dashboard shows, materialised by each insight run (dashboards never scan
    profiles or events). ``bucket`` is a day (YYYY-MM-DD), a category or "" for a total."""

    metric = models.CharField(max_length=50)
    bucket = models.CharField(max_length=200, blank=True)
    value = models.FloatField()
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["metric", "bucket"], name="uniq_insight_metric_bucket")
        ]
        ordering = ["metric", "bucket"]

    def __str__(self) -> str:
        return f"{self.metric}[{self.bucket}] = {self.value}"
