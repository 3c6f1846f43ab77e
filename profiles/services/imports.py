"""File imports: land every row verbatim, map it, upsert source records, resolve identities.

The file is read in a first streaming pass (encoding, delimiter, row count, the day/month
order of date columns) and imported in a second, in batches. Per batch: rows are mapped in
Python (pure functions), then one transaction upserts the source records and identities, lands
the rows verbatim with their outcome (COPY on PostgreSQL) and resolves profiles. If a batch's
transaction fails, its rows are landed alone as pending before the run fails, so no row is
lost; the uploaded file itself stays on the run.
"""

from __future__ import annotations

import codecs
import csv
import encodings.cp1252
import io
import logging
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from django.core.files.base import File
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from cdp.audit import audit_record
from cdp.bulk import rows_append
from cdp.jobs import job_enqueue
from consent.models import Suppression
from consent.services.consent import consent_from_source_records
from consent.services.suppression import suppression_check
from profiles.constants import NumberLocale
from profiles.models import DataSource, FieldMapping, ImportRun, RawRecord
from profiles.services.mapping import (
    FieldSpec,
    MappedRecord,
    RowError,
    RowMapper,
    date_columns,
    date_evidence,
    date_order_from_evidence,
    default_specs,
    mapping_conflicts,
    number_columns,
    number_evidence,
    number_locale_from_evidence,
    preset_constant_specs,
    stable_hash,
    stable_json,
    text_hash,
)
from profiles.services.records import source_records_upsert
from profiles.services.resolution import profiles_resolve

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000
SNIFF_BYTES = 64 * 1024
EXTRA_VALUES = "__extra_values__"
DELIMITERS = (",", ";", "\t", "|")
# Encodings offered to the user; blank means detect.
ENCODING_CHOICES = [
    ("", "Detect (UTF-8 with or without BOM, else Windows-1252)"),
    ("utf-8", "UTF-8"),
    ("cp1252", "Windows-1252 (Excel on Windows, Western Europe)"),
    ("latin-1", "ISO-8859-1 (Latin-1)"),
    ("iso-8859-15", "ISO-8859-15 (Latin-9, with €)"),
    ("utf-16", "UTF-16 (Excel 'Unicode text')"),
    ("mac_roman", "Mac Roman"),
]
# Windows-1252 as browsers read it (WHATWG): the five bytes it leaves undefined (0x81, 0x8D,
# 0x8F, 0x90, 0x9D) are read as Latin-1 (the C1 controls U+0081...), every other byte as
# Windows-1252. A detected Windows-1252 file with a stray undefined byte is read with it, so
# its euro signs and curly quotes stay what they are (read as Latin-1, the whole file's
# 0x80-0x9F bytes became invisible control characters). Shown on the run by this name.
CP1252_LATIN1 = "cp1252+latin-1"
_CP1252_LATIN1_TABLE = "".join(
    chr(byte) if char == "\ufffe" else char  # U+FFFE: undefined in the charmap table
    for byte, char in enumerate(encodings.cp1252.decoding_table)
)
_CP1252_LATIN1_ENCODING = codecs.charmap_build(_CP1252_LATIN1_TABLE)


class _Cp1252Latin1Decoder(codecs.IncrementalDecoder):
    def decode(self, input, final=False):
        return codecs.charmap_decode(input, self.errors, _CP1252_LATIN1_TABLE)[0]


class _Cp1252Latin1Encoder(codecs.IncrementalEncoder):
    def encode(self, input, final=False):
        return codecs.charmap_encode(input, self.errors, _CP1252_LATIN1_ENCODING)[0]


def _cp1252_latin1_search(name: str) -> codecs.CodecInfo | None:
    if name != "cp1252_latin_1":  # CP1252_LATIN1 as the codec registry normalises it
        return None
    return codecs.CodecInfo(
        name=CP1252_LATIN1,
        encode=lambda text, errors="strict": codecs.charmap_encode(
            text, errors, _CP1252_LATIN1_ENCODING
        ),
        decode=lambda data, errors="strict": codecs.charmap_decode(
            data, errors, _CP1252_LATIN1_TABLE
        ),
        incrementalencoder=_Cp1252Latin1Encoder,
        incrementaldecoder=_Cp1252Latin1Decoder,
    )


codecs.register(_cp1252_latin1_search)

DELIMITER_CHOICES = [
    ("", "Detect"),
    (",", "Comma ,"),
    (";", "Semicolon ;"),
    ("\t", "Tab"),
    ("|", "Pipe |"),
]

csv.field_size_limit(16 * 1024 * 1024)


class ImportError_(Exception):
    """The file as a whole cannot be read (no header, undecodable); shown on the run."""


class MappingMismatch(Exception):
    """The source's saved mapping does not fit the file; shown on the run as it is."""


@dataclass(frozen=True)
class FileFormat:
    encoding: str
    delimiter: str
    rows: int
    headers: list[str] = field(default_factory=list)
    date_orders: dict[str, str] = field(default_factory=dict)
    # Number format per number column suggested by its values: "en", "de" or "conflict".
    number_locales: dict[str, str] = field(default_factory=dict)


def _bom_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return ""


# Files people upload by mistake instead of a CSV, by their first bytes.
_NOT_TEXT = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or a ZIP archive: save it as CSV first"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls): save it as CSV first"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "gzip-compressed: unpack it first"),
)


def _writes_nul(encoding: str) -> bool:
    """Whether the encoding writes NUL bytes for plain ASCII text (UTF-16, UTF-32)."""
    return bool(encoding) and b"\x00" in "a".encode(encoding)


def _not_text(head: bytes, encoding: str = "") -> str:
    """Why these first bytes are not a text file (empty when they may be one).

    NUL bytes are expected in UTF-16 or UTF-32, whether a byte-order mark or the user says so.
    """
    for magic, what in _NOT_TEXT:
        if head.startswith(magic):
            return what
    if b"\x00" in head and not _writes_nul(encoding or _bom_encoding(head)):
        return "binary data (NUL bytes), not text"
    return ""


def _byte_order(encoding: str, head: bytes) -> str:
    """A chosen UTF-16 without a byte-order mark, made explicit: little-endian (what Windows
    and Excel write) unless the NUL bytes of ASCII text fall first in each pair (big-endian).
    Python would otherwise use the server's own byte order."""
    if codecs.lookup(encoding).name != "utf-16" or _bom_encoding(head) == "utf-16":
        return encoding
    pairs = [head[i : i + 2] for i in range(0, len(head) - 1, 2)]
    nul_first = sum(1 for pair in pairs if pair[0] == 0 and pair[1] != 0)
    nul_second = sum(1 for pair in pairs if pair[1] == 0 and pair[0] != 0)
    return "utf-16-be" if nul_first > nul_second else "utf-16-le"


def _mostly_control(sample: str) -> bool:
    """More than 10% control characters (other than tab and line breaks), and more than a
    handful: not a text file. A few stray ones in a real export are left to the row checks."""
    controls = sum(1 for ch in sample if ch < " " and ch not in "\t\r\n")
    return controls > max(16, len(sample) // 10)


def sniff_delimiter(sample: str) -> str:
    """The delimiter under which the sample's records have the most consistent field counts.

    Records are parsed with the csv module, so quoted fields with delimiters or line breaks
    inside do not mislead it. The last record of the sample may be cut off and is ignored.
    Lines may end with CR LF, LF or a bare CR (as the file is read: ``newline=""``).
    """
    best, best_rank = ",", (-1.0, 0)
    for delimiter in DELIMITERS:
        try:
            records = list(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter))
        except csv.Error:
            continue
        records = [r for r in records if any(v.strip() for v in r)]
        if len(records) > 2:
            records = records[:-1]
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        consistent = sum(1 for r in records if len(r) == width) / len(records)
        rank = (consistent, width)
        if rank > best_rank:
            best, best_rank = delimiter, rank
    return best


def scan_file(
    path: str,
    *,
    encoding: str = "",
    delimiter: str = "",
    specs_for: Callable[[list[str]], list[FieldSpec]] | None = None,
) -> FileFormat:
    """Read the whole file once, streaming: encoding, delimiter, headers, rows, date orders
    and the number format of number columns.

    Without a chosen encoding: a BOM decides, else UTF-8 if the whole file decodes, else
    Windows-1252, else Windows-1252 with Latin-1 for the five bytes it leaves undefined
    (``CP1252_LATIN1``). UTF-8 is tried first, so a UTF-8 file is never read as Windows-1252
    (no mojibake).
    """
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if not head.strip():
        raise ImportError_("The file is empty.")
    if encoding:
        try:
            "a".encode(encoding)  # a text encoding, not a codec such as rot13 or base64
        except LookupError:
            raise ImportError_(f"Unknown encoding {encoding!r}.") from None
    if what := _not_text(head, encoding):
        raise ImportError_(f"This is not a CSV or text file: it looks like {what}.")
    if encoding:
        candidates = [_byte_order(encoding, head)]
    else:
        candidates = [_bom_encoding(head) or "utf-8", "cp1252", CP1252_LATIN1]
    last_error: UnicodeDecodeError | None = None
    for candidate in candidates:
        try:
            return _scan(path, candidate, delimiter, specs_for)
        except UnicodeDecodeError as exc:
            last_error = exc
    assert last_error is not None
    raise ImportError_(
        f"The file is not valid {candidates[-1]} (byte {last_error.start}): "
        "choose the encoding it was saved in."
    )


def _scan(path, encoding, delimiter, specs_for) -> FileFormat:
    with open(path, encoding=encoding, errors="strict", newline="") as text:
        sample = text.read(SNIFF_BYTES)
        if _mostly_control(sample):
            raise ImportError_(
                f"This is not a CSV or text file as {encoding}: it is full of control "
                "characters. Choose the encoding it was saved in, or upload a CSV."
            )
        delimiter = delimiter or sniff_delimiter(sample)
        text.seek(0)
        reader = csv.reader(text, delimiter=delimiter)
        try:
            headers = unique_headers(next(reader))
        except StopIteration:
            raise ImportError_("The file has no header row.") from None
        specs = specs_for(headers) if specs_for else []
        positions = [(c, headers.index(c)) for c in date_columns(specs) if c in headers]
        evidence: dict[str, set[str]] = {c: set() for c, _ in positions}
        number_positions = [(c, headers.index(c)) for c in number_columns(specs) if c in headers]
        numbers: dict[str, set[str]] = {c: set() for c, _ in number_positions}
        rows = 0
        for number, values in enumerate(reader, start=1):
            if not any(v.strip() for v in values):
                continue
            rows += 1
            # The first 64 KB were checked as bytes; PostgreSQL cannot store U+0000 at all.
            if "\x00" in "\x1f".join(values):
                raise ImportError_(
                    "This is not a CSV or text file: it looks like binary data "
                    f"(a NUL byte in data row {number}), not text."
                )
            for column, index in positions:
                if index < len(values) and values[index].strip():
                    evidence[column].add(date_evidence(values[index]))
            for column, index in number_positions:
                if index < len(values) and values[index].strip():
                    numbers[column].add(number_evidence(values[index]))
    orders = {c: date_order_from_evidence(e) for c, e in evidence.items()}
    locales = {c: number_locale_from_evidence(e, delimiter=delimiter) for c, e in numbers.items()}
    return FileFormat(
        encoding,
        delimiter,
        rows,
        headers,
        {c: o for c, o in orders.items() if o},
        {c: loc for c, loc in locales.items() if loc},
    )


def detect_format(path: str) -> FileFormat:
    """Encoding, delimiter and row count of a file (see scan_file)."""
    return scan_file(path)


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
        name = header.strip().lstrip("\ufeff").strip() or "column"
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return result


def specs_for_source(
    source: DataSource, headers: list[str], *, number_locales: dict[str, str] | None = None
) -> list[FieldSpec]:
    """The saved mapping of the source, or its preset / canonical-name default.

    A preset's constant mappings that depend on the file (Mailchimp's status) are added to a
    saved mapping too, unless the mapping already sets that target. ``number_locales`` (what
    the file's number columns showed) apply to the default only: a saved mapping's number
    format was chosen by a person.
    """
    saved = list(source.mappings.all())
    if not saved:
        return with_number_locales(default_specs(headers, source.preset), number_locales or {})
    specs = [
        FieldSpec(
            m.source_field,
            m.target,
            m.transform,
            m.identifier_type,
            m.is_key,
            number_locale=m.number_locale or "en",
            date_format=m.date_format,
        )
        for m in saved
    ]
    targets = {s.target for s in specs}
    if source.preset:
        specs += [
            s for s in preset_constant_specs(source.preset, headers) if s.target not in targets
        ]
    return specs


def saved_mapping_check(source: DataSource, headers: list[str]) -> None:
    """Refuse a file that the source's saved mapping does not fit, before any row is read.

    A mapping saved for one file shape silently emptied a file of another shape: none of its
    columns matched, so every row became a record without attributes keyed by its content
    hash (a new record on every re-import). Refused: a file with none of the mapping's
    columns, and a file without one of its key columns (rows could not be matched to their
    records). A file with some of the other mapped columns missing imports (exports vary).
    """
    saved = list(source.mappings.exclude(source_field="").values_list("source_field", "is_key"))
    if not saved:
        return
    present = set(headers)
    mapped = [column for column, _key in saved]
    if not present & set(mapped):
        raise MappingMismatch(
            f"None of this file's columns is in the saved mapping of source {source.name!r} "
            f"(it maps {_names(mapped)}; the file has {_names(headers)}). Map this file in "
            "the admin (Import runs → Add), or import it into a source of its own."
        )
    missing = [column for column, key in saved if key and column not in present]
    if missing:
        raise MappingMismatch(
            f"The file has no column {_names(missing)}, the key of the saved mapping of source "
            f"{source.name!r}: its rows could not be matched to their records. Map this file "
            "in the admin (Import runs → Add) and choose its key columns."
        )


def _names(columns: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def with_number_locales(specs: list[FieldSpec], locales: dict[str, str]) -> list[FieldSpec]:
    """The specs with the number format each column showed (``en``/``de``; others unchanged)."""
    return [
        replace(s, number_locale=locales[s.column])
        if locales.get(s.column) in (NumberLocale.EN, NumberLocale.DE)
        else s
        for s in specs
    ]


def import_run_create(
    *,
    source: DataSource,
    file: File,
    created_by=None,
    original_name: str = "",
    sync=False,
    encoding: str = "",
    delimiter: str = "",
    draft: bool = False,
) -> ImportRun:
    """Store the file on a new run and queue the import (run inline with ``sync``).

    With ``draft`` the run waits for its mapping to be confirmed (``import_run_start``).
    """
    run = ImportRun(
        source=source,
        created_by=created_by,
        original_name=original_name or file.name,
        encoding=encoding,
        delimiter=delimiter,
        status=ImportRun.Status.DRAFT if draft else ImportRun.Status.QUEUED,
    )
    run.file.save(run.original_name, file, save=False)
    run.save()
    if draft:
        audit_record(actor=created_by, action="import.upload", target=run)
        return run
    import_run_enqueue(run=run, actor=created_by, sync=sync)
    run.refresh_from_db()
    return run


def import_run_start(*, run: ImportRun, actor=None, sync: bool = False) -> bool:
    """Queue a draft run once its mapping is confirmed. False when it was not a draft any more
    (a second click)."""
    with transaction.atomic():
        started = ImportRun.objects.filter(pk=run.pk, status=ImportRun.Status.DRAFT).update(
            status=ImportRun.Status.QUEUED
        )
    if not started:
        return False
    import_run_enqueue(run=run, actor=actor, sync=sync)
    return True


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
    except MappingMismatch as exc:
        _finish(run, ImportRun.Status.FAILED, str(exc))
    except Exception as exc:
        # The exception's message may quote row values (a database error's DETAIL): log where
        # it happened and its type, never its text.
        logger.error(
            "Import %s failed: %s\n%s",
            run.pk,
            exc.__class__.__name__,
            "".join(traceback.format_tb(exc.__traceback__)),
        )
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


@dataclass
class _Batch:
    run: ImportRun
    source: DataSource
    specs: list[FieldSpec]
    date_orders: dict[str, str]
    reasons: Counter = field(default_factory=Counter)
    mapper: RowMapper | None = None


def _import_file(run: ImportRun) -> None:
    source = run.source
    path = run.file.path
    fmt = scan_file(
        path,
        encoding=run.encoding,
        delimiter=run.delimiter,
        specs_for=lambda headers: specs_for_source(source, headers),
    )
    ImportRun.objects.filter(pk=run.pk).update(
        rows_total=fmt.rows,
        encoding=fmt.encoding,
        delimiter=fmt.delimiter,
        headers=fmt.headers,
        date_orders=fmt.date_orders,
    )
    saved_mapping_check(source, fmt.headers)
    specs = specs_for_source(source, fmt.headers, number_locales=fmt.number_locales)
    state = _Batch(run, source, specs, fmt.date_orders)
    state.mapper = RowMapper(specs, region=source.default_region, date_orders=fmt.date_orders)
    batch: list[tuple[int, dict]] = []
    for _headers, number, row in read_rows(path, fmt):
        batch.append((number, row))
        if len(batch) >= BATCH_SIZE:
            _import_batch(state, batch)
            batch = []
    if batch:
        _import_batch(state, batch)


def rows_map(
    batch: list[tuple[int, dict]],
    specs: list[FieldSpec],
    *,
    region: str = "",
    date_orders: dict[str, str] | None = None,
    mapper: RowMapper | None = None,
) -> list[tuple[int, dict, MappedRecord | None, RowError | None]]:
    """Map each (row number, row): (number, row, record, None) or (number, row, None, error).

    ``mapper`` (the specs compiled once, see RowMapper) is reused across an import's batches.
    """
    mapper = mapper or RowMapper(specs, region=region, date_orders=date_orders)
    result = []
    for number, row in batch:
        try:
            if EXTRA_VALUES in row:
                extra = len(row[EXTRA_VALUES])
                raise RowError(
                    f"the row has {extra} more value(s) than the header has columns",
                    "extra_values",
                )
            record = mapper.map(row)
            result.append((number, row, record, None))
        except RowError as exc:
            result.append((number, row, None, exc))
    return result


def _import_batch(state: _Batch, batch: list[tuple[int, dict]]) -> None:
    run, source = state.run, state.source
    mapped = rows_map(
        batch,
        state.specs,
        region=source.default_region,
        date_orders=state.date_orders,
        mapper=state.mapper,
    )
    now = timezone.now()
    # Erased persons (suppression list): accepted, dropped, counted; the row keeps no payload.
    # Checking hashes every identifier (salted): skipped while the list is empty.
    suppressed = (
        suppression_check(
            identities_by_item={
                number: [(i.type, i.key) for i in record.identities if i.key]
                for number, _r, record, _e in mapped
                if record is not None
            }
        )
        if Suppression.objects.exists()
        else set()
    )
    records = [
        record
        for number, _r, record, _e in mapped
        if record is not None and number not in suppressed
    ]
    try:
        with transaction.atomic():
            result = source_records_upsert(source=source, records=records)
            raws = []
            rejected = Counter()
            for number, row, record, error in mapped:
                if number in suppressed:
                    raws.append((number, {}, RawRecord.Status.SUPPRESSED, "", None))
                    continue
                if record is not None:
                    status, message = RawRecord.Status.ACCEPTED, ""
                    record_id = result.record_ids[record.external_key]
                else:
                    status, message, record_id = RawRecord.Status.REJECTED, str(error), None
                    rejected[error.reason] += 1
                raws.append((number, row, status, message, record_id))
            raw_records_land(run=run, source=source, rows=raws, received_at=now)
            profiles_resolve(source_record_ids=result.changed_ids)
            consent_from_source_records(
                source_record_ids=list(result.record_ids.values()), import_run_id=run.pk
            )
            state.reasons.update(rejected)
            ImportRun.objects.filter(pk=run.pk).update(
                rows_done=F("rows_done") + len(batch),
                created_count=F("created_count") + result.created,
                updated_count=F("updated_count") + result.updated,
                unchanged_count=F("unchanged_count") + result.unchanged,
                rejected_count=F("rejected_count") + sum(rejected.values()),
                suppressed_count=F("suppressed_count") + len(suppressed),
                rejected_reasons=dict(state.reasons),
            )
    except Exception as exc:
        # Land the rows as they came, unapplied, so nothing is lost; then fail the run.
        note = f"not applied: the import failed ({exc.__class__.__name__})"
        raw_records_land(
            run=run,
            source=source,
            rows=[(n, row, RawRecord.Status.PENDING, note, None) for n, row in batch],
            received_at=now,
        )
        raise


def raw_records_land(*, run: ImportRun, source: DataSource, rows: list[tuple], received_at) -> None:
    """Store rows verbatim: (row number, row, status, error, source record id) each.

    COPY on PostgreSQL, one prepared INSERT run per row (executemany) on SQLite; never a query
    per row.
    """
    if not rows:
        return
    if connection.vendor == "postgresql":
        columns = (
            "source_id, import_run_id, row_number, payload, content_hash, status, error, "
            "source_record_id, received_at"
        )
        with connection.cursor() as cursor:
            copy_sql = f"COPY {RawRecord._meta.db_table} ({columns}) FROM STDIN"
            with cursor.cursor.copy(copy_sql) as copy:
                for number, row, status, error, record_id in rows:
                    # One encoding serves as payload and as stable_hash's input: jsonb keeps
                    # no key order, so the sorted keys store the same value.
                    payload = stable_json(row)
                    copy.write_row(
                        (
                            source.pk,
                            run.pk,
                            number,
                            payload,
                            text_hash(payload),
                            status,
                            error,
                            record_id,
                            received_at,
                        )
                    )
        return
    rows_append(
        RawRecord,
        [
            "source",
            "import_run",
            "row_number",
            "payload",
            "content_hash",
            "status",
            "error",
            "source_record",
            "received_at",
        ],
        [
            (
                source.pk,
                run.pk,
                number,
                row,
                stable_hash(row),
                status,
                error,
                record_id,
                received_at,
            )
            for number, row, status, error, record_id in rows
        ],
    )


def mapping_save(*, source: DataSource, specs: list[FieldSpec], actor=None) -> None:
    """Replace the source's saved mapping with these specs (constant preset specs excluded:
    they are derived from each file). ValueError when two columns share a target."""
    problems = mapping_conflicts(specs)
    if problems:
        raise ValueError(" ".join(problems))
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
                    number_locale=s.number_locale or "en",
                    date_format=s.date_format,
                )
                for s in specs
                if s.constant is None
            ]
        )
        audit_record(
            actor=actor,
            action="mapping.save",
            target=source,
            details={"columns": [s.column for s in specs if s.constant is None]},
        )


@dataclass
class ImportPreview:
    """What an import of a file would do: its format and the first rows, mapped."""

    fmt: FileFormat
    rows: list[tuple[int, dict, MappedRecord | None, RowError | None]]


def import_preview(
    *,
    path: str,
    specs: list[FieldSpec],
    encoding: str = "",
    delimiter: str = "",
    region: str = "",
    limit: int = 5,
) -> ImportPreview:
    """Scan the whole file (date orders need every value) and map its first ``limit`` rows."""
    fmt = scan_file(path, encoding=encoding, delimiter=delimiter, specs_for=lambda _h: specs)
    batch: list[tuple[int, dict]] = []
    for _headers, number, row in read_rows(path, fmt):
        batch.append((number, row))
        if len(batch) >= limit:
            break
    rows = rows_map(batch, specs, region=region, date_orders=fmt.date_orders)
    return ImportPreview(fmt, rows)


def csv_preview(path: str, limit: int = 5) -> tuple[list[str], list[dict]]:
    """Headers and the first rows of a file, for mapping previews."""
    fmt = detect_format(path)
    rows: list[dict] = []
    columns: list[str] = fmt.headers
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
