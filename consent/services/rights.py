"""Carrying out each right: export (access, portability), erasure, rectification, restriction,
objection. Export and erasure run as django-q2 jobs on a RequestRun row with progress.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from cdp.audit import audit_record
from cdp.normalize import IdentifierTypes
from consent.models import (
    Channel,
    ConsentRecord,
    ConsentSource,
    ConsentStatus,
    DataSubjectRequest,
    LawfulBasis,
    Purpose,
    RequestEvent,
    RequestRun,
    RequestType,
    Restriction,
)
from consent.registry import handlers_in_order, registry
from consent.services.consent import SALE_SHARING
from consent.services.subject_data import (
    Subject,
    archive_build,
    request_identifiers,
    subject_find,
    sweep_collect,
    sweep_erase,
)
from consent.services.suppression import suppression_add

logger = logging.getLogger(__name__)

RECTIFICATION_SOURCE = "Privacy rectifications"


class RightError(ValueError):
    """A right that cannot be applied as asked (nothing found, bad correction)."""


def request_subject(request: DataSubjectRequest) -> Subject:
    return subject_find(identifiers=request_identifiers(request), profile_ids=request.profile_ids)


def _progress(run: RequestRun, done: int) -> None:
    RequestRun.objects.filter(pk=run.pk).update(steps_done=done)


def request_run_execute(*, run: RequestRun) -> RequestRun:
    """Run an export or erasure to the end, recording progress and counts on the run row."""
    claimed = RequestRun.objects.filter(pk=run.pk, status=RequestRun.Status.QUEUED).update(
        status=RequestRun.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    try:
        counts = _export(run) if run.kind == RequestRun.Kind.EXPORT else _erase(run)
    except Exception as exc:
        logger.exception("Privacy run %s failed", run.pk)
        RequestRun.objects.filter(pk=run.pk).update(
            status=RequestRun.Status.FAILED,
            error=f"Unexpected error: {exc.__class__.__name__}",
            finished_at=timezone.now(),
        )
        raise
    RequestRun.objects.filter(pk=run.pk).update(
        status=RequestRun.Status.SUCCEEDED, counts=counts, finished_at=timezone.now()
    )
    RequestEvent.objects.create(
        request_id=run.request_id, action=f"{run.kind}_succeeded", note=f"run {run.pk}"
    )
    run.refresh_from_db()
    return run


def _export(run: RequestRun) -> dict:
    request = run.request
    subject = request_subject(request)
    DataSubjectRequest.objects.filter(pk=request.pk).update(profile_ids=subject.profile_ids)
    handlers = handlers_in_order()
    RequestRun.objects.filter(pk=run.pk).update(steps_total=len(handlers) + 2, steps_done=0)
    tables: dict[str, list[dict]] = {}
    done = 0
    for handler in handlers:
        tables.update(handler.collect(subject))
        done += 1
        _progress(run, done)
    tables.update(sweep_collect(subject))
    done += 1
    _progress(run, done)
    now = timezone.now()
    archive = archive_build(request=request, tables=tables, generated_at=now)
    run.file.save(archive.name, archive, save=False)
    RequestRun.objects.filter(pk=run.pk).update(file=run.file.name, steps_done=done + 1)
    audit_record(
        actor=run.created_by,
        action="dsr.export",
        target=request,
        details={"run": run.pk, "profiles": len(subject.profile_ids)},
    )
    return {name: len(rows) for name, rows in tables.items()}


def _erase(run: RequestRun) -> dict:
    request = run.request
    subject = request_subject(request)
    handlers = handlers_in_order()
    RequestRun.objects.filter(pk=run.pk).update(steps_total=len(handlers) + 3, steps_done=0)
    with transaction.atomic():
        DataSubjectRequest.objects.filter(pk=request.pk).update(profile_ids=subject.profile_ids)
        added = suppression_add(keys=subject.keys, request=request)
    done = 1
    _progress(run, done)
    counts: dict[str, int] = {"suppressed_identifiers": added}
    with transaction.atomic():
        counts.update(sweep_erase(subject))
    done += 1
    _progress(run, done)
    for handler in handlers:
        with transaction.atomic():
            counts.update(handler.erase(subject))
        done += 1
        _progress(run, done)
    with transaction.atomic():
        # The person's requests keep only the salted hash of their contact as proof.
        DataSubjectRequest.objects.filter(pk__in={*subject.request_ids, request.pk}).update(
            requester_email=Concat(Value("erased:"), F("requester_hash")),
            requester_name="",
            identifiers=[],
            details="",
            corrections={},
        )
        audit_record(
            actor=run.created_by,
            action="dsr.erasure",
            target=request,
            details={"run": run.pk, **counts},
        )
    for hook in registry.erasure_notice_hooks:
        hook(subject=subject, request=request)
    _progress(run, done + 1)
    return counts


# --- rights applied at once -------------------------------------------------------------------


def right_apply(*, request: DataSubjectRequest, actor) -> dict:
    if request.type == RequestType.RECTIFICATION:
        return rectification_apply(request=request, actor=actor)
    if request.type == RequestType.RESTRICTION:
        return restriction_apply(request=request, actor=actor)
    if request.type == RequestType.OBJECTION:
        return objection_apply(request=request, actor=actor)
    raise RightError(f"{request.type} runs as a job")


def rectification_apply(*, request: DataSubjectRequest, actor) -> dict:
    """Corrected values become a source record of a top-priority source on each profile."""
    from profiles.constants import CANONICAL_ATTRIBUTES
    from profiles.models import DataSource, SourceRecord
    from profiles.services.mapping import FieldSpec, RowError, map_row
    from profiles.services.records import profile_links_sync, source_records_upsert
    from profiles.services.survivorship import profile_attributes_refresh

    corrections = {k: v for k, v in (request.corrections or {}).items() if str(v).strip()}
    unknown = sorted(set(corrections) - set(CANONICAL_ATTRIBUTES))
    if not corrections or unknown:
        raise RightError(
            f"Unknown attributes to correct: {', '.join(unknown)}."
            if unknown
            else "The request names no corrected values."
        )
    subject = request_subject(request)
    if not subject.profile_ids:
        raise RightError("No profile holds the person's identifiers.")
    source, _ = DataSource.objects.get_or_create(
        name=RECTIFICATION_SOURCE, defaults={"kind": DataSource.Kind.FILE, "priority": 0}
    )
    specs = [FieldSpec(name, name) for name in corrections]
    records = []
    for pid in subject.profile_ids:
        try:
            mapped = map_row({k: str(v) for k, v in corrections.items()}, specs)
        except RowError as exc:
            raise RightError(str(exc)) from None
        mapped.external_key = f"profile:{pid}"
        records.append(mapped)
    result = source_records_upsert(source=source, records=records)
    now = timezone.now().isoformat()
    updates = []
    for pid in subject.profile_ids:
        record = SourceRecord.objects.get(pk=result.record_ids[f"profile:{pid}"])
        record.profile_id = pid
        record.observed_at = dict.fromkeys(corrections, now)
        updates.append(record)
    SourceRecord.objects.bulk_update(updates, ["profile", "observed_at"])
    profile_links_sync(source_record_ids=[r.pk for r in updates])
    profile_attributes_refresh(profile_ids=subject.profile_ids)
    audit_record(
        actor=actor,
        action="dsr.rectification",
        target=request,
        details={"profiles": subject.profile_ids, "attributes": sorted(corrections)},
    )
    identifiers = [
        a for a in corrections if CANONICAL_ATTRIBUTES[a].identifier in IdentifierTypes.ALL
    ]
    return {
        "profiles": len(subject.profile_ids),
        "attributes": len(corrections),
        "identifiers": len(identifiers),
    }


def restriction_apply(*, request: DataSubjectRequest, actor) -> dict:
    """Restrict processing: every profile of the person leaves all segments and activations."""
    subject = request_subject(request)
    if not subject.profile_ids:
        raise RightError("No profile holds the person's identifiers.")
    Restriction.objects.bulk_create(
        [Restriction(profile_id=pid, request=request) for pid in subject.profile_ids],
        ignore_conflicts=True,
    )
    for hook in registry.restriction_hooks:
        hook(subject.profile_ids)
    audit_record(
        actor=actor,
        action="dsr.restriction",
        target=request,
        details={"profiles": subject.profile_ids},
    )
    return {"profiles_restricted": len(subject.profile_ids)}


def objection_apply(*, request: DataSubjectRequest, actor) -> dict:
    """Record an opt-out (denied, all channels) of the purposes objected to (default: sale)."""
    subject = request_subject(request)
    if not subject.profile_ids:
        raise RightError("No profile holds the person's identifiers.")
    keys = request.purpose_keys or [SALE_SHARING]
    purposes = list(Purpose.objects.filter(key__in=keys))
    if len(purposes) != len(set(keys)):
        raise RightError("The request names an unknown purpose.")
    channel = Channel.objects.get(key=Channel.ALL)
    now = timezone.now()
    records = [
        ConsentRecord(
            profile_id=pid,
            purpose=purpose,
            channel=channel,
            status=ConsentStatus.DENIED,
            lawful_basis=LawfulBasis.CONSENT,
            source=ConsentSource.REQUEST,
            captured_at=now,
            evidence={"request": request.pk},
            origin_profile_id=pid,
            recorded_by=actor if getattr(actor, "pk", None) else None,
        )
        for pid in subject.profile_ids
        for purpose in purposes
    ]
    ConsentRecord.objects.bulk_create(records)
    audit_record(
        actor=actor,
        action="dsr.objection",
        target=request,
        details={"profiles": subject.profile_ids, "purposes": sorted(keys)},
    )
    return {"consent_records": len(records)}
