"""The one way to run a background job: enqueue a task by dotted path after commit.

Tasks take ids, load their run row, call one service and record the outcome on the run row.
``sync=True`` runs the task inline in this process (CLI --sync, tests).
"""

from __future__ import annotations

import importlib

from django.db import transaction
from django_q.tasks import async_task


def job_enqueue(task_path: str, *args, sync: bool = False, group: str = "") -> None:
    """Run ``task_path(*args)`` in a django-q2 worker once the current transaction commits."""
    if sync:
        module_name, func_name = task_path.rsplit(".", 1)
        getattr(importlib.import_module(module_name), func_name)(*args)
        return
    transaction.on_commit(lambda: async_task(task_path, *args, group=group or task_path))
