"""Activation's part in data-subject requests (registered with consent.registry in apps.py).

Activation keeps ``profile_id`` as a plain id (ActivationMember, RunItem), so the generic sweep
of foreign keys to a person's tables does not reach it; this handler does:

- access: the activations (and destinations) that sent the person, with the run that last sent
  them and the pseudonymous id the destination knows them by; pending work-list items too;
- erasure: the snapshot rows (ActivationMember) are *kept*: they hold only the pseudonymous id
  and a hash of what was sent, and the next run needs them to send the destination a removal
  notice carrying only that pseudonymous id. Work-list items not yet sent are deleted (a retried
  run would not send the person); items already delivered and removals are kept, so the
  snapshot still learns what the destination holds. Export files of the activations that sent
  the person are deleted whole (the runs keep their counts).
- after an erasure, one audit row per activation that holds the person records the deletion
  notice it owes (sent by its next run; a full file export simply leaves the person out).
"""

from __future__ import annotations

from django.db.models import Exists, F, OuterRef, Q, Subquery

from activation.models import (
    Action,
    Activation,
    ActivationMember,
    ActivationRun,
    DeliveryBatch,
    Destination,
    RunItem,
)
from activation.services.files import resolve_export
from cdp.audit import audit_record_many


def _members(subject):
    return ActivationMember.objects.filter(profile_id__in=subject.all_profile_ids)


def activation_subject_collect(subject) -> dict[str, list[dict]]:
    last_run = ActivationRun.objects.filter(pk=OuterRef("run_id"))
    sent = (
        _members(subject)
        .annotate(
            activation_name=F("activation__name"),
            destination_name=F("activation__destination__name"),
            destination_kind=F("activation__destination__kind"),
            last_run_at=Subquery(last_run.values("finished_at")[:1]),
        )
        .order_by("activation_name", "profile_id")
        .values(
            "profile_id",
            "activation_id",
            "activation_name",
            "destination_name",
            "destination_kind",
            "run_id",
            "last_run_at",
            "pseudo_id",
        )
    )
    pending = (
        RunItem.objects.filter(profile_id__in=subject.all_profile_ids)
        .order_by("run_id", "id")
        .values("profile_id", "run_id", "run__activation__name", "action", "pseudo_id")
    )
    return {"activations_sent": list(sent), "activation_pending_items": list(pending)}


def _delivered(items):
    """Items a destination already received: in a sent webhook batch or a written file."""
    in_sent_batch = DeliveryBatch.objects.filter(
        run_id=OuterRef("run_id"),
        status=DeliveryBatch.Status.SENT,
        first_item_id__lte=OuterRef("id"),
        last_item_id__gte=OuterRef("id"),
    )
    return items.filter(Q(Exists(in_sent_batch)) | ~Q(run__file=""))


def activation_subject_erase(subject) -> dict[str, int]:
    items = RunItem.objects.filter(profile_id__in=subject.all_profile_ids).exclude(
        action=Action.REMOVE
    )
    deleted, _ = items.exclude(pk__in=_delivered(items).values("pk")).delete()
    return {"activation_pending_items": deleted, "activation_export_files": _files_erase(subject)}


def _files_erase(subject) -> int:
    """Delete the export files of every activation that sent the person, whole.

    A file is a copy its destination has had the chance to pick up; editing one in place is
    not safe, and keeping it would leave the person downloadable from the admin. The runs keep
    their counts and history; their download link says the file is gone.
    """
    holding = _members(subject).values("activation_id")
    runs = ActivationRun.objects.filter(activation_id__in=holding).exclude(file="")
    files = list(runs.values_list("pk", "file"))
    for _pk, relative in files:
        path = resolve_export(relative)
        if path is not None:
            path.unlink(missing_ok=True)
    ActivationRun.objects.filter(pk__in=[pk for pk, _ in files]).update(file="")
    return len(files)


def activation_erasure_notices(*, subject, request) -> int:
    """One audit row per activation holding the person: the deletion notice it owes."""
    owed = (
        _members(subject)
        .values("activation_id", "activation__mode", "activation__destination__kind")
        .order_by("activation_id")
        .distinct()
    )
    entries = []
    for row in owed:
        full_file = (
            row["activation__destination__kind"] == Destination.Kind.FILE
            and row["activation__mode"] == Activation.Mode.FULL
        )
        entries.append(
            (
                f"activation.activation:{row['activation_id']}",
                {
                    "request": request.pk,
                    "notice": "left out of the next full export"
                    if full_file
                    else "removal (pseudonymous id only) in the next run",
                },
            )
        )
    if not entries:
        return 0
    return audit_record_many(actor=None, action="activation.erasure_notice", entries=entries)
