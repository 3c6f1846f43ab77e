"""django-q2 tasks of loyalty: take an id, load the run row, call one service."""

from profiles.models import LoyaltyJobRun
from profiles.services import loyalty


def loyalty_job_execute(run_id: int) -> str:
    run = LoyaltyJobRun.objects.select_related("program").get(pk=run_id)
    return loyalty.loyalty_job_execute(run=run).status


def loyalty_events_earn(event_ids: list[int]) -> dict:
    """Earn for events an ingest just stored (see ``loyalty_events_ingested``)."""
    return loyalty.loyalty_events_earn(event_ids=event_ids)


def loyalty_scheduled(kind: str) -> str:
    """A scheduled run (see ``manage.py loyalty_schedule``): a run row for all programs."""
    run = LoyaltyJobRun.objects.create(kind=kind)
    return loyalty.loyalty_job_execute(run=run).status
