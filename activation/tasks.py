"""django-q2 tasks: take an id, load the row, call one service."""

from __future__ import annotations

import logging

from activation.models import Activation, ActivationRun
from activation.services.runs import ActivationError, activation_run_create
from activation.services.runs import activation_run_execute as _execute

logger = logging.getLogger(__name__)


def activation_run_execute(run_id: int) -> str:
    run = ActivationRun.objects.select_related("activation__destination").get(pk=run_id)
    return _execute(run=run).status


def activation_run_scheduled(activation_id: int) -> str:
    """Called by the django-q2 schedule of an hourly or daily activation."""
    activation = Activation.objects.filter(pk=activation_id).first()
    if activation is None or activation.schedule == Activation.Schedule.MANUAL:
        return "skipped"
    try:
        run = activation_run_create(activation=activation, trigger=ActivationRun.Trigger.SCHEDULE)
    except ActivationError as exc:
        logger.info("Scheduled run of activation %s skipped: %s", activation_id, exc)
        return "skipped"
    return f"queued run {run.pk}"
