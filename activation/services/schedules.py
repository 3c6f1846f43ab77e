"""The django-q2 schedules of activations, kept in step with their settings (idempotent)."""

from __future__ import annotations

from django.db import transaction
from django_q.models import Schedule

from activation.models import Activation

TASK = "activation.tasks.activation_run_scheduled"
PREFIX = "activation:"
TYPES = {Activation.Schedule.HOURLY: Schedule.HOURLY, Activation.Schedule.DAILY: Schedule.DAILY}


@transaction.atomic
def activation_schedules_sync() -> dict[str, int]:
    """One Schedule per active hourly/daily activation, named 'activation:<id>'; others removed.

    Running it twice changes nothing the second time.
    """
    wanted = {
        f"{PREFIX}{a.pk}": a
        for a in Activation.objects.filter(is_active=True, destination__is_active=True).exclude(
            schedule=Activation.Schedule.MANUAL
        )
    }
    existing = {s.name: s for s in Schedule.objects.filter(name__startswith=PREFIX)}
    counts = {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    for name, activation in wanted.items():
        schedule_type = TYPES[activation.schedule]
        current = existing.get(name)
        if current is None:
            Schedule.objects.create(
                name=name,
                func=TASK,
                args=repr(activation.pk),
                schedule_type=schedule_type,
                repeats=-1,
            )
            counts["created"] += 1
        elif (current.func, current.args, current.schedule_type, current.repeats) != (
            TASK,
            repr(activation.pk),
            schedule_type,
            -1,
        ):
            current.func, current.args = TASK, repr(activation.pk)
            current.schedule_type, current.repeats = schedule_type, -1
            current.save()
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    stale = [pk for name, s in existing.items() if name not in wanted for pk in [s.pk]]
    counts["deleted"] = Schedule.objects.filter(pk__in=stale).delete()[0]
    return counts
