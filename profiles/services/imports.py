"""File imports: land every row verbatim, map it, upsert source records, resolve identities.

Streams the file in batches; per batch a few set-based queries and two commits (raw rows are
committed before mapping starts, so a row is never lost even when mapping fails).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from django.core.files.base import File
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from cdp.audit import audit_record
from cdp.jobs import job_enqueue
from consent.services.consent import consent_from_source_records
from consent.services.suppression import suppression_check
from profiles.models import DataSource, FieldMapping, ImportRun, RawRecord
from profiles.services.mapping import (
    FieldSpec,
    MappedRecord,
    RowError,
    default_specs,
    map_row,
    stable_hash,
)
from profiles.services.records import source_records_upsert
from profiles.services.resolution import profiles_resolve

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
SNIFF_BYTES = 64 * 1024
EXTRA_VALUES = "__extra_values__"


class ImportError_(Exception):
    """The file as a whole cannot be read (no header, undecodable); shown on the run."""


@dataclass(frozen=True)
class FileFormat:
    encoding: str
    delimiter: str
    rows: int


def detect_format(path: str) -> FileFormat:
    """Encoding (UTF-8 with or without BOM, else Windows-1252), delimiter and row count."""
    encoding = "utf-8-sig"
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
        handle.seek(0)
        try:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            encoding = "cp1252"
    sample = head.decode(encoding, errors="replace")
    if not sample.strip():
        raise ImportError_("The file is empty.")
    try:
        delimiter = csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    with open(path, encoding=encoding, errors="replace", newline="") as text:
        rows = sum(1 for _ in csv.reader(text, delimiter=delimiter)) - 1
    return FileFormat(encoding, delimiter, max(rows, 0))


def read_rows(path: str, fmt: FileFormat) -> Iterator[tuple[list[str], int, dict]]:
    """Yield (headers, row number, row dict) for each data row; row numbers count from 1."""
    with open(path, encoding=fmt.encoding, errors="strict", newline="") as text:
        reader = csv.reader(text, delimiter=fmt.delimiter)
        try:
            headers = next(reader)
        except StopIteration:
            raise ImportError_("The file has no header row.") from None
        headers = unique_headers(headers)
        for number, values in enumerate(reader, start=1):
            if not any(v.strip() for v in values):
                continue
            row = dict(zip(headers, values, strict=False))
            if len(values) > len(headers):
                row[EXTRA_VALUES] = values[len(headers) :]
            yield headers, number, row


def unique_headers(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for header in headers:
        name = header.strip() or "column"
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return result


def specs_for_source(source: DataSource, headers: list[str]) -> list[FieldSpec]:
    """The saved mapping of the source, or its preset / canonical-name default."""
    saved = list(source.mappings.all())
    if not saved:
        return default_specs(headers, source.preset)
    return [
        FieldSpec(m.source_field, m.target, m.transform, m.identifier_type, m.is_key) for m in saved
    ]


def import_run_create(
    *, source: DataSource, file: File, created_by=None, original_name: str = "", sync=False
) -> ImportRun:
    """Store the file on a new run and queue the import (run inline with ``sync``)."""
    run = ImportRun(source=source, created_by=created_by, original_name=original_name or file.name)
    run.file.save(run.original_name, file, save=False)
    run.save()
    import_run_enqueue(run=run, actor=created_by, sync=sync)
    run.refresh_from_db()
    return run


def import_run_enqueue(*, run: ImportRun, actor=None, sync: bool = False) -> None:
    """Queue a saved run for the worker; audited."""
    with transaction.atomic():
        audit_record(actor=actor, action="import.create", target=run)
        if not sync:
            job_enqueue("profiles.tasks.import_run_execute", run.pk)
    if sync:
        job_enqueue("profiles.tasks.import_run_execute", run.pk, sync=True)


def import_run_execute(*, run: ImportRun) -> ImportRun:
    """Run an import to the end, recording progress and counts on the run row."""
    claimed = ImportRun.objects.filter(pk=run.pk, status=ImportRun.Status.QUEUED).update(
        status=ImportRun.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        logger.info("Import %s is not queued; skipping.", run.pk)
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    try:
        _import_file(run)
    except (ImportError_, UnicodeDecodeError, csv.Error) as exc:
        _finish(run, ImportRun.Status.FAILED, f"The file cannot be read: {exc}")
    except Exception as exc:
        logger.exception("Import %s failed", run.pk)
        _finish(run, ImportRun.Status.FAILED, f"Unexpected error: {exc.__class__.__name__}")
        raise
    else:
        _finish(run, ImportRun.Status.SUCCEEDED, "")
    run.refresh_from_db()
    return run


def _finish(run: ImportRun, status: str, error: str) -> None:
    ImportRun.objects.filter(pk=run.pk).update(
        status=status, error=error, finished_at=timezone.now()
    )


def _import_file(run: ImportRun) -> None:
    source = run.source
    path = run.file.path
    fmt = detect_format(path)
    ImportRun.objects.filter(pk=run.pk).update(rows_total=fmt.rows)
    specs: list[FieldSpec] | None = None
    batch: list[tuple[int, dict]] = []
    for headers, number, row in read_rows(path, fmt):
        if specs is None:
            specs = specs_for_source(source, headers)
        batch.append((number, row))
        if len(batch) >= BATCH_SIZE:
            _import_batch(run, source, specs, batch)
            batch = []
    if batch:
        _import_batch(run, source, specs or [], batch)


def _import_batch(
    run: ImportRun, source: DataSource, specs: list[FieldSpec], batch: list[tuple[int, dict]]
) -> None:
    now = timezone.now()
    with transaction.atomic():
        raws = RawRecord.objects.bulk_create(
            [
                RawRecord(
                    source=source,
                    import_run=run,
                    row_number=number,
                    payload=row,
                    content_hash=stable_hash(row),
                    received_at=now,
                )
                for number, row in batch
            ],
            batch_size=BATCH_SIZE,
        )
    region = source.default_region
    mapped: list[tuple[RawRecord, MappedRecord]] = []
    rejected: list[RawRecord] = []
    for raw in raws:
        row = raw.payload
        try:
            if EXTRA_VALUES in row:
                extra = len(row[EXTRA_VALUES])
                raise RowError(f"the row has {extra} more value(s) than the header has columns")
            mapped.append((raw, map_row(row, specs, region=region)))
        except RowError as exc:
            raw.status, raw.error = RawRecord.Status.REJECTED, str(exc)
            rejected.append(raw)
    # Erased persons (suppression list): accepted, dropped, counted; the row keeps no payload.
    suppressed = suppression_check(
        identities_by_item={
            raw.pk: [(i.type, i.key) for i in record.identities if i.key] for raw, record in mapped
        }
    )
    if suppressed:
        mapped = [(raw, record) for raw, record in mapped if raw.pk not in suppressed]
    with transaction.atomic():
        if suppressed:
            RawRecord.objects.filter(pk__in=suppressed).update(
                status=RawRecord.Status.SUPPRESSED, payload={}, error=""
            )
        result = source_records_upsert(source=source, records=[m for _, m in mapped])
        profiles_resolve(source_record_ids=result.changed_ids)
        consent_from_source_records(
            source_record_ids=list(result.record_ids.values()), import_run_id=run.pk
        )
        for raw, record in mapped:
            raw.status = RawRecord.Status.ACCEPTED
            raw.source_record_id = result.record_ids[record.external_key]
        RawRecord.objects.bulk_update(
            [raw for raw, _ in mapped] + rejected,
            ["status", "error", "source_record"],
            batch_size=500,
        )
        ImportRun.objects.filter(pk=run.pk).update(
            rows_done=F("rows_done") + len(batch),
            created_count=F("created_count") + result.created,
            updated_count=F("updated_count") + result.updated,
            unchanged_count=F("unchanged_count") + result.unchanged,
            rejected_count=F("rejected_count") + len(rejected),
        )


def mapping_save(*, source: DataSource, specs: list[FieldSpec]) -> None:
    """Replace the source's saved mapping with these specs."""
    with transaction.atomic():
        source.mappings.all().delete()
        FieldMapping.objects.bulk_create(
            [
                FieldMapping(
                    source=source,
                    source_field=s.column,
                    target=s.target,
                    transform=s.transform,
                    identifier_type=s.identifier,
                    is_key=s.is_key,
                )
                for s in specs
            ]
        )


def csv_preview(path: str, limit: int = 5) -> tuple[list[str], list[dict]]:
    """Headers and the first rows of a file, for mapping previews."""
    fmt = detect_format(path)
    rows: list[dict] = []
    columns: list[str] = []
    for headers, _number, row in read_rows(path, fmt):
        columns = headers
        rows.append(row)
        if len(rows) >= limit:
            break
    return columns, rows


def text_file(content: str | bytes, name: str) -> File:
    """Wrap in-memory content as a Django File (CLI and tests)."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    return File(io.BytesIO(data), name=name)
