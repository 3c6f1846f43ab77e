"""Recording actions in the audit log, inside the caller's transaction."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from cdp.bulk import bulk_copy_rows
from cdp.models import AuditEvent


def audit_record(
    *, actor, action: str, target: models.Model | str = "", details: dict | None = None
) -> AuditEvent:
    """Write one audit row. ``target`` is a model instance or a '<kind>:<id>' string."""
    if isinstance(target, models.Model):
        target = f"{target._meta.label_lower}:{target.pk}"
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        target=target,
        details=details or {},
    )


def audit_record_many(*, actor, action: str, entries: list[tuple[str, dict]]) -> int:
    """Write one audit row per (target, details) in one bulk write (bulk services)."""
    actor_id = actor.pk if getattr(actor, "pk", None) else None
    now = timezone.now()
    return bulk_copy_rows(
        AuditEvent,
        ("actor", "action", "target", "details", "created_at"),
        [(actor_id, action, target, details, now) for target, details in entries],
    )
