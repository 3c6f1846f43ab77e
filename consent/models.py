"""Consent history, data-subject requests, suppression and the runs of privacy jobs.

ConsentRecord is append-only: the current state per profile x purpose x channel is derived
(the newest explicit decision), never stored. DataSubjectRequest moves through a guarded
state machine (consent.services.requests) and every transition leaves a RequestEvent.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Purpose(models.Model):
    """Why personal data is processed (e-mail marketing, analytics, sale or sharing, ...)."""

    key = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    is_sale_or_sharing = models.BooleanField(
        default=False, help_text="The purpose a Global Privacy Control signal opts out of."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Channel(models.Model):
    """How a purpose reaches the person (e-mail, SMS, web...). ``all`` covers every channel."""

    ALL = "all"

    key = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", "Granted"
    DENIED = "denied", "Denied"
    WITHDRAWN = "withdrawn", "Withdrawn"


RESTRICTIVE_STATUSES = (ConsentStatus.DENIED, ConsentStatus.WITHDRAWN)


class LawfulBasis(models.TextChoices):
    CONSENT = "consent", "Consent"
    CONTRACT = "contract", "Contract"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation"
    VITAL_INTERESTS = "vital_interests", "Vital interests"
    PUBLIC_TASK = "public_task", "Public task"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests"


class ConsentSource(models.TextChoices):
    IMPORT = "import", "Import"
    API = "api", "API"
    FORM = "form", "Form"
    GPC = "gpc", "Global Privacy Control"
    ADMIN = "admin", "Admin"
    REQUEST = "request", "Data-subject request"
    MERGE = "merge", "Merge (most restrictive kept)"


class ConsentRecordQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # Moving records between profiles (merge, unmerge) is the only update allowed.
        if set(kwargs) - {"profile", "profile_id"}:
            raise TypeError("Consent records are append-only; only their profile may move.")
        return super().update(**kwargs)


class ConsentRecord(models.Model):
    """One consent decision, as captured. Append-only: a change of mind is a new record.

    ``origin_profile_id`` is the profile the decision was recorded for. Records with source
    MERGE were written by a merge to keep the most restrictive state (an unmerge removes them).
    ``evidence`` holds ids and technical facts (import run, form version, IP, user agent).
    """

    profile = models.ForeignKey(
        "profiles.Profile", on_delete=models.CASCADE, related_name="consent_records"
    )
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="records")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="records")
    status = models.CharField(max_length=10, choices=ConsentStatus.choices)
    lawful_basis = models.CharField(
        max_length=30, choices=LawfulBasis.choices, default=LawfulBasis.CONSENT
    )
    source = models.CharField(max_length=10, choices=ConsentSource.choices)
    captured_at = models.DateTimeField(help_text="When the person made the decision.")
    evidence = models.JSONField(default=dict, blank=True)
    conflict = models.BooleanField(
        default=False, help_text="This decision contradicts the state it replaced (e.g. GPC)."
    )
    source_record = models.ForeignKey(
        "profiles.SourceRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    origin_profile_id = models.BigIntegerField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-captured_at", "-id"]
        indexes = [
            models.Index(
                fields=["profile", "purpose", "channel", "-captured_at", "-id"],
                name="consent_current_idx",
            ),
            models.Index(fields=["purpose", "channel", "status"]),
            models.Index(fields=["origin_profile_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.purpose_id}/{self.channel_id} {self.status} ({self.source})"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("force_insert", False):
            raise TypeError("Consent records are append-only.")
        super().save(*args, **kwargs)


class Regime(models.TextChoices):
    GDPR = "gdpr", "GDPR"
    CCPA = "ccpa", "CCPA / CPRA"


class RequestType(models.TextChoices):
    ACCESS = "access", "Access"
    PORTABILITY = "portability", "Portability"
    ERASURE = "erasure", "Erasure"
    RECTIFICATION = "rectification", "Rectification"
    RESTRICTION = "restriction", "Restriction of processing"
    OBJECTION = "objection", "Objection / opt-out of sale or sharing"


class RequestStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    VERIFYING = "verifying", "Verifying identity"
    VERIFIED = "verified", "Verified"
    IN_PROGRESS = "in_progress", "In progress"
    EXTENDED = "extended", "Extended"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"


OPEN_STATUSES = (
    RequestStatus.RECEIVED,
    RequestStatus.VERIFYING,
    RequestStatus.VERIFIED,
    RequestStatus.IN_PROGRESS,
    RequestStatus.EXTENDED,
)
UNVERIFIED_STATUSES = (RequestStatus.RECEIVED, RequestStatus.VERIFYING)


class DataSubjectRequest(models.Model):
    """A person's request to exercise a privacy right, with its deadlines and verification.

    The requester's contact is kept only while the request is open for an erasure: when an
    erasure completes it is replaced by its salted hash (``requester_hash`` always has it).
    """

    class Intake(models.TextChoices):
        ADMIN = "admin", "Admin"
        PUBLIC_PAGE = "page", "Public page"
        API = "api", "API"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=20, choices=RequestType.choices)
    regime = models.CharField(max_length=10, choices=Regime.choices)
    status = models.CharField(
        max_length=20, choices=RequestStatus.choices, default=RequestStatus.RECEIVED
    )
    intake = models.CharField(max_length=10, choices=Intake.choices, default=Intake.ADMIN)
    requester_email = models.CharField(max_length=320)
    requester_name = models.CharField(max_length=200, blank=True)
    requester_hash = models.CharField(max_length=64, db_index=True)
    identifiers = models.JSONField(
        default=list,
        blank=True,
        help_text='More identifiers of the person: [{"type": "email", "value": "..."}].',
    )
    details = models.TextField(blank=True, help_text="What the person asks for, in their words.")
    corrections = models.JSONField(
        default=dict, blank=True, help_text="Rectification: attribute -> corrected value."
    )
    purpose_keys = models.JSONField(
        default=list, blank=True, help_text="Objection: the purposes objected to (default: sale)."
    )
    received_at = models.DateTimeField(default=timezone.now)
    due_date = models.DateField()
    acknowledge_by = models.DateField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    extended_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_method = models.CharField(max_length=100, blank=True)
    verification_token_hash = models.CharField(max_length=64, blank=True)
    verification_code_hash = models.CharField(max_length=64, blank=True)
    verification_expires_at = models.DateTimeField(null=True, blank=True)
    verification_attempts = models.PositiveSmallIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    profile_ids = models.JSONField(
        default=list, blank=True, help_text="The profiles found for the person when it was run."
    )
    outcome = models.JSONField(default=dict, blank=True, help_text="Counts of what was done.")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["due_date", "id"]
        verbose_name = "data-subject request"
        indexes = [
            models.Index(fields=["status", "due_date"]),
            models.Index(fields=["type", "regime", "status"]),
        ]

    def __str__(self) -> str:
        return f"DSR-{self.pk} {self.get_type_display()} ({self.get_regime_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None


class RequestEvent(models.Model):
    """The audit trail of one request: who did what, when, from which state to which."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=50)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.action} {self.from_status}→{self.to_status}"


class RequestRun(models.Model):
    """One background job for a request (access export, erasure): progress, counts, file."""

    class Kind(models.TextChoices):
        EXPORT = "export", "Access / portability export"
        ERASURE = "erasure", "Erasure"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    steps_total = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    file = models.FileField(upload_to="privacy/exports/", blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("download_requestrun", "Can download a data-subject export")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def progress_percent(self) -> int:
        if not self.steps_total:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return min(100, round(100 * self.steps_done / self.steps_total))


class SuppressionQuerySet(models.QuerySet):
    def aggregate_hits(self) -> int:
        return self.aggregate(total=models.Sum("hits"))["total"] or 0


class Suppression(models.Model):
    """An identifier of an erased person, as a salted hash: input carrying it is dropped."""

    id_type = models.CharField(max_length=20)
    key_hash = models.CharField(max_length=64)
    request = models.ForeignKey(
        DataSubjectRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    hits = models.PositiveIntegerField(default=0, help_text="Inputs dropped because of it.")
    last_hit_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = SuppressionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key_hash", "id_type"], name="uniq_suppression_hash")
        ]

    def __str__(self) -> str:
        return f"{self.id_type}:{self.key_hash[:12]}…"


class Restriction(models.Model):
    """Processing of a profile is restricted: it leaves every segment and activation."""

    profile = models.OneToOneField(
        "profiles.Profile", on_delete=models.CASCADE, related_name="restriction"
    )
    request = models.ForeignKey(
        DataSubjectRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Restriction of profile {self.profile_id}"
