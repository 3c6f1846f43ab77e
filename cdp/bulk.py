"""Set-based bulk writes that Django's ORM makes slow.

``QuerySet.bulk_update`` builds one ``CASE WHEN id = ... THEN ...`` expression per field per row
and resolves each through the ORM: for thousands of rows that costs more than the database
work. ``bulk_update_rows`` sends one ``UPDATE ... FROM (VALUES ...)`` per chunk instead
(PostgreSQL, and SQLite >= 3.33), with values prepared by each field as the ORM would.

Inserts of plain value tuples: ``bulk_insert_rows`` (multi-row INSERT, optional RETURNING),
``bulk_insert_rows_json`` (one JSON document on PostgreSQL, for JSON-heavy rows such as API
messages), ``bulk_copy_rows`` (COPY), ``rows_insert_returning_ids`` (ids drawn from the
sequence, then COPY) and ``rows_append`` (COPY, or one prepared INSERT run by executemany on
SQLite). ``column_by_pairs`` sets one column from (key, value) pairs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import connection, models

CHUNK_ROWS = 1000
SQLITE_MAX_VARIABLES = 32_000
_AS_IS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.BooleanField,
    models.ForeignKey,
    models.AutoField,
    models.BigAutoField,
)


def field_preparer(field: models.Field):
    """A function preparing a value of this field for the database, as the ORM would.

    Plain strings, numbers and ids pass as they are; date-times are prepared once per
    distinct value (a batch carries the same ``now`` in every row); others go through the field.
    """
    if isinstance(field, _AS_IS):
        return lambda value: value
    if isinstance(field, models.DateTimeField):
        cache: dict = {}

        def prepare(value):
            if value not in cache:
                cache[value] = field.get_db_prep_save(value, connection)
            return cache[value]

        return prepare
    return lambda value: field.get_db_prep_save(value, connection)


def _pg_array_param(field: models.Field, values: list) -> tuple[str, list]:
    """One column as an array parameter with its cast, for ``unnest`` on PostgreSQL."""
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        texts = [None if v is None else json.dumps(v, cls=encoder) for v in values]
        return "%s::text[]::jsonb[]", texts
    db_type = field.rel_db_type(connection) if field.is_relation else field.db_type(connection)
    if field.primary_key:
        db_type = "bigint"
    return f"%s::{db_type}[]", values


def bulk_update_rows(
    model: type[models.Model], objs: Iterable[models.Model], fields: Sequence[str]
) -> int:
    """Write ``fields`` of each object to its row by primary key; returns rows sent."""
    objs = list(objs)
    if not objs:
        return 0
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    pk = meta.pk
    table = connection.ops.quote_name(meta.db_table)
    columns = [connection.ops.quote_name(f.column) for f in concrete]
    pk_column = connection.ops.quote_name(pk.column)
    postgres = connection.vendor == "postgresql"
    if postgres:
        # unnest of one array per column: a fixed statement whatever the row count, so the
        # driver parses it once and the parameter count stays small.
        sql_arrays, params = [], []
        for field, values in [
            (pk, [obj.pk for obj in objs]),
            *[(f, [getattr(obj, f.attname) for obj in objs]) for f in concrete],
        ]:
            placeholder, param = _pg_array_param(field, values)
            sql_arrays.append(placeholder)
            params.append(param)
        names = ", ".join(["id", *[f"v{i}" for i in range(len(concrete))]])
        assignments = ", ".join(f"{c} = v.v{i}" for i, c in enumerate(columns))
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM unnest({', '.join(sql_arrays)}) "
                f"AS v({names}) WHERE {table}.{pk_column} = v.id",
                params,
            )
        return len(objs)
    chunk = CHUNK_ROWS
    if not postgres:
        chunk = max(1, min(CHUNK_ROWS, SQLITE_MAX_VARIABLES // (len(concrete) + 1)))
    if postgres:
        casts = [f"::{pk.db_type(connection)}"] + [f"::{f.db_type(connection)}" for f in concrete]
        names = ["id", *[f"v{i}" for i in range(len(concrete))]]
        assignments = ", ".join(f"{c} = v.v{i}" for i, c in enumerate(columns))
        where = f"{table}.{pk_column} = v.id"
        alias = f"v({', '.join(names)})"
    else:
        casts = [""] * (len(concrete) + 1)
        assignments = ", ".join(f"{c} = v.column{i + 2}" for i, c in enumerate(columns))
        where = f"{table}.{pk_column} = v.column1"
        alias = "v"
    row_sql = "(" + ", ".join(f"%s{cast}" for cast in casts) + ")"
    preparers = [(f.attname, field_preparer(f)) for f in concrete]
    with connection.cursor() as cursor:
        for start in range(0, len(objs), chunk):
            part = objs[start : start + chunk]
            params: list = []
            for obj in part:
                params.append(obj.pk)
                for attname, prepare in preparers:
                    params.append(prepare(getattr(obj, attname)))
            values = ", ".join([row_sql] * len(part))
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS {alias} WHERE {where}",
                params,
            )
    return len(objs)


def bulk_insert_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence],
    *,
    returning: Sequence[str] = (),
    ignore_conflicts: bool = False,
) -> list[tuple]:
    """Insert plain value tuples (in ``fields`` order) without building model instances.

    One multi-row ``INSERT`` per chunk (PostgreSQL, SQLite >= 3.35 for RETURNING); values are
    prepared by each field as the ORM would. Returns the ``returning`` columns of each row.
    """
    if not rows:
        return []
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in concrete)
    back = [meta.get_field(name) for name in returning]
    suffix = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    if back:
        suffix += " RETURNING " + ", ".join(connection.ops.quote_name(f.column) for f in back)
    if connection.vendor == "postgresql":
        sql_arrays, params = [], []
        for index, field in enumerate(concrete):
            placeholder, param = _pg_array_param(field, [row[index] for row in rows])
            sql_arrays.append(placeholder)
            params.append(param)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({', '.join(sql_arrays)})"
                f"{suffix}",
                params,
            )
            return [tuple(r) for r in cursor.fetchall()] if back else []
    chunk = max(1, min(CHUNK_ROWS, SQLITE_MAX_VARIABLES // len(concrete)))
    row_sql = "(" + ", ".join(["%s"] * len(concrete)) + ")"
    result: list[tuple] = []
    preparers = [field_preparer(f) for f in concrete]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            params = [
                prepare(value)
                for row in part
                for prepare, value in zip(preparers, row, strict=True)
            ]
            values = ", ".join([row_sql] * len(part))
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {values}{suffix}", params)
            if back:
                result.extend(tuple(r) for r in cursor.fetchall())
    return result


def bulk_copy_rows(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence]
) -> int:
    """Append plain value tuples (in ``fields`` order) with ``COPY`` on PostgreSQL.

    For large appends without RETURNING or conflicts (merge logs, audit rows): COPY formats
    rows in C, where array parameters quote every string in Python. JSON fields are encoded
    here. Elsewhere it is ``bulk_insert_rows``. Returns the number of rows written.
    """
    rows = list(rows)
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        bulk_insert_rows(model, fields, rows)
        return len(rows)
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    encoders = [
        (lambda v, e=f.encoder: None if v is None else json.dumps(v, cls=e))
        if isinstance(f, models.JSONField)
        else None
        for f in concrete
    ]
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in concrete)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                [v if enc is None else enc(v) for enc, v in zip(encoders, row, strict=True)]
            )
    return len(rows)


def bulk_insert_rows_json(
    model: type[models.Model],
    fields: list[str],
    rows: list[tuple],
    *,
    returning: Sequence[str] = (),
    ignore_conflicts: bool = False,
) -> list[tuple]:
    """Insert value tuples (in ``fields`` order): ``bulk_insert_rows``, or on PostgreSQL all
    rows as one JSON document read by ``json_to_recordset``.

    Messages are mostly JSON: one ``json.dumps`` (in C) and one parameter is much cheaper
    than psycopg quoting every payload into an array literal (in Python) and lets PostgreSQL
    parse each payload once.
    """
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return bulk_insert_rows(
            model, fields, rows, returning=returning, ignore_conflicts=ignore_conflicts
        )
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in concrete)
    types = ", ".join(
        f"{quote(f.column)} "
        + (f.rel_db_type(connection) if f.is_relation else f.db_type(connection))
        for f in concrete
    )
    names = [f.column for f in concrete]
    # Date-times as ISO text, each distinct one formatted once (a batch shares its times).
    times = [(i, names[i]) for i, f in enumerate(concrete) if isinstance(f, models.DateTimeField)]
    texts: dict[datetime, str] = {}
    objects = []
    for row in rows:
        obj = dict(zip(names, row, strict=True))
        for index, name in times:
            value = row[index]
            if value is not None:
                if value not in texts:
                    texts[value] = value.isoformat()
                obj[name] = texts[value]
        objects.append(obj)
    document = json.dumps(objects, ensure_ascii=False, separators=(",", ":"))
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {columns} "
        f"FROM json_to_recordset(%s::json) AS r({types})"
    )
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(quote(meta.get_field(f).column) for f in returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])
        return [tuple(row) for row in cursor.fetchall()] if returning else []


SQLITE_PAIRS_PER_UPDATE = 10_000  # 2 parameters each, under SQLite's variable limit


def column_by_pairs(
    model: type[models.Model], column: str, by: str, pairs: list[tuple[int, int | None]]
) -> int:
    """UPDATE model SET column = second WHERE by = first, for (first, second) integer pairs.

    Rows already holding their value are left alone: a re-resolved record mostly keeps its
    profile, and rewriting its events (a new row version and new index entries each) cost
    more than the rest of a /v1/batch request. Returns the number of rows changed.
    """
    if not pairs:
        return 0
    quote = connection.ops.quote_name
    table, column, by = quote(model._meta.db_table), quote(column), quote(by)
    changed = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET {column} = v.b "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(a, b) "
                f"WHERE {table}.{by} = v.a AND {table}.{column} IS DISTINCT FROM v.b",
                [[a for a, _ in pairs], [b for _, b in pairs]],
            )
            return cursor.rowcount
        for start in range(0, len(pairs), SQLITE_PAIRS_PER_UPDATE):
            part = pairs[start : start + SQLITE_PAIRS_PER_UPDATE]
            values = ", ".join(["(%s, %s)"] * len(part))
            cursor.execute(
                f"UPDATE {table} SET {column} = v.column2 FROM (VALUES {values}) AS v "
                f"WHERE {table}.{by} = v.column1 AND {table}.{column} IS NOT v.column2",
                [value for pair in part for value in pair],
            )
            changed += cursor.rowcount
    return changed


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


def _sqlite_preparer(field: models.Field):
    """``field_preparer``, with JSON dumped directly (SQLite stores it as text)."""
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
    prepared = ([prep(v) for prep, v in zip(preparers, row, strict=True)] for row in rows)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({marks})", prepared
        )
    return len(rows)
