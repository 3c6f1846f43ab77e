"""Insight runs: queue one (full or incremental), and execute it recording the outcome."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from cdp.audit import audit_record
from cdp.jobs import job_enqueue
from insights.models import InsightRun
from insights.services.compute import insights_compute_full, insights_compute_incremental
from insights.services.metrics import dashboard_metrics_refresh

logger = logging.getLogger(__name__)


def insight_run_create(*, kind: str, requested_by=None, sync: bool = False) -> InsightRun:
    """Queue a run, unless one of the same kind is already queued (then return that one)."""
    with transaction.atomic():
        pending = (
            InsightRun.objects.select_for_update()
            .filter(kind=kind, status=InsightRun.Status.QUEUED)
            .first()
        )
        if pending is not None and not sync:
            return pending
        run = InsightRun.objects.create(kind=kind, requested_by=requested_by)
        audit_record(actor=requested_by, action=f"insights.run.{kind}", target=run)
        if not sync:
            job_enqueue("insights.tasks.insight_run_execute", run.pk)
    if sync:
        job_enqueue("insights.tasks.insight_run_execute", run.pk, sync=True)
        run.refresh_from_db()
    return run


def insight_run_execute(*, run: InsightRun) -> InsightRun:
    """Claim a queued run and compute it; failures are recorded on the run row."""
    claimed = InsightRun.objects.filter(pk=run.pk, status=InsightRun.Status.QUEUED).update(
        status=InsightRun.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        logger.info("Insight run %s is not queued; skipping.", run.pk)
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    try:
        if run.kind == InsightRun.Kind.FULL:
            insights_compute_full(run=run)
        else:
            insights_compute_incremental(run=run)
        dashboard_metrics_refresh()
    except Exception as exc:
        logger.exception("Insight run %s failed", run.pk)
        InsightRun.objects.filter(pk=run.pk).update(
            status=InsightRun.Status.FAILED,
            error=f"{exc.__class__.__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        raise
    InsightRun.objects.filter(pk=run.pk).update(
        status=InsightRun.Status.SUCCEEDED, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run
