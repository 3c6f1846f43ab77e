"""Finding everything about a person through the identity graph, exporting it and erasing it.

The subject of a request is found by its identifiers (any of them: the requester's e-mail,
secondary e-mails, phone, user or customer id), each normalised like at ingestion. The
profiles holding one of those identities are the person; with them come every profile merged
into them (redirects, merge logs), their source records, identities, raw rows, events, consent
and whatever other apps registered (consent.registry). Other profiles that merely share a value
of the person are not followed transitively, so nothing of anyone else is included.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from cdp.models import AuditEvent
from cdp.spreadsheet import spreadsheet_safe
from consent.hashing import identifier_hash
from consent.models import ConsentRecord, DataSubjectRequest, RequestRun, Restriction
from consent.registry import (
    PERSON_MODELS,
    SubjectDataHandler,
    covered_models,
    register,
)
from consent.services.suppression import identity_keys
from profiles.models import (
    Event,
    Identity,
    MergeLog,
    Profile,
    ProfileRedirect,
    RawRecord,
    SourceRecord,
)


@dataclass
class Subject:
    """The person a request is about, as row ids (and identifier keys for suppression)."""

    profile_ids: list[int] = field(default_factory=list)
    old_profile_ids: list[int] = field(default_factory=list)
    source_record_ids: list[int] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)
    raw_values: set[str] = field(default_factory=set)
    request_ids: list[int] = field(default_factory=list)

    @property
    def all_profile_ids(self) -> list[int]:
        return sorted({*self.profile_ids, *self.old_profile_ids})

    @property
    def hashes(self) -> set[str]:
        return {identifier_hash(t, k) for t, k in self.keys}


def request_identifiers(request: DataSubjectRequest) -> list[tuple[str, str]]:
    """(type, raw value) pairs the request names: the requester's e-mail and any others."""
    pairs = [("email", request.requester_email)] if "@" in request.requester_email else []
    for item in request.identifiers or []:
        if isinstance(item, dict) and item.get("type") and item.get("value"):
            pairs.append((str(item["type"]), str(item["value"])))
    return pairs


def subject_find(
    *, identifiers: Iterable[tuple[str, str]], profile_ids: Iterable[int] = ()
) -> Subject:
    """The profiles holding any of these identifiers, plus what was merged into them."""
    keys = set(identity_keys(identifiers))
    condition = Q()
    for id_type, key in keys:
        condition |= Q(type=id_type, key=key)
    direct_records: set[int] = set()
    live: set[int] = set()
    if keys:
        for sr_id, pid in Identity.objects.filter(condition).values_list(
            "source_record_id", "profile_id"
        ):
            direct_records.add(sr_id)
            if pid:
                live.add(pid)
    for pid in profile_ids:
        redirect = ProfileRedirect.objects.filter(old_id=pid).values_list("profile_id", flat=True)
        live.update(redirect)
        if Profile.objects.filter(pk=pid).exists():
            live.add(pid)
    subject = Subject(profile_ids=sorted(live))
    subject.old_profile_ids = sorted(
        ProfileRedirect.objects.filter(profile_id__in=subject.profile_ids).values_list(
            "old_id", flat=True
        )
    )
    subject.source_record_ids = sorted(
        set(
            SourceRecord.objects.filter(
                Q(profile_id__in=subject.profile_ids) | Q(pk__in=direct_records)
            ).values_list("id", flat=True)
        )
    )
    for id_type, key, raw in Identity.objects.filter(
        source_record_id__in=subject.source_record_ids
    ).values_list("type", "key", "raw_value"):
        if key:
            subject.keys.add((id_type, key))
        subject.raw_values.add(raw)
    subject.keys |= keys
    subject.raw_values |= {raw for _, raw in identifiers if raw}
    subject.raw_values |= {key for _, key in subject.keys}
    subject.request_ids = list(
        DataSubjectRequest.objects.filter(
            requester_hash__in=[identifier_hash(t, k) for t, k in subject.keys if t == "email"]
        ).values_list("id", flat=True)
    )
    return subject


def _rows(queryset) -> list[dict]:
    return list(queryset.values())


# --- built-in handlers ------------------------------------------------------------------------


def _unlinked_raw_ids(subject: Subject) -> set[int]:
    """Raw rows never linked to a source record (rejected rows) that mention the person."""
    needles = {v for v in subject.raw_values if v and len(v) >= 4}
    if not needles:
        return set()
    condition = Q()
    for value in needles:
        condition |= Q(_text__icontains=value)
        escaped = json.dumps(value)[1:-1]
        if escaped != value:
            condition |= Q(_text__icontains=escaped)
    return set(
        RawRecord.objects.filter(source_record__isnull=True)
        .annotate(_text=Cast("payload", TextField()))
        .filter(condition)
        .values_list("id", flat=True)
    )


def _event_q(subject: Subject) -> Q:
    return Q(profile_id__in=subject.profile_ids) | Q(source_record_id__in=subject.source_record_ids)


def _raw_ids(subject: Subject) -> set[int]:
    ids = set(
        RawRecord.objects.filter(source_record_id__in=subject.source_record_ids).values_list(
            "id", flat=True
        )
    )
    ids |= set(
        Event.objects.filter(_event_q(subject), raw_record__isnull=False).values_list(
            "raw_record_id", flat=True
        )
    )
    return ids | _unlinked_raw_ids(subject)


def _profiles_collect(subject: Subject) -> dict[str, list[dict]]:
    return {
        "profiles": _rows(Profile.objects.filter(pk__in=subject.profile_ids)),
        "profile_redirects": _rows(
            ProfileRedirect.objects.filter(profile_id__in=subject.profile_ids)
        ),
        # Also merges into a profile that a later merge absorbed (its id is now a redirect).
        "merge_history": _rows(MergeLog.objects.filter(pk__in=_merge_log_ids(subject))),
        "source_records": _rows(SourceRecord.objects.filter(pk__in=subject.source_record_ids)),
        "identities": _rows(
            Identity.objects.filter(source_record_id__in=subject.source_record_ids)
        ),
        "raw_records": _rows(RawRecord.objects.filter(pk__in=_raw_ids(subject))),
        "events": _rows(Event.objects.filter(_event_q(subject))),
    }


def _merge_log_ids(subject: Subject) -> list[int]:
    """Merge logs holding the person: merges into their profiles (also into a profile a later
    merge absorbed), and undone merges that absorbed one of their profiles, whose snapshot
    keeps that profile's fields though its survivor is someone else (undone merges are a
    steward's rare manual step, so they are read in Python: merged_ids is a JSON list)."""
    ids = set(subject.all_profile_ids)
    found = set(MergeLog.objects.filter(survivor_id__in=ids).values_list("pk", flat=True))
    for pk, merged_ids in MergeLog.objects.filter(unmerged_at__isnull=False).values_list(
        "pk", "merged_ids"
    ):
        if ids.intersection(merged_ids or []):
            found.add(pk)
    return sorted(found)


def _profiles_erase(subject: Subject) -> dict[str, int]:
    raw_ids = _raw_ids(subject)
    counts = {}
    counts["events"], _ = Event.objects.filter(_event_q(subject)).delete()
    counts["raw_records"], _ = RawRecord.objects.filter(pk__in=raw_ids).delete()
    counts["identities"], _ = Identity.objects.filter(
        source_record_id__in=subject.source_record_ids
    ).delete()
    counts["merge_history"], _ = MergeLog.objects.filter(pk__in=_merge_log_ids(subject)).delete()
    counts["profile_redirects"], _ = ProfileRedirect.objects.filter(
        profile_id__in=subject.profile_ids
    ).delete()
    counts["source_records"], _ = SourceRecord.objects.filter(
        pk__in=subject.source_record_ids
    ).delete()
    counts["profiles"], _ = Profile.objects.filter(pk__in=subject.profile_ids).delete()
    return counts


def _consent_collect(subject: Subject) -> dict[str, list[dict]]:
    history = ConsentRecord.objects.filter(profile_id__in=subject.profile_ids).values(
        "id",
        "profile_id",
        "purpose__key",
        "channel__key",
        "status",
        "lawful_basis",
        "source",
        "captured_at",
        "evidence",
        "conflict",
        "origin_profile_id",
        "created_at",
    )
    return {
        "consent_history": list(history.order_by("captured_at", "id")),
        "restrictions": _rows(Restriction.objects.filter(profile_id__in=subject.profile_ids)),
        "privacy_requests": list(
            DataSubjectRequest.objects.filter(pk__in=subject.request_ids).values(
                "id",
                "public_id",
                "type",
                "regime",
                "status",
                "received_at",
                "due_date",
                "completed_at",
                "requester_email",
                "requester_name",
                "details",
            )
        ),
    }


def _consent_erase(subject: Subject) -> dict[str, int]:
    consent, _ = ConsentRecord.objects.filter(profile_id__in=subject.profile_ids).delete()
    restrictions, _ = Restriction.objects.filter(profile_id__in=subject.profile_ids).delete()
    # Archives of earlier access requests hold everything about the person: delete the files.
    archives = 0
    for run in RequestRun.objects.filter(request_id__in=subject.request_ids).exclude(file=""):
        run.file.delete(save=False)
        RequestRun.objects.filter(pk=run.pk).update(file="")
        archives += 1
    return {"consent_history": consent, "restrictions": restrictions, "export_archives": archives}


def _audit_targets(subject: Subject) -> list[str]:
    return [f"profile:{pid}" for pid in subject.all_profile_ids] + [
        f"profiles.sourcerecord:{sid}" for sid in subject.source_record_ids
    ]


def _audit_collect(subject: Subject) -> dict[str, list[dict]]:
    return {
        "audit_log": list(
            AuditEvent.objects.filter(target__in=_audit_targets(subject)).values(
                "id", "action", "target", "details", "created_at"
            )
        )
    }


def _audit_erase(subject: Subject) -> dict[str, int]:
    scrubbed = AuditEvent.objects.filter(target__in=_audit_targets(subject)).update(
        details={"erased": True}
    )
    person_types = [
        ContentType.objects.get_for_model(model).pk for model in (Profile, SourceRecord)
    ]
    object_ids = [str(p) for p in subject.all_profile_ids] + [
        str(s) for s in subject.source_record_ids
    ]
    admin_log, _ = LogEntry.objects.filter(
        content_type_id__in=person_types, object_id__in=object_ids
    ).delete()
    return {"audit_log_scrubbed": scrubbed, "admin_log": admin_log}


def register_builtin_handlers() -> None:
    register(
        SubjectDataHandler(
            name="audit",
            models=("cdp.AuditEvent", "admin.LogEntry"),
            collect=_audit_collect,
            erase=_audit_erase,
            order=10,
        )
    )
    register(
        SubjectDataHandler(
            name="consent",
            models=("consent.ConsentRecord", "consent.Restriction", "consent.RequestRun"),
            collect=_consent_collect,
            erase=_consent_erase,
            order=20,
        )
    )
    register(
        SubjectDataHandler(
            name="profiles",
            models=(
                "profiles.Profile",
                "profiles.ProfileRedirect",
                "profiles.MergeLog",
                "profiles.SourceRecord",
                "profiles.Identity",
                "profiles.RawRecord",
                "profiles.Event",
            ),
            collect=_profiles_collect,
            erase=_profiles_erase,
            order=90,
        )
    )


# --- the generic sweep for unregistered tables -------------------------------------------------


def uncovered_person_references() -> list[tuple[type[models.Model], models.ForeignKey]]:
    """Foreign keys to a person's table from models no handler covers."""
    targets = {apps.get_model(label) for label in PERSON_MODELS}
    covered = covered_models()
    found = []
    for model in apps.get_models():
        if model._meta.label_lower in covered:
            continue
        for fk in model._meta.get_fields():
            if isinstance(fk, models.ForeignKey) and fk.related_model in targets:
                found.append((model, fk))
    return found


def _sweep_ids(subject: Subject, model: type[models.Model]) -> list[int]:
    if model is Profile:
        # Merged-away ids too: rows made before a merge still name the absorbed profile.
        return subject.all_profile_ids
    if model is SourceRecord:
        return subject.source_record_ids
    if model is Identity:
        return list(
            Identity.objects.filter(source_record_id__in=subject.source_record_ids).values_list(
                "id", flat=True
            )
        )
    if model is Event:
        return list(Event.objects.filter(_event_q(subject)).values_list("id", flat=True))
    return sorted(_raw_ids(subject))


def _swept_models(subject: Subject) -> dict[type[models.Model], Q]:
    """Per uncovered model, one condition over all of its foreign keys to the person's tables
    (a model may point at a person twice, e.g. both sides of a merge suggestion)."""
    conditions: dict[type[models.Model], Q] = {}
    ids_by_target: dict[type[models.Model], list[int]] = {}
    for model, fk in uncovered_person_references():
        target = fk.related_model
        if target not in ids_by_target:
            ids_by_target[target] = _sweep_ids(subject, target)
        condition = Q(**{f"{fk.name}_id__in": ids_by_target[target]})
        conditions[model] = conditions[model] | condition if model in conditions else condition
    return conditions


def sweep_collect(subject: Subject) -> dict[str, list[dict]]:
    return {
        model._meta.label_lower: _rows(model._default_manager.filter(condition).order_by("pk"))
        for model, condition in _swept_models(subject).items()
    }


def sweep_erase(subject: Subject) -> dict[str, int]:
    counts = {}
    for model, condition in _swept_models(subject).items():
        deleted, _ = model._default_manager.filter(condition).delete()
        counts[model._meta.label_lower] = deleted
    return counts


# --- the archive ------------------------------------------------------------------------------


def _csv_bytes(rows: list[dict]) -> bytes:
    columns: list[str] = []
    for row in rows:
        for name in row:
            if name not in columns:
                columns.append(name)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: spreadsheet_safe(
                    json.dumps(v, cls=DjangoJSONEncoder, ensure_ascii=False)
                    if isinstance(v, (dict, list))
                    else ("" if v is None else v)
                )
                for k, v in row.items()
            }
        )
    return out.getvalue().encode("utf-8")


def archive_build(
    *, request: DataSubjectRequest, tables: dict[str, list[dict]], generated_at
) -> ContentFile:
    """A zip: subject.json (every table) and tables/<name>.csv, named unguessably."""
    document = {
        "request": {
            "id": request.pk,
            "reference": str(request.public_id),
            "type": request.type,
            "regime": request.regime,
            "received_at": request.received_at,
        },
        "generated_at": generated_at,
        "tables": tables,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "subject.json",
            json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2),
        )
        for name, rows in tables.items():
            archive.writestr(f"tables/{name}.csv", _csv_bytes(rows))
    name = f"dsr-{request.pk}-{secrets.token_hex(12)}.zip"
    return ContentFile(buffer.getvalue(), name=name)
