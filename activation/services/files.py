"""File exports: CSV or JSON Lines written atomically into the export storage, in constant memory.

Rows come from a chunked iterator (a server-side cursor on PostgreSQL); a full CSV export on
PostgreSQL is streamed by ``COPY (<the same query>) TO STDOUT``. Files are written to
``<name>.part`` and renamed when complete, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from activation.models import Activation, ActivationRun, Destination

CHUNK = 5000


def storage_root() -> Path:
    return Path(settings.CDP_ACTIVATION_STORAGE)


def export_path(*, run: ActivationRun) -> Path:
    """Relative path of a run's file: <folder>/<activation>-run<id>-<UTC time>.<ext>."""
    activation = run.activation
    destination = activation.destination
    slug = re.sub(r"[^a-z0-9]+", "-", activation.name.lower()).strip("-") or "activation"
    folder = re.sub(r"[^A-Za-z0-9_./-]+", "-", destination.folder).strip("/.")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    ext = "jsonl" if destination.file_format == Destination.FileFormat.JSONL else "csv"
    name = f"{slug}-run{run.pk}-{stamp}.{ext}"
    return Path(folder) / name if folder else Path(name)


def resolve_export(relative: str) -> Path | None:
    """The absolute path of an export file, or None if it escapes the storage or is gone."""
    root = storage_root().resolve()
    path = (root / relative).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path


class Writer:
    """Writes rows of one run to a temporary file and renames it into place on ``close``."""

    def __init__(self, *, run: ActivationRun, header: list[str]):
        self.relative = export_path(run=run)
        self.path = storage_root() / self.relative
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.part = self.path.with_name(self.path.name + ".part")
        self.header = header
        self.jsonl = run.activation.destination.file_format == Destination.FileFormat.JSONL
        self.handle = open(self.part, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.csv = None if self.jsonl else csv.writer(self.handle, lineterminator="\n")
        if self.csv:
            self.csv.writerow(header)
        self.rows = 0

    def write_rows(self, rows: Iterable[tuple]) -> int:
        n = 0
        if self.csv:
            for row in rows:
                self.csv.writerow(row)
                n += 1
        else:
            header = self.header
            write = self.handle.write
            for row in rows:
                record = {k: v for k, v in zip(header, row, strict=True) if v not in (None, "")}
                write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                n += 1
        self.rows += n
        return n

    def write_copy(self, sql: str, params) -> int:
        """PostgreSQL: append the CSV rows of ``sql`` via COPY, chunk by chunk."""
        self.handle.flush()
        statement = connection.ops.compose_sql(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params)
        with open(self.part, "ab") as raw, connection.cursor() as cursor:
            with cursor.cursor.copy(statement) as copy:
                for data in copy:
                    raw.write(data)
            n = cursor.cursor.rowcount
        self.handle.seek(0, os.SEEK_END)
        self.rows += n
        return n

    def close(self) -> str:
        self.handle.close()
        os.replace(self.part, self.path)
        return str(self.relative)

    def abort(self) -> None:
        self.handle.close()
        self.part.unlink(missing_ok=True)


def csv_copy_supported(activation: Activation) -> bool:
    return (
        connection.vendor == "postgresql"
        and activation.destination.file_format == Destination.FileFormat.CSV
    )
