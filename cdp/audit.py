"""Recording actions in the audit log, inside the caller's transaction."""

from __future__ import annotations

from django.db import models

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
    """Write one audit row per (target, details), in one bulk insert (bulk services)."""
    actor = actor if getattr(actor, "pk", None) else None
    rows = [
        AuditEvent(actor=actor, action=action, target=target, details=details)
        for target, details in entries
    ]
    AuditEvent.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
