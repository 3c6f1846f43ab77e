"""Running an activation: freeze who to send, deliver in batches at most once, keep a snapshot.

A run:
1. counts members and exclusions (activation_preview) at export time;
2. full CSV/JSONL file: streams every eligible person straight into the file, then replaces
   the snapshot set-based;
   otherwise: stages its work list (RunItem: add / update / remove) with INSERT ... SELECT
   against the snapshot (changes only = new, changed hash, or gone), and cuts it into batches
   (DeliveryBatch, one idempotency key each);
3. delivers: each webhook batch is POSTed until accepted or dead-lettered and its outcome
   recorded at once; a retried run skips batches already sent;
4. on success, applies its items to the snapshot and drops them.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from activation.models import (
    Action,
    Activation,
    ActivationMember,
    ActivationRun,
    DeliveryBatch,
    Destination,
    RunItem,
)
from activation.selectors import activation_preview, activation_rows, eligible_profiles
from activation.services import files
from activation.sources import segment_member_ids
from activation.webhook import post_batch
from cdp.audit import audit_record
from cdp.jobs import job_enqueue

logger = logging.getLogger(__name__)

OPEN_STATUSES = (ActivationRun.Status.QUEUED, ActivationRun.Status.RUNNING)


class ActivationError(Exception):
    """Something a user can fix or should know; shown as a message, never a 500."""


class DeliveryFailed(ActivationError):
    pass


@transaction.atomic
def activation_run_create(
    *,
    activation: Activation,
    created_by=None,
    trigger: str = ActivationRun.Trigger.MANUAL,
    sync: bool = False,
) -> ActivationRun:
    """Queue a run. One open run per activation, so a double click queues nothing twice."""
    activation = Activation.objects.select_for_update().get(pk=activation.pk)
    if not activation.is_active or not activation.destination.is_active:
        raise ActivationError("This activation or its destination is switched off.")
    if activation.runs.filter(status__in=OPEN_STATUSES).exists():
        raise ActivationError("A run of this activation is already queued or running.")
    run = ActivationRun.objects.create(
        activation=activation, trigger=trigger, mode=activation.mode, created_by=created_by
    )
    audit_record(actor=created_by, action="activation.run", target=run)
    job_enqueue("activation.tasks.activation_run_execute", run.pk, sync=sync)
    return run


@transaction.atomic
def activation_run_retry(*, run: ActivationRun, user=None, sync: bool = False) -> ActivationRun:
    """Queue a failed run again; its frozen work list is kept, batches already sent are not
    sent again."""
    updated = ActivationRun.objects.filter(pk=run.pk, status=ActivationRun.Status.FAILED).update(
        status=ActivationRun.Status.QUEUED, error="", finished_at=None
    )
    if not updated:
        raise ActivationError("Only a failed run can be retried.")
    if run.activation.runs.filter(status__in=OPEN_STATUSES).exclude(pk=run.pk).exists():
        raise ActivationError("Another run of this activation is queued or running.")
    audit_record(actor=user, action="activation.run_retry", target=run)
    job_enqueue("activation.tasks.activation_run_execute", run.pk, sync=sync)
    run.refresh_from_db()
    return run


def activation_run_execute(*, run: ActivationRun, member_ids: QuerySet | None = None):
    """Run to the end, recording progress, counts, timings and errors on the run row.

    ``member_ids`` (a subquery of profile ids) defaults to the segment's membership.
    """
    claimed = ActivationRun.objects.filter(pk=run.pk, status=ActivationRun.Status.QUEUED).update(
        status=ActivationRun.Status.RUNNING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    if not claimed:
        logger.info("Activation run %s is not queued; skipping.", run.pk)
        run.refresh_from_db()
        return run
    run = ActivationRun.objects.select_related("activation__destination").get(pk=run.pk)
    timings = dict(run.timings)
    try:
        _execute(run, member_ids, timings)
    except DeliveryFailed as exc:
        _finish(run, ActivationRun.Status.FAILED, str(exc), timings)
    except Exception as exc:
        logger.exception("Activation run %s failed", run.pk)
        _finish(
            run, ActivationRun.Status.FAILED, f"Unexpected error: {exc.__class__.__name__}", timings
        )
        raise
    else:
        _finish(run, ActivationRun.Status.SUCCEEDED, "", timings)
    run.refresh_from_db()
    return run


def _finish(run: ActivationRun, status: str, error: str, timings: dict) -> None:
    ActivationRun.objects.filter(pk=run.pk).update(
        status=status, error=error, finished_at=timezone.now(), timings=timings
    )


@contextmanager
def _timed(timings: dict, phase: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = round(timings.get(phase, 0) + time.perf_counter() - start, 3)


def _execute(run: ActivationRun, member_ids: QuerySet | None, timings: dict) -> None:
    activation = run.activation
    destination = activation.destination
    if not run.staged:
        if member_ids is None:
            member_ids = segment_member_ids(activation.segment)
        with _timed(timings, "count"):
            preview = activation_preview(activation=activation, member_ids=member_ids)
        ActivationRun.objects.filter(pk=run.pk).update(
            members_count=preview["members"],
            eligible_count=preview["eligible"],
            excluded=preview["excluded"],
        )
        if destination.kind == Destination.Kind.FILE and run.mode == Activation.Mode.FULL:
            _export_full_file(run, member_ids, timings)
            return
        with _timed(timings, "stage"):
            _stage(run, member_ids)
    if destination.kind == Destination.Kind.FILE:
        with _timed(timings, "write"):
            _export_items_file(run)
    else:
        with _timed(timings, "deliver"):
            _deliver_batches(run)
    with _timed(timings, "snapshot"):
        _apply_items_to_snapshot(run)


# --- full file ------------------------------------------------------------------------------


def _export_full_file(run: ActivationRun, member_ids: QuerySet, timings: dict) -> None:
    activation = run.activation
    rows = activation_rows(activation=activation, member_ids=member_ids)
    ActivationRun.objects.filter(pk=run.pk).update(items_total=run.eligible_count)
    writer = files.Writer(run=run, header=rows.columns.header)
    try:
        with _timed(timings, "write"), _bulk():
            if files.csv_copy_supported(activation):
                out = ", ".join(f"e.{c}" for c in rows.columns.value_names)
                written = writer.write_copy(f"SELECT {out} FROM ({rows.sql}) e", rows.params)
            else:
                written = 0
                for chunk in _stream(rows.sql, rows.params):
                    written += writer.write_rows(row[1:] for row in chunk)
                    ActivationRun.objects.filter(pk=run.pk).update(items_done=written)
            relative = writer.close()
    except BaseException:
        writer.abort()
        raise
    ActivationRun.objects.filter(pk=run.pk).update(
        file=relative, items_done=written, items_total=written, sent_count=written
    )
    with _timed(timings, "snapshot"), _bulk():
        counts = _snapshot_replace(run, rows, member_ids)
    ActivationRun.objects.filter(pk=run.pk).update(**counts)


def _snapshot_replace(run: ActivationRun, rows, member_ids: QuerySet) -> dict[str, int]:
    """Make the snapshot equal the rows just written, touching only what changed: people gone
    are deleted, changed hashes updated, new people inserted (three set-based statements)."""
    activation = run.activation
    snapshot = ActivationMember._meta.db_table
    hash_sql, hash_params = rows.hash_sql()
    eligible = eligible_profiles(activation=activation, member_ids=member_ids)
    id_sql, id_params = eligible.annotate(pid=F("pk")).values("pid").query.sql_with_params()
    removed = _execute_sql(
        f"DELETE FROM {snapshot} WHERE activation_id = %s AND NOT EXISTS "
        f"(SELECT 1 FROM ({id_sql}) e WHERE e.pid = {snapshot}.profile_id)",
        [activation.pk, *id_params],
    )
    if connection.vendor == "postgresql":
        # One pass: insert new people, update changed hashes, count which was which.
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH up AS (INSERT INTO {snapshot} "
                "(activation_id, profile_id, pseudo_id, row_hash, run_id) "
                f"SELECT %s, e.pid, e.cdp_id, {hash_sql}, %s FROM ({rows.sql}) e "
                "ON CONFLICT (activation_id, profile_id) DO UPDATE SET "
                "row_hash = EXCLUDED.row_hash, run_id = EXCLUDED.run_id "
                f"WHERE {snapshot}.row_hash <> EXCLUDED.row_hash "
                "RETURNING (xmax = 0) AS inserted) "
                "SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FILTER (WHERE NOT inserted) "
                "FROM up",
                [activation.pk, *hash_params, run.pk, *rows.params],
            )
            added, updated = cursor.fetchone()
        return {"added_count": added, "updated_count": updated, "removed_count": removed}
    updated = _execute_sql(
        f"UPDATE {snapshot} SET row_hash = h.row_hash, run_id = %s FROM "
        f"(SELECT e.pid, {hash_sql} AS row_hash FROM ({rows.sql}) e) h "
        f"WHERE {snapshot}.activation_id = %s AND {snapshot}.profile_id = h.pid "
        f"AND {snapshot}.row_hash <> h.row_hash",
        [run.pk, *hash_params, *rows.params, activation.pk],
    )
    added = _execute_sql(
        f"INSERT INTO {snapshot} (activation_id, profile_id, pseudo_id, row_hash, run_id) "
        f"SELECT %s, e.pid, e.cdp_id, {hash_sql}, %s FROM ({rows.sql}) e "
        f"WHERE NOT EXISTS (SELECT 1 FROM {snapshot} s "
        "WHERE s.activation_id = %s AND s.profile_id = e.pid)",
        [activation.pk, *hash_params, run.pk, *rows.params, activation.pk],
    )
    return {"added_count": added, "updated_count": updated, "removed_count": removed}


@contextmanager
def _bulk():
    """One transaction for a big set-based statement; on PostgreSQL without JIT compilation
    (seconds of compile time for no gain here), with room to sort in memory, and planning
    cursors for all their rows."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
                cursor.execute("SET LOCAL work_mem = '64MB'")
                # Server-side cursors are read to the end: plan for all rows, not the first.
                cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        yield


def _stream(sql: str, params, size: int = files.CHUNK):
    """Chunks of rows from a server-side cursor (PostgreSQL) or a plain cursor (SQLite)."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(size):
            yield rows


def _chunks(iterator, size):
    chunk = []
    for row in iterator:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _execute_sql(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- staged runs ----------------------------------------------------------------------------


def _stage(run: ActivationRun, member_ids: QuerySet) -> None:
    """Freeze the work list (set-based) and cut it into batches."""
    with _bulk():
        _stage_items(run, member_ids)


def _stage_items(run: ActivationRun, member_ids: QuerySet) -> None:
    activation = run.activation
    items = RunItem._meta.db_table
    snapshot = ActivationMember._meta.db_table
    rows = activation_rows(activation=activation, member_ids=member_ids)
    hash_sql, hash_params = rows.hash_sql()
    changed = (
        "" if run.mode == Activation.Mode.FULL else "WHERE s.id IS NULL OR s.row_hash <> h.row_hash"
    )
    _execute_sql(
        f"INSERT INTO {items} (run_id, profile_id, pseudo_id, row_hash, action) "
        f"SELECT %s, h.pid, h.cdp_id, h.row_hash, "
        f"CASE WHEN s.id IS NULL THEN '{Action.ADD}' ELSE '{Action.UPDATE}' END FROM "
        f"(SELECT e.pid, e.cdp_id, {hash_sql} AS row_hash FROM ({rows.sql}) e) h "
        f"LEFT JOIN {snapshot} s ON s.activation_id = %s AND s.profile_id = h.pid "
        f"{changed} ORDER BY h.pid",
        [run.pk, *hash_params, *rows.params, activation.pk],
    )
    eligible = eligible_profiles(activation=activation, member_ids=member_ids)
    id_sql, id_params = eligible.annotate(pid=F("pk")).values("pid").query.sql_with_params()
    _execute_sql(
        f"INSERT INTO {items} (run_id, profile_id, pseudo_id, row_hash, action) "
        f"SELECT %s, s.profile_id, s.pseudo_id, '', '{Action.REMOVE}' FROM {snapshot} s "
        "WHERE s.activation_id = %s AND NOT EXISTS "
        f"(SELECT 1 FROM ({id_sql}) e WHERE e.pid = s.profile_id) ORDER BY s.profile_id",
        [run.pk, activation.pk, *id_params],
    )
    counts = RunItem.objects.filter(run=run).aggregate(
        total=Count("id"),
        added=Count("id", filter=Q(action=Action.ADD)),
        updated=Count("id", filter=Q(action=Action.UPDATE)),
        removed=Count("id", filter=Q(action=Action.REMOVE)),
    )
    if activation.destination.kind == Destination.Kind.WEBHOOK:
        size = max(1, activation.destination.batch_size)
        _execute_sql(
            f"INSERT INTO {DeliveryBatch._meta.db_table} (run_id, number, first_item_id, "
            "last_item_id, size, idempotency_key, status, attempts, last_error, updated_at) "
            "SELECT %s, k, MIN(id), MAX(id), COUNT(*), %s || CAST(k AS TEXT), %s, 0, '', %s "
            f"FROM (SELECT id, (ROW_NUMBER() OVER (ORDER BY id) - 1) / %s AS k FROM {items} "
            "WHERE run_id = %s) t GROUP BY k",
            [
                run.pk,
                f"{run.public_id}-",
                DeliveryBatch.Status.PENDING,
                timezone.now(),
                size,
                run.pk,
            ],
        )
    ActivationRun.objects.filter(pk=run.pk).update(
        staged=True,
        items_total=counts["total"],
        items_done=0,
        added_count=counts["added"],
        updated_count=counts["updated"],
        removed_count=counts["removed"],
    )
    run.staged = True


def _item_rows(run: ActivationRun, items: QuerySet):
    """(columns, SQL of rows to upsert ending with their action, params, removals) for a set
    of items, read now, so consent is checked again at send time."""
    activation = run.activation
    upserts = items.filter(action__in=[Action.ADD, Action.UPDATE]).values("profile_id")
    rows = activation_rows(activation=activation, member_ids=upserts)
    sql = (
        f"SELECT e.*, it.action FROM ({rows.sql}) e JOIN {RunItem._meta.db_table} it "
        "ON it.run_id = %s AND it.profile_id = e.pid ORDER BY e.pid"
    )
    removals = items.filter(action=Action.REMOVE).order_by("id")
    return rows.columns, sql, [*rows.params, run.pk], removals


def _export_items_file(run: ActivationRun) -> None:
    """Changes-only file: one line per added / updated person, then one per removal."""
    items = RunItem.objects.filter(run=run)
    columns, sql, params, removals = _item_rows(run, items)
    header = ["action", *columns.header]
    writer = files.Writer(run=run, header=header)
    blanks = ("",) * (len(header) - 2)
    written = 0
    try:
        with _bulk():
            # Who is no longer eligible (consent withdrawn since staging) leaves the work list
            # first, so the snapshot records exactly what the file holds.
            upserts = items.filter(action__in=[Action.ADD, Action.UPDATE])
            eligible = eligible_profiles(
                activation=run.activation, member_ids=upserts.values("profile_id")
            )
            upserts.filter(~Exists(eligible.filter(pk=OuterRef("profile_id")))).delete()
            for chunk in _stream(sql, params):
                written += writer.write_rows((row[-1], *row[1:-1]) for row in chunk)
            ActivationRun.objects.filter(pk=run.pk).update(items_done=written)
        for chunk in _chunks(removals.values_list("pseudo_id", flat=True).iterator(), files.CHUNK):
            written += writer.write_rows((Action.REMOVE, pseudo, *blanks) for pseudo in chunk)
        relative = writer.close()
    except BaseException:
        writer.abort()
        raise
    ActivationRun.objects.filter(pk=run.pk).update(
        file=relative, items_done=written, sent_count=written
    )


def _deliver_batches(run: ActivationRun) -> None:
    destination = run.activation.destination
    batches = DeliveryBatch.objects.filter(run=run).exclude(status=DeliveryBatch.Status.SENT)
    for batch in batches.order_by("number"):
        items = RunItem.objects.filter(
            run=run, id__gte=batch.first_item_id, id__lte=batch.last_item_id
        )
        body, sent, sent_ids = _batch_body(run, batch, items)
        result = post_batch(
            url=destination.url,
            body=body,
            secret=destination.secret,
            idempotency_key=batch.idempotency_key,
            timeout=destination.timeout_seconds,
            max_attempts=destination.max_attempts,
            backoff=destination.backoff_seconds,
        )
        now = timezone.now()
        if result.ok:
            DeliveryBatch.objects.filter(pk=batch.pk).update(
                status=DeliveryBatch.Status.SENT,
                attempts=F("attempts") + result.attempts,
                response_status=result.status,
                last_error="",
                sent_at=now,
                updated_at=now,
            )
            ActivationRun.objects.filter(pk=run.pk).update(
                items_done=F("items_done") + batch.size, sent_count=F("sent_count") + sent
            )
            _forget_unsent(items, sent_ids)
            continue
        DeliveryBatch.objects.filter(pk=batch.pk).update(
            status=DeliveryBatch.Status.DEAD,
            attempts=F("attempts") + result.attempts,
            response_status=result.status,
            last_error=result.error[:2000],
            updated_at=now,
        )
        raise DeliveryFailed(
            f"Batch {batch.number} is a dead letter after {result.attempts} tries: {result.error}"
        )


def _forget_unsent(items: QuerySet, sent_ids: list[int]) -> None:
    """Drop add/update items of a batch that were not sent (no longer eligible when the batch
    was read, e.g. consent withdrawn during the run), so the snapshot records only what was
    sent."""
    items.filter(action__in=[Action.ADD, Action.UPDATE]).exclude(profile_id__in=sent_ids).delete()


def _batch_body(
    run: ActivationRun, batch: DeliveryBatch, items: QuerySet
) -> tuple[bytes, int, list[int]]:
    """The JSON body, how many records it has, and the profile ids it carries."""
    columns, sql, params, removals = _item_rows(run, items)
    records = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()  # one batch
    for row in rows:
        record = {"action": row[-1], "cdp_id": row[1]}
        values = row[2:-1]
        if columns.contact:
            record[columns.contact] = values[0]
            values = values[1:]
        record["attributes"] = dict(zip(columns.attributes, values, strict=True))
        records.append(record)
    for pseudo in removals.values_list("pseudo_id", flat=True):
        records.append({"action": Action.REMOVE, "cdp_id": pseudo})
    body = {
        "activation": run.activation.name,
        "run": str(run.public_id),
        "batch": batch.number,
        "idempotency_key": batch.idempotency_key,
        "records": records,
    }
    encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return encoded, len(records), [row[0] for row in rows]


@transaction.atomic
def _apply_items_to_snapshot(run: ActivationRun) -> None:
    items = RunItem._meta.db_table
    snapshot = ActivationMember._meta.db_table
    activation_id = run.activation_id
    _execute_sql(
        f"DELETE FROM {snapshot} WHERE activation_id = %s AND profile_id IN "
        f"(SELECT profile_id FROM {items} WHERE run_id = %s)",
        [activation_id, run.pk],
    )
    _execute_sql(
        f"INSERT INTO {snapshot} (activation_id, profile_id, pseudo_id, row_hash, run_id) "
        f"SELECT %s, profile_id, pseudo_id, row_hash, %s FROM {items} "
        f"WHERE run_id = %s AND action IN ('{Action.ADD}', '{Action.UPDATE}')",
        [activation_id, run.pk, run.pk],
    )
    RunItem.objects.filter(run=run).delete()
