"""Schedules: the idempotent management command and the scheduled task."""

from __future__ import annotations

from django.core.management import call_command
from django_q.models import Schedule

from activation.models import Activation, ActivationRun
from activation.tasks import activation_run_scheduled


def test_schedule_command_is_idempotent_and_follows_changes(make_activation, capsys):
    hourly = make_activation(schedule=Activation.Schedule.HOURLY)
    daily = make_activation(schedule=Activation.Schedule.DAILY)
    make_activation(schedule=Activation.Schedule.MANUAL)
    call_command("activation_schedule")
    assert "created: 2" in capsys.readouterr().out
    call_command("activation_schedule")
    assert "created: 0, updated: 0, unchanged: 2, deleted: 0" in capsys.readouterr().out
    schedules = {s.name: (s.func, s.args, s.schedule_type) for s in Schedule.objects.all()}
    assert schedules == {
        f"activation:{hourly.pk}": (
            "activation.tasks.activation_run_scheduled",
            str(hourly.pk),
            "H",
        ),
        f"activation:{daily.pk}": ("activation.tasks.activation_run_scheduled", str(daily.pk), "D"),
    }
    Activation.objects.filter(pk=hourly.pk).update(schedule=Activation.Schedule.DAILY)
    Activation.objects.filter(pk=daily.pk).update(is_active=False)
    call_command("activation_schedule")
    assert "created: 0, updated: 1, unchanged: 0, deleted: 1" in capsys.readouterr().out
    assert list(Schedule.objects.values_list("name", "schedule_type")) == [
        (f"activation:{hourly.pk}", "D")
    ]


def test_scheduled_task_queues_one_run_and_skips_while_one_is_open(
    make_activation, django_capture_on_commit_callbacks
):
    activation = make_activation(schedule=Activation.Schedule.DAILY)
    with django_capture_on_commit_callbacks() as callbacks:
        assert activation_run_scheduled(activation.pk).startswith("queued run")
    assert len(callbacks) == 1  # the run is enqueued after commit
    run = ActivationRun.objects.get()
    assert (run.trigger, run.status) == ("schedule", "queued")
    assert activation_run_scheduled(activation.pk) == "skipped"
    assert ActivationRun.objects.count() == 1
