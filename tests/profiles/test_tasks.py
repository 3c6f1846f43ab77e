"""Tasks take an id, call one service and record the outcome on the run row."""

from __future__ import annotations

from profiles.models import ImportRun, Profile
from profiles.services.imports import import_run_create, text_file
from profiles.tasks import import_run_execute


def queued_run(source, content: str) -> ImportRun:
    run = ImportRun(source=source, original_name="a.csv")
    run.file.save("a.csv", text_file(content, "a.csv"), save=False)
    run.save()
    return run


def test_import_task_runs_a_queued_import_and_records_the_outcome(make_source):
    run = queued_run(make_source(), "email\na@example.com\nb@example.com\n")

    status = import_run_execute(run.pk)

    run.refresh_from_db()
    assert status == "succeeded"
    assert (run.status, run.rows_total, run.rows_done, run.created_count) == ("succeeded", 2, 2, 2)
    assert run.progress_percent == 100
    assert sorted(Profile.objects.values_list("email", flat=True)) == [
        "a@example.com",
        "b@example.com",
    ]


def test_import_task_does_not_run_a_run_twice(make_source):
    run = queued_run(make_source(), "email\na@example.com\n")
    import_run_execute(run.pk)

    status = import_run_execute(run.pk)

    run.refresh_from_db()
    assert status == "succeeded"
    assert (run.rows_done, run.created_count, run.unchanged_count) == (1, 1, 0)
    assert run.raw_records.count() == 1


def test_queued_run_shows_no_progress(make_source, monkeypatch):
    monkeypatch.setattr("cdp.jobs.async_task", lambda *args, **kwargs: None)
    run = import_run_create(source=make_source(), file=text_file("email\na@x.org\n", "a.csv"))

    assert (run.status, run.progress_percent, run.rows_done) == ("queued", 0, 0)
