"""django-q2 tasks: take an id, load the run row, call one service."""

from consent.models import RequestRun
from consent.services.rights import request_run_execute as _execute


def request_run_execute(run_id: int) -> str:
    run = RequestRun.objects.select_related("request").get(pk=run_id)
    return _execute(run=run).status
