"""Tasks, scheduling and commands of insights (tasks are called directly)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from insights import tasks
from insights.models import InsightMetric, InsightRun
from insights.services.runs import insight_run_create


def test_schedule_command_is_idempotent(db):
    call_command("insights_schedule", stdout=StringIO())
    call_command("insights_schedule", "--minutes", "10", stdout=StringIO())
    schedules = dict(Schedule.objects.values_list("name", "func"))
    assert schedules == {
        "insights: incremental": "insights.tasks.insight_run_enqueue_incremental",
        "insights: full (nightly)": "insights.tasks.insight_run_enqueue_full",
    }
    assert Schedule.objects.get(name="insights: incremental").minutes == 10


def test_queued_run_is_enqueued_once_and_executed_by_the_task(
    db, django_capture_on_commit_callbacks, send
):
    send("u-1", traits={"email": "a@example.org"})
    with django_capture_on_commit_callbacks() as callbacks:
        first = insight_run_create(kind=InsightRun.Kind.FULL)
        again = insight_run_create(kind=InsightRun.Kind.FULL)
    assert again.pk == first.pk and len(callbacks) == 1
    assert tasks.insight_run_execute(first.pk) == "succeeded"
    assert tasks.insight_run_execute(first.pk) == "succeeded"  # a second delivery is a no-op
    first.refresh_from_db()
    assert (first.profiles_total, first.profiles_done) == (1, 1)
    assert InsightMetric.objects.get(metric="total.profiles").value == 1


def test_failed_run_records_its_error(db, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("insights.services.runs.insights_compute_full", boom)
    run = InsightRun.objects.create(kind=InsightRun.Kind.FULL)
    with pytest.raises(RuntimeError):
        tasks.insight_run_execute(run.pk)
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "RuntimeError: disk full")


def test_import_orders_command_imports_and_refreshes(db, tmp_path):
    from tests.profiles.test_orders import EXPORT, orders_csv

    path = tmp_path / "orders_export.csv"
    path.write_text(orders_csv(*EXPORT))
    out = StringIO()
    call_command("import_orders", str(path), "--source", "Shop", "--sync", stdout=out)
    assert "7 rows, 5 events created, 0 updated, 0 unchanged, 2 rows rejected" in out.getvalue()
    assert InsightRun.objects.get().status == "succeeded"
