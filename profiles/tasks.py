"""django-q2 tasks: take an id, load the run row, call one service."""

from profiles.models import ImportRun, ResolutionRun
from profiles.services.imports import import_run_execute as _execute
from profiles.services.resolution import resolution_run_execute as _resolve


def import_run_execute(run_id: int) -> str:
    run = ImportRun.objects.select_related("source").get(pk=run_id)
    run = _execute(run=run)
    return run.status


def resolution_run_execute(run_id: int) -> str:
    run = ResolutionRun.objects.select_related("ruleset").get(pk=run_id)
    run = _resolve(run=run)
    return run.status
