"""Segments: a rule tree over profiles, its materialised membership and the history of both.

The rule JSON is described in docs/segments.md and validated by ``segments.compiler``.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from profiles.models import Profile


def empty_rules() -> dict:
    return {
        "include": {"type": "group", "op": "and", "negate": False, "children": []},
        "exclude": {"type": "group", "op": "or", "negate": False, "children": []},
    }


class Segment(models.Model):
    """An audience: profiles matching ``rules`` (include minus exclude).

    ``size`` and ``refreshed_at`` describe the last materialised membership (``members``).
    """

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    rules = models.JSONField(default=empty_rules)
    scheduled = models.BooleanField(
        default=False,
        help_text="Refresh membership on the schedule set up by `manage.py segments_schedule`.",
    )
    size = models.PositiveIntegerField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    """A profile that was in the segment at its last refresh, and since when."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    entered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "profile"], name="uniq_segment_member")
        ]
        indexes = [models.Index(fields=["profile"])]

    def __str__(self) -> str:
        return f"{self.segment_id}: {self.profile_id}"


class SegmentRefresh(models.Model):
    """One materialisation of a segment: the job's run row and a point of its size history."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="refreshes")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    size = models.PositiveIntegerField(null=True, blank=True)
    entered_count = models.PositiveIntegerField(default=0)
    left_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "segment refreshes"
        indexes = [models.Index(fields=["segment", "status", "finished_at"])]

    def __str__(self) -> str:
        return f"Refresh #{self.pk} of {self.segment_id} ({self.status})"


class SegmentMembershipChange(models.Model):
    """A profile entering or leaving a segment at a refresh."""

    class Kind(models.TextChoices):
        ENTERED = "entered", "Entered"
        LEFT = "left", "Left"

    refresh = models.ForeignKey(SegmentRefresh, on_delete=models.CASCADE, related_name="changes")
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="changes")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["segment", "at"]),
            models.Index(fields=["profile", "at"]),
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} {self.kind} {self.segment_id}"
