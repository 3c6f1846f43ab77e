"""Writing source records and their identities in bulk (no query per row)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db import connection, models
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from cdp.bulk import bulk_copy_rows, bulk_insert_rows, bulk_update_rows, field_preparer
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
    written. Within one batch a later record with the same key wins.
    """
    result = UpsertResult()
    latest: dict[str, MappedRecord] = {}
    for record in records:
        latest[record.external_key] = record
    existing = {
        sr.external_key: sr
        for sr in SourceRecord.objects.filter(source=source, external_key__in=list(latest)).only(
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
    # Rows repeated inside one batch count once per row: the repeats are updates of the first.
    result.updated += len(records) - len(latest)
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


SQLITE_PAIRS_PER_UPDATE = 10_000  # 2 parameters each, under SQLite's variable limit


def profile_ids_set(model: type[models.Model], pairs: list[tuple[int, int]]) -> None:
    """Set ``profile_id`` of rows by primary key from (id, profile id) pairs.

    One ``UPDATE ... FROM`` a list of pairs (unnest of two arrays on PostgreSQL, a VALUES list
    per chunk on SQLite): no model instances, no query per row.
    """
    _column_by_pairs(model, "profile_id", "id", pairs)


def _column_by_pairs(
    model: type[models.Model], column: str, by: str, pairs: list[tuple[int, int | None]]
) -> None:
    """UPDATE model SET column = second WHERE by = first, for (first, second) integer pairs."""
    if not pairs:
        return
    quote = connection.ops.quote_name
    table, column, by = quote(model._meta.db_table), quote(column), quote(by)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET {column} = v.b "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(a, b) "
                f"WHERE {table}.{by} = v.a",
                [[a for a, _ in pairs], [b for _, b in pairs]],
            )
            return
        for start in range(0, len(pairs), SQLITE_PAIRS_PER_UPDATE):
            part = pairs[start : start + SQLITE_PAIRS_PER_UPDATE]
            values = ", ".join(["(%s, %s)"] * len(part))
            cursor.execute(
                f"UPDATE {table} SET {column} = v.column2 FROM (VALUES {values}) AS v "
                f"WHERE {table}.{by} = v.column1",
                [value for pair in part for value in pair],
            )


def rows_insert_returning_ids(
    model: type[models.Model], fields: list[str], rows: list[tuple]
) -> list[int]:
    """Insert plain value tuples (in ``fields`` order); returns the new ids in row order.

    PostgreSQL: the ids are drawn from the table's sequence first and the rows written with
    ``COPY`` (formatted in C; array parameters would quote every string in Python).
    Elsewhere: multi-row ``INSERT ... RETURNING id``.
    """
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return [pk for (pk,) in bulk_insert_rows(model, fields, rows, returning=["id"])]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, len(rows)],
        )
        ids = sorted(pk for (pk,) in cursor.fetchall())
    bulk_copy_rows(model, ["id", *fields], [(pk, *row) for pk, row in zip(ids, rows, strict=True)])
    return ids


def profile_links_set(*, profile_of_record: dict[int, int | None]) -> None:
    """Set the profile of these source records' identities and events (record id -> profile).

    The same as ``profile_links_sync`` when the records' profiles are already written, without
    a subquery per row: one ``UPDATE ... FROM`` a list of pairs per table.
    """
    pairs = list(profile_of_record.items())
    for model in (Identity, Event):
        _column_by_pairs(model, "profile_id", "source_record_id", pairs)


def _sqlite_preparer(field: models.Field):
    """``cdp.bulk.field_preparer``, with JSON dumped directly (SQLite stores it as text)."""
    if isinstance(field, models.JSONField):
        return lambda value, encoder=field.encoder: json.dumps(value, cls=encoder)
    return field_preparer(field)


def rows_append(model: type[models.Model], fields: list[str], rows: list[tuple]) -> int:
    """Append plain value tuples (in ``fields`` order), for rows whose ids are not needed.

    PostgreSQL: ``COPY`` (``bulk_copy_rows``). SQLite: one prepared single-row ``INSERT`` run
    for every row (``executemany``, the loop in C) rather than a multi-row statement per chunk,
    which SQLite parses anew for each chunk. Returns the number of rows written.
    """
    if not rows:
        return 0
    if connection.vendor != "sqlite":
        return bulk_copy_rows(model, fields, rows)
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    preparers = [_sqlite_preparer(f) for f in concrete]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in concrete)
    marks = ", ".join(["%s"] * len(concrete))
    prepared = (
        [v if prep is None else prep(v) for prep, v in zip(preparers, row, strict=True)]
        for row in rows
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({marks})", prepared
        )
    return len(rows)
