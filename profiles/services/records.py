"""Writing source records and their identities in bulk (no query per row)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import models
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from cdp.bulk import (
    bulk_update_rows,
    column_by_pairs,
    rows_append,
    rows_insert_returning_ids,
)
from profiles.models import DataSource, Event, Identity, SourceRecord
from profiles.services.mapping import MappedRecord


@dataclass
class UpsertResult:
    """Which keys were created, updated or unchanged, and the ids whose identities changed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    record_ids: dict[str, int] = field(default_factory=dict)  # external key -> id
    changed_ids: list[int] = field(default_factory=list)


def source_records_upsert(*, source: DataSource, records: list[MappedRecord]) -> UpsertResult:
    """Create or replace source records by (source, external key), in a few queries.

    A record whose mapped content is identical to what is stored counts as unchanged and is not
    written. Within one batch a later record with the same key wins; an earlier one counts as
    unchanged when it says the same as the winner (a row repeated in a file), as updated when
    it says something else (the file holds two versions of the record).
    """
    result = UpsertResult()
    latest: dict[str, MappedRecord] = {}
    repeats: list[MappedRecord] = []
    for record in records:
        if record.external_key in latest:
            repeats.append(latest[record.external_key])
        latest[record.external_key] = record
    existing = {
        sr.external_key: sr
        for sr in SourceRecord.objects.filter(source=source, external_key__among=list(latest)).only(
            "id", "external_key", "content_hash", "profile_id"
        )
    }
    now = timezone.now()
    to_create: list[tuple] = []
    to_update: list[SourceRecord] = []
    for key, record in latest.items():
        content_hash = record.content_hash()
        current = existing.get(key)
        if current is None:
            to_create.append(
                (source.pk, key, record.attributes, record.traits, content_hash, {}, now, now)
            )
        elif current.content_hash == content_hash:
            result.unchanged += 1
            result.record_ids[key] = current.pk
        else:
            current.attributes = record.attributes
            current.traits = record.traits
            current.content_hash = content_hash
            current.updated_at = now
            to_update.append(current)
    for repeat in repeats:
        if repeat.content_hash() == latest[repeat.external_key].content_hash():
            result.unchanged += 1
        else:
            result.updated += 1
    created = rows_insert_returning_ids(
        SourceRecord,
        [
            "source",
            "external_key",
            "attributes",
            "traits",
            "content_hash",
            "observed_at",
            "created_at",
            "updated_at",
        ],
        to_create,
    )
    created = [(pk, row[1]) for pk, row in zip(created, to_create, strict=True)]
    bulk_update_rows(
        SourceRecord, to_update, ["attributes", "traits", "content_hash", "updated_at"]
    )
    result.created += len(created)
    result.updated += len(to_update)
    written = [(key, pk, None) for pk, key in created]
    written += [(sr.external_key, sr.pk, sr.profile_id) for sr in to_update]
    for key, pk, _profile_id in written:
        result.record_ids[key] = pk
        result.changed_ids.append(pk)

    Identity.objects.filter(source_record_id__in=[sr.pk for sr in to_update]).delete()
    identities = []
    for key, pk, profile_id in written:
        seen = set()
        for ident in latest[key].identities:
            if (ident.type, ident.raw_value) in seen:
                continue
            seen.add((ident.type, ident.raw_value))
            identities.append(
                (
                    ident.type,
                    ident.raw_value[:500],
                    ident.key,
                    ident.flag[:200],
                    pk,
                    profile_id,
                    now,
                )
            )
    rows_append(
        Identity,
        ["type", "raw_value", "key", "flag", "source_record", "profile", "created_at"],
        identities,
    )
    return result


def profile_links_sync(*, source_record_ids: list[int]) -> None:
    """Copy each source record's profile onto its identities and events (set-based)."""
    profile_of_record = Subquery(
        SourceRecord.objects.filter(pk=OuterRef("source_record_id")).values("profile_id")[:1]
    )
    for start in range(0, len(source_record_ids), 5000):
        chunk = source_record_ids[start : start + 5000]
        Identity.objects.filter(source_record_id__in=chunk).update(profile_id=profile_of_record)
        Event.objects.filter(source_record_id__in=chunk).update(profile_id=profile_of_record)


def profile_ids_set(model: type[models.Model], pairs: list[tuple[int, int]]) -> None:
    """Set ``profile_id`` of rows by primary key from (id, profile id) pairs.

    One ``UPDATE ... FROM`` a list of pairs (unnest of two arrays on PostgreSQL, a VALUES list
    per chunk on SQLite): no model instances, no query per row.
    """
    column_by_pairs(model, "profile_id", "id", pairs)


def profile_links_set(*, profile_of_record: dict[int, int | None]) -> None:
    """Set the profile of these source records' identities and events (record id -> profile).

    The same as ``profile_links_sync`` when the records' profiles are already written, without
    a subquery per row: one ``UPDATE ... FROM`` a list of pairs per table.
    """
    pairs = list(profile_of_record.items())
    for model in (Identity, Event):
        column_by_pairs(model, "profile_id", "source_record_id", pairs)
