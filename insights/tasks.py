"""django-q2 tasks: take an id, load the run row, call one service."""

from insights.models import InsightRun
from insights.services.runs import insight_run_execute as _execute


def insight_run_execute(run_id: int) -> str:
    run = InsightRun.objects.get(pk=run_id)
    return _execute(run=run).status


def insight_run_enqueue_incremental() -> int:
    """Scheduled every few minutes (manage.py insights_schedule): queue an incremental run."""
    from insights.services.runs import insight_run_create

    return insight_run_create(kind=InsightRun.Kind.INCREMENTAL).pk


def insight_run_enqueue_full() -> int:
    """Scheduled nightly: queue a full run (new cut points and CLV fit)."""
    from insights.services.runs import insight_run_create

    return insight_run_create(kind=InsightRun.Kind.FULL).pk
