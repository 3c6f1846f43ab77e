"""Activation: destinations, activations (segment -> destination), their runs and what was sent.

Destination -> Activation -> ActivationRun -> (RunItem work list, DeliveryBatch per batch);
ActivationMember is the per-activation snapshot of what was last sent (hash per member), from
which changes-only runs compute added / updated / removed set-based.
"""

from __future__ import annotations

import difflib
import re
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


def new_secret() -> str:
    return secrets.token_hex(32)


class Destination(models.Model):
    """Where audiences go: a file export folder or a webhook (HTTPS POST of signed JSON batches).

    ``consent_purpose`` is the key of the consent purpose every recipient must have granted;
    ``is_sale_or_sharing`` makes a Global Privacy Control opt-out exclude people as well.
    ``secret`` signs webhook bodies and keys the pseudonymous ids sent in removal notices.
    """

    class Kind(models.TextChoices):
        FILE = "file", "File export"
        WEBHOOK = "webhook", "Webhook"

    class FileFormat(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON Lines"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    file_format = models.CharField(
        max_length=10, choices=FileFormat.choices, default=FileFormat.CSV, blank=True
    )
    folder = models.CharField(
        max_length=200,
        blank=True,
        help_text="Sub-folder of the export storage (CDP_ACTIVATION_STORAGE) for this destination.",
    )
    url = models.URLField(max_length=500, blank=True, help_text="Webhook: the HTTPS endpoint.")
    secret = models.CharField(max_length=128, default=new_secret)
    batch_size = models.PositiveIntegerField(default=500)
    timeout_seconds = models.FloatField(default=10.0)
    max_attempts = models.PositiveSmallIntegerField(
        default=5, help_text="Webhook: tries per batch before it becomes a dead letter."
    )
    backoff_seconds = models.FloatField(
        default=1.0, help_text="Webhook: first retry delay; doubled each try (capped at 5 min)."
    )
    consent_purpose = models.SlugField(
        max_length=50,
        blank=True,
        help_text="Key of the consent purpose recipients must have granted (e.g. email_marketing).",
    )
    consent_channel = models.SlugField(
        max_length=50, blank=True, help_text="Channel of that consent (e.g. email); blank = any."
    )
    is_sale_or_sharing = models.BooleanField(
        default=False,
        help_text="Sending is a sale or sharing of data: opt-outs (GPC) exclude people.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from activation.webhook import url_problem

        if self.kind == self.Kind.WEBHOOK:
            if not self.url:
                raise ValidationError({"url": "A webhook needs its URL."})
            problem = url_problem(self.url)
            if problem:
                raise ValidationError({"url": problem})
        if self.kind == self.Kind.FILE and not self.file_format:
            raise ValidationError({"file_format": "Choose CSV or JSON Lines."})
        if ".." in self.folder.split("/"):
            raise ValidationError({"folder": "The folder must stay inside the export storage."})
        if self.batch_size < 1 or self.batch_size > 10000:
            raise ValidationError({"batch_size": "Between 1 and 10,000 people per batch."})
        if self.max_attempts < 1:
            raise ValidationError({"max_attempts": "At least one try."})


ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]*(:[a-z0-9_]+)?$")


def attribute_problems(names: object) -> list[str]:
    """Why an activation's attribute list cannot be exported; empty when every name can be.

    An export reads each attribute from the profile (activation.selectors.activation_rows):
    the canonical attributes of profiles/constants.py (docs/attributes.md), which survivorship
    puts on every profile. Any other name would be an empty column, so it is refused: an
    unknown name (with the closest attribute when there is one), and names of other kinds
    (``trait:...``, ``insight:...``), which are not on the profile.
    """
    from profiles.constants import CANONICAL_ATTRIBUTES

    if not isinstance(names, list) or not all(isinstance(a, str) for a in names):
        return ["A list of attribute names, e.g. first_name or postcode."]
    bad = [a for a in names if not ATTRIBUTE_NAME.match(a)]
    if bad:
        return [
            f"Not attribute names: {', '.join(bad)}. "
            "A list of attribute names, e.g. first_name or postcode."
        ]
    problems = []
    unknown = []
    for name in names:
        if name in CANONICAL_ATTRIBUTES or ":" in name:
            continue
        close = difflib.get_close_matches(name, list(CANONICAL_ATTRIBUTES), n=1, cutoff=0.8)
        unknown.append(f"{name} (did you mean {close[0]}?)" if close else name)
    if unknown:
        problems.append(f"Unknown attributes: {', '.join(unknown)}.")
    other = [a for a in names if ":" in a]
    if other:
        problems.append(
            f"{', '.join(other)}: only profile attributes are sent; custom traits and "
            "insights are not on the profile, so they would be empty columns."
        )
    return problems


class Activation(models.Model):
    """A segment sent to a destination with chosen attributes, contact point, schedule and mode."""

    class ContactPoint(models.TextChoices):
        NONE = "", "None"
        EMAIL = "email", "E-mail"
        PHONE = "phone", "Phone"

    class Schedule(models.TextChoices):
        MANUAL = "manual", "Manual"
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily"

    class Mode(models.TextChoices):
        FULL = "full", "Full"
        CHANGES = "changes", "Changes only"

    name = models.CharField(max_length=200, unique=True)
    segment = models.ForeignKey(
        "segments.Segment", on_delete=models.PROTECT, related_name="activations"
    )
    destination = models.ForeignKey(
        Destination, on_delete=models.PROTECT, related_name="activations"
    )
    attributes = models.JSONField(
        default=list,
        blank=True,
        help_text='Attributes to send, e.g. ["first_name", "country", "loyalty_tier"].',
    )
    contact_point = models.CharField(
        max_length=10, choices=ContactPoint.choices, blank=True, default=ContactPoint.EMAIL
    )
    schedule = models.CharField(max_length=10, choices=Schedule.choices, default=Schedule.MANUAL)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.FULL)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        problems = attribute_problems(self.attributes)
        if problems:
            raise ValidationError({"attributes": problems})


class ActivationRun(models.Model):
    """One run of an activation: the job's run row (progress, counts, errors, timings)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULE = "schedule", "Schedule"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    activation = models.ForeignKey(Activation, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    mode = models.CharField(max_length=10, choices=Activation.Mode.choices)
    staged = models.BooleanField(
        default=False, help_text="The work list is frozen; a retry sends only what is left."
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    members_count = models.PositiveIntegerField(null=True, blank=True)
    eligible_count = models.PositiveIntegerField(null=True, blank=True)
    excluded = models.JSONField(default=dict, blank=True, help_text="Left out, by reason.")
    added_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    removed_count = models.PositiveIntegerField(default=0)
    sent_count = models.PositiveIntegerField(default=0)
    items_total = models.PositiveIntegerField(null=True, blank=True)
    items_done = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per phase.")
    file = models.CharField(max_length=500, blank=True, help_text="Path within export storage.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["activation", "status", "-finished_at"])]

    def __str__(self) -> str:
        return f"Run #{self.pk} of {self.activation_id} ({self.status})"

    @property
    def progress_percent(self) -> int:
        if not self.items_total:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return min(100, round(100 * self.items_done / self.items_total))

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class Action(models.TextChoices):
    ADD = "add", "Added"
    UPDATE = "update", "Updated"
    REMOVE = "remove", "Removed"


class RunItem(models.Model):
    """One entry of a run's frozen work list; batches are ranges of these ids.

    Holds ids and hashes only: attributes are read at send time (and consent checked again).
    Written in bulk by INSERT ... SELECT, so the run link has no database-level FK check per
    row (Django still cascades deletes).
    """

    run = models.ForeignKey(
        ActivationRun, on_delete=models.CASCADE, related_name="items", db_constraint=False
    )
    profile_id = models.BigIntegerField()
    pseudo_id = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=32, blank=True)
    action = models.CharField(max_length=6, choices=Action.choices)

    class Meta:
        indexes = [
            models.Index(fields=["run", "id"]),
            models.Index(fields=["run", "profile_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.pseudo_id[:12]}"


class DeliveryBatch(models.Model):
    """One webhook batch of a run (a range of its items), sent at most once.

    ``idempotency_key`` goes out as the Idempotency-Key header. A batch whose last try failed
    is a dead letter (status ``dead``) with the error; retrying the run sends it again.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        DEAD = "dead", "Dead letter"

    run = models.ForeignKey(ActivationRun, on_delete=models.CASCADE, related_name="batches")
    number = models.PositiveIntegerField()
    first_item_id = models.BigIntegerField()
    last_item_id = models.BigIntegerField()
    size = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=80, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="uniq_batch_number_per_run")
        ]
        indexes = [models.Index(fields=["status", "updated_at"])]
        verbose_name_plural = "delivery batches"

    def __str__(self) -> str:
        return f"Batch {self.number} of run {self.run_id} ({self.status})"


class ActivationMember(models.Model):
    """Snapshot: a person as last sent by an activation (hash of what was sent).

    ``profile_id`` is a plain id, not a foreign key, so an erased profile's row survives and
    its removal notice (pseudonymous id only) can still be sent.
    """

    activation = models.ForeignKey(
        Activation, on_delete=models.CASCADE, related_name="members", db_constraint=False
    )
    profile_id = models.BigIntegerField()
    pseudo_id = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=32)
    run_id = models.BigIntegerField(null=True, help_text="The run that last sent this row.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["activation", "profile_id"], name="uniq_activation_member"
            )
        ]

    def __str__(self) -> str:
        return f"{self.activation_id}: {self.pseudo_id[:12]}"
