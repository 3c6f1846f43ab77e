"""Models of customer data, in the order data flows through them.

DataSource -> FieldMapping; ImportRun -> RawRecord -> SourceRecord -> Identity -> Profile; Event.
"""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from profiles.constants import IdentifierType, Transform


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
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="import_runs")
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
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

    source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="raw_records")
    import_run = models.ForeignKey(
        ImportRun, null=True, blank=True, on_delete=models.CASCADE, related_name="raw_records"
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

    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="records")
    external_key = models.CharField(max_length=320)
    attributes = models.JSONField(default=dict, blank=True)
    traits = models.JSONField(default=dict, blank=True)
    observed_at = models.JSONField(
        default=dict, blank=True, help_text="When each attribute was last observed (ISO time)."
    )
    content_hash = models.CharField(max_length=64, blank=True)
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.SET_NULL, related_name="source_records"
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
    source_record = models.ForeignKey(
        SourceRecord, on_delete=models.CASCADE, related_name="identities"
    )
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.SET_NULL, related_name="identities"
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

    source = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="events")
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
        Profile, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
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

    survivor = models.ForeignKey(
        Profile, null=True, on_delete=models.SET_NULL, related_name="merge_logs"
    )
    merged_ids = models.JSONField(help_text="Ids of the profiles absorbed.")
    reason = models.CharField(max_length=200)
    snapshot = models.JSONField(
        help_text="Each absorbed profile's fields and the ids of its source records."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Merge into #{self.survivor_id}: {self.merged_ids}"


from profiles.loyalty_models import *  # noqa: E402, F401, F403
