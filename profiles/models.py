"""Models of customer data, in the order data flows through them.

DataSource -> FieldMapping; ImportRun -> RawRecord -> SourceRecord -> Identity -> Profile; Event.
"""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from profiles.constants import (
    CANONICAL_ATTRIBUTES,
    DATE_FORMAT_CHOICES,
    IdentifierType,
    NumberLocale,
    Transform,
)


def new_write_key() -> str:
    return secrets.token_urlsafe(24)


class DataSource(models.Model):
    """A system customer data comes from: a file export or an SDK/API stream."""

    class Kind(models.TextChoices):
        FILE = "file", "File import"
        API = "api", "Tracking API"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FILE)
    preset = models.CharField(
        max_length=30, blank=True, help_text="Column mapping preset, e.g. shopify."
    )
    priority = models.PositiveSmallIntegerField(
        default=100, help_text="Lower wins when sources disagree about an attribute."
    )
    default_region = models.CharField(
        max_length=2,
        blank=True,
        help_text="Country (ISO 3166 alpha-2) for phone numbers without a country of their own.",
    )
    write_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["priority", "name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if self.kind == self.Kind.API and not self.write_key:
            self.write_key = new_write_key()
        super().save(*args, **kwargs)


class FieldMapping(models.Model):
    """Maps one column (or message field) of a source to a canonical attribute or custom trait."""

    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="mappings")
    source_field = models.CharField(max_length=200)
    target = models.CharField(
        max_length=200,
        help_text="A canonical attribute (email, first_name...) or trait:<name> (custom trait).",
    )
    transform = models.CharField(
        max_length=30, choices=Transform.choices, blank=True, default=Transform.NONE
    )
    identifier_type = models.CharField(
        max_length=20,
        choices=IdentifierType.choices,
        blank=True,
        help_text="Makes the value an identity used for matching (e-mail, phone...).",
    )
    is_key = models.BooleanField(
        default=False, help_text="Identifies the customer within this source (external key)."
    )
    number_locale = models.CharField(
        max_length=5, choices=NumberLocale.choices, default=NumberLocale.EN
    )
    date_format = models.CharField(
        max_length=30,
        choices=DATE_FORMAT_CHOICES,
        blank=True,
        help_text="Needed when day and month order cannot be told from the column.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "source_field"], name="uniq_mapping_field")
        ]
        ordering = ["source", "id"]

    def __str__(self) -> str:
        return f"{self.source_field} → {self.target}"


class ImportRun(models.Model):
    """One import of one file into one source: the job's run row with progress and counts."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Awaiting mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="import_runs")
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255, blank=True)
    encoding = models.CharField(
        max_length=20,
        blank=True,
        help_text="Blank: detected (UTF-8 with or without BOM, else "
        "Windows-1252). Set when the file was read as detected.",
    )
    delimiter = models.CharField(
        max_length=1, blank=True, help_text="Blank: detected (comma, semicolon, tab or pipe)."
    )
    headers = models.JSONField(default=list, blank=True)
    date_orders = models.JSONField(
        default=dict, blank=True, help_text="Day/month order inferred per date column."
    )
    rejected_reasons = models.JSONField(
        default=dict, blank=True, help_text="Rejected rows counted by reason."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
    suppressed_count = models.PositiveIntegerField(
        "suppressed",
        default=0,
        help_text="Rows of erased people (suppression list): landed without payload, not applied.",
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"Import #{self.pk} {self.original_name or self.file.name}"

    @property
    def progress_percent(self) -> int:
        if not self.rows_total:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return min(100, round(100 * self.rows_done / self.rows_total))


class RawRecord(models.Model):
    """An input exactly as it arrived (a file row or an API message), stored before mapping."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        SUPPRESSED = "suppressed", "Suppressed"

    # No single-column indexes on source and import_run: the composite indexes below lead with
    # them (a second index costs every insert, and on a growing table the planner picked it
    # for messageId lookups over the unique index, 20x slower: docs/ingestion.md).
    source = models.ForeignKey(
        DataSource, on_delete=models.CASCADE, related_name="raw_records", db_index=False
    )
    import_run = models.ForeignKey(
        ImportRun,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="raw_records",
        db_index=False,
    )
    row_number = models.PositiveIntegerField(null=True, blank=True)
    payload = models.JSONField(help_text="The row (header → value) or message, verbatim.")
    content_hash = models.CharField(max_length=64)
    message_id = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 (unique when set)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    source_record = models.ForeignKey(
        "SourceRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="raw_records"
    )
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "message_id"], name="uniq_raw_message_id_per_source"
            )
        ]
        indexes = [
            models.Index(fields=["import_run", "status", "row_number"]),
            models.Index(fields=["source", "status"]),
        ]

    def __str__(self) -> str:
        where = f"row {self.row_number}" if self.row_number else f"message {self.message_id}"
        return f"{self.source} {where}"


class Profile(models.Model):
    """The unified individual. Its id is stable: a merge keeps the oldest id and redirects others.

    Attributes are derived from the profile's source records by survivorship;
    ``attribute_sources`` names the source record each value came from.
    """

    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=320, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    city = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=2, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    attribute_sources = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["email"]),
            models.Index(fields=["last_name", "first_name"]),
            models.Index(fields=["created_at"]),
            # Segments filter on country and city (docs/segments.md).
            models.Index(fields=["country", "city"]),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"#{self.pk} {name or self.email or 'unnamed'}"


class ProfileRedirect(models.Model):
    """An id that was merged away, pointing at the profile that absorbed it."""

    old_id = models.BigIntegerField(unique=True)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="redirects")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.old_id} → {self.profile_id}"


class SourceRecord(models.Model):
    """One customer as one source knows them: canonical attributes plus custom traits."""

    # Indexed by the unique (source, external_key) and the profile index below.
    source = models.ForeignKey(
        DataSource, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    external_key = models.CharField(max_length=320)
    attributes = models.JSONField(default=dict, blank=True)
    traits = models.JSONField(default=dict, blank=True)
    observed_at = models.JSONField(
        default=dict, blank=True, help_text="When each attribute was last observed (ISO time)."
    )
    content_hash = models.CharField(max_length=64, blank=True)
    profile = models.ForeignKey(
        Profile,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="source_records",
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_key"], name="uniq_source_external_key"
            )
        ]
        indexes = [models.Index(fields=["profile"])]

    def __str__(self) -> str:
        return f"{self.source} {self.external_key}"


class Identity(models.Model):
    """An identifier a source record carries: raw value as given and its normalised match key.

    ``key`` is null when the value must never link (placeholder, unreadable phone); ``flag``
    says why. ``profile`` mirrors the source record's profile for fast lookups.
    """

    type = models.CharField(max_length=20, choices=IdentifierType.choices)
    raw_value = models.CharField(max_length=500)
    key = models.CharField(max_length=320, null=True, blank=True)  # noqa: DJ001 (null: never links)
    flag = models.CharField(max_length=200, blank=True)
    # Both indexed by the composite indexes below, which lead with them.
    source_record = models.ForeignKey(
        SourceRecord, on_delete=models.CASCADE, related_name="identities", db_index=False
    )
    profile = models.ForeignKey(
        Profile,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="identities",
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(
                fields=["source_record", "type", "raw_value"], name="uniq_identity_per_record"
            )
        ]
        indexes = [models.Index(fields=["key", "type"]), models.Index(fields=["profile", "type"])]

    def __str__(self) -> str:
        return f"{self.type}: {self.key or self.raw_value}"


class Event(models.Model):
    """Something a person did (track), saw (page, screen) or said about themselves (identify)."""

    class Type(models.TextChoices):
        IDENTIFY = "identify", "Identify"
        TRACK = "track", "Track"
        PAGE = "page", "Page"
        SCREEN = "screen", "Screen"
        GROUP = "group", "Group"
        ALIAS = "alias", "Alias"

    # source and profile: indexed by the unique (source, message_id) and (profile, name, time).
    source = models.ForeignKey(
        DataSource, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    message_id = models.CharField(max_length=200)
    type = models.CharField(max_length=10, choices=Type.choices)
    name = models.CharField(max_length=200, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    user_id = models.CharField(max_length=200, blank=True)
    anonymous_id = models.CharField(max_length=200, blank=True)
    source_record = models.ForeignKey(
        SourceRecord, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    profile = models.ForeignKey(
        Profile,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
        db_index=False,
    )
    raw_record = models.ForeignKey(
        RawRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "message_id"], name="uniq_event_message_id_per_source"
            )
        ]
        indexes = [models.Index(fields=["profile", "name", "timestamp"])]

    def __str__(self) -> str:
        return f"{self.type} {self.name}".strip()


class MergeLog(models.Model):
    """A merge of profiles into a survivor, with a snapshot of what each had so it can be undone."""

    # The survivor's id is kept when a later merge absorbs it (no SET NULL, no constraint), so
    # undoing that later merge brings the profile back and this merge can then be undone too.
    survivor = models.ForeignKey(
        Profile,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="merge_logs",
    )
    merged_ids = models.JSONField(help_text="Ids of the profiles absorbed.")
    reason = models.CharField(max_length=200)
    snapshot = models.JSONField(
        help_text="Each absorbed profile's fields and the ids of its records, identities, events."
    )
    created_at = models.DateTimeField(default=timezone.now)
    survivor_snapshot = models.JSONField(
        default=dict, blank=True, help_text="The survivor's own fields before the merge."
    )
    extensions = models.JSONField(
        default=dict, blank=True, help_text="What other apps (consent ...) saved to undo it."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    unmerged_at = models.DateTimeField(null=True, blank=True)
    unmerged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Merge into #{self.survivor_id}: {self.merged_ids}"


class SurvivorshipStrategy(models.TextChoices):
    SOURCE_PRIORITY = "source_priority", "Source priority, then most recent"
    MOST_RECENT = "most_recent", "Most recent (by event time)"
    MOST_FREQUENT = "most_frequent", "Most frequent, then source priority"


class Ruleset(models.Model):
    """How records are matched: OR'ed match rules, score thresholds, guards and survivorship.

    The active ruleset is used by every run; any other can be dry-run to see what it would do.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=False, help_text="The published ruleset.")
    auto_threshold = models.FloatField(
        default=16.0, help_text="Total score at or above which a matching pair merges."
    )
    review_threshold = models.FloatField(
        default=7.0, help_text="Total score at or above which a pair is suggested for review."
    )
    typo_threshold = models.FloatField(
        null=True,
        blank=True,
        default=14.0,
        help_text=(
            "Total score at or above which a pair merges without a match rule when only typos "
            "separate it: the same birth date or one typo of it, two of first name, last name "
            "and customer number alike up to a typo, no strong field that disagrees. "
            "Empty: off."
        ),
    )
    block_cap = models.PositiveIntegerField(
        default=200, help_text="Blocks larger than this are not compared (reported)."
    )
    identifier_cap = models.PositiveIntegerField(
        default=20,
        help_text="An identifier value shared by more source records stops linking (reported).",
    )
    survivorship_default = models.CharField(
        max_length=20,
        choices=SurvivorshipStrategy.choices,
        default=SurvivorshipStrategy.SOURCE_PRIORITY,
    )
    survivorship_overrides = models.JSONField(
        default=dict, blank=True, help_text='Per attribute, e.g. {"city": "most_frequent"}.'
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-is_active", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="one_active_ruleset",
            )
        ]

    def __str__(self) -> str:
        return self.name + (" (active)" if self.is_active else "")

    def clean(self) -> None:
        """The thresholds keep their order: 0 < review <= typo (when set) <= auto. Otherwise a
        negative auto threshold merges every candidate pair a rule matches, and a review
        threshold above the auto one leaves no review band."""
        errors = {}
        review, typo, auto = self.review_threshold, self.typo_threshold, self.auto_threshold
        if review is not None and review <= 0:
            errors["review_threshold"] = "The review threshold must be above 0."
        if review is not None and auto is not None and review > auto:
            errors["auto_threshold"] = "The auto threshold must not be below the review threshold."
        if (
            typo is not None
            and review is not None
            and auto is not None
            and not (review <= typo <= auto)
        ):
            errors["typo_threshold"] = (
                "The typo threshold must lie between the review and the auto threshold."
            )
        overrides_error = survivorship_overrides_error(self.survivorship_overrides)
        if overrides_error:
            errors["survivorship_overrides"] = overrides_error
        if errors:
            raise ValidationError(errors)


def survivorship_overrides_error(overrides) -> str:
    """Why per-attribute survivorship overrides cannot be applied ('' when they can): they must
    map canonical attributes to known strategies (a typo would silently fall back to the
    default, and a list stopped every merge and import)."""
    if overrides in (None, ""):
        return ""
    if not isinstance(overrides, dict):
        return 'Give an object of attribute and strategy, e.g. {"city": "most_recent"}.'
    problems = [
        p for name, strategy in overrides.items() if (p := _override_problem(name, strategy))
    ]
    if not problems:
        return ""
    choices = ", ".join(SurvivorshipStrategy.values)
    return "; ".join(problems) + f" (strategies: {choices})."


def survivorship_overrides_valid(overrides) -> dict[str, str]:
    """The overrides survivorship applies: the entries ``survivorship_overrides_error`` accepts
    (one saved before the admin checked them is ignored rather than stopping every merge)."""
    if not isinstance(overrides, dict):
        return {}
    return {name: s for name, s in overrides.items() if not _override_problem(name, s)}


def _override_problem(name: str, strategy: object) -> str:
    if name not in CANONICAL_ATTRIBUTES:
        return f"unknown attribute {name!r}"
    if not isinstance(strategy, str) or strategy not in SurvivorshipStrategy.values:
        return f"{name}: unknown strategy {strategy!r}"
    return ""


class MatchRule(models.Model):
    """One match rule of a ruleset: all its criteria must hold (rules are OR'ed)."""

    ruleset = models.ForeignKey(Ruleset, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField(default=0)
    is_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["ruleset", "position", "id"]

    def __str__(self) -> str:
        return self.name


class MatchCriterion(models.Model):
    """A field compared by a method; blank never matches blank unless said so."""

    class Method(models.TextChoices):
        EXACT = "exact", "Exact"
        EXACT_NORMALISED = "exact_normalised", "Exact (normalised)"
        FUZZY_HIGH = "fuzzy_high", "Fuzzy: high (≥ 0.92)"
        FUZZY_MEDIUM = "fuzzy_medium", "Fuzzy: medium (≥ 0.85)"
        FUZZY_LOW = "fuzzy_low", "Fuzzy: low (≥ 0.75)"

    class Scorer(models.TextChoices):
        DEFAULT = "default", "The field's default"
        JARO_WINKLER = "jaro_winkler", "Jaro-Winkler"
        RATIO = "ratio", "ratio (thefuzz)"
        PARTIAL_RATIO = "partial_ratio", "partial_ratio (thefuzz)"
        TOKEN_SORT_RATIO = "token_sort_ratio", "token_sort_ratio (thefuzz)"
        TOKEN_SET_RATIO = "token_set_ratio", "token_set_ratio (thefuzz)"

    class Field(models.TextChoices):
        FIRST_NAME = "first_name", "First name"
        LAST_NAME = "last_name", "Last name"
        BIRTH_DATE = "birth_date", "Birth date"
        EMAIL = "email", "E-mail"
        PHONE = "phone", "Phone"
        STREET = "street", "Street"
        STREET2 = "street2", "Street (line 2)"
        POSTCODE = "postcode", "Postcode"
        CITY = "city", "City"
        STATE = "state", "State"
        CUSTOMER_ID = "customer_id", "Customer number"
        USER_ID = "user_id", "User id"

    rule = models.ForeignKey(MatchRule, on_delete=models.CASCADE, related_name="criteria")
    field = models.CharField(max_length=30, choices=Field.choices)
    method = models.CharField(
        max_length=20, choices=Method.choices, default=Method.EXACT_NORMALISED
    )
    scorer = models.CharField(max_length=20, choices=Scorer.choices, default=Scorer.DEFAULT)
    blank_matches_blank = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "match criteria"
        ordering = ["rule", "id"]

    def __str__(self) -> str:
        return f"{self.field} {self.method}"


class ResolutionRun(models.Model):
    """One full resolution run (or dry run) of a ruleset: progress, counts and its report."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ruleset = models.ForeignKey(Ruleset, on_delete=models.PROTECT, related_name="runs")
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    step = models.CharField(max_length=100, blank=True)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{'Dry run' if self.dry_run else 'Run'} #{self.pk} of {self.ruleset}"

    @property
    def progress_percent(self) -> int:
        if not self.progress_total:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return min(100, round(100 * self.progress_done / self.progress_total))


class MergeSuggestion(models.Model):
    """A pair of profiles that may be one person, for a data steward, with the score's parts."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        SKIPPED = "skipped", "Skipped"
        # Not a decision: a merge absorbed one side (an undo of that merge reopens it).
        CLOSED = "closed", "Closed: a side was merged"

    # No database constraint: the decision stays on record after a merge removes one side.
    left = models.ForeignKey(
        Profile, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    right = models.ForeignKey(
        Profile, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    score = models.FloatField()
    field_scores = models.JSONField(
        default=dict, help_text="Per field: similarity (0..1 or null = missing) and contribution."
    )
    rule = models.CharField(max_length=200, blank=True)
    reasons = models.JSONField(default=list, blank=True, help_text="Why it did not merge itself.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    run = models.ForeignKey(
        ResolutionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    merge_log = models.ForeignKey(
        "MergeLog", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-score", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["left", "right"],
                condition=models.Q(status="pending"),
                name="one_pending_suggestion_per_pair",
            )
        ]
        indexes = [models.Index(fields=["status", "-score", "created_at"])]

    def __str__(self) -> str:
        return f"#{self.left_id} ~ #{self.right_id} ({self.score:g})"


class DoNotMerge(models.Model):
    """Two profiles a steward said are different people; every later run honours it."""

    left_id = models.BigIntegerField()
    right_id = models.BigIntegerField()
    reason = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "do-not-merge pair"
        constraints = [
            models.UniqueConstraint(fields=["left_id", "right_id"], name="uniq_do_not_merge"),
            models.CheckConstraint(
                condition=models.Q(left_id__lt=models.F("right_id")), name="do_not_merge_ordered"
            ),
        ]
        indexes = [models.Index(fields=["right_id"])]

    def __str__(self) -> str:
        return f"#{self.left_id} ≠ #{self.right_id}"


from profiles.loyalty_models import *  # noqa: E402, F401, F403
