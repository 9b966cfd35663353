"""The django.tasks entry point: the queue message only says "run task N"."""

from __future__ import annotations

from django.tasks import task

from tasks_app.runner import run
from tasks_app.wakeup import current_worker_id


@task()
def run_task(task_id: int) -> str:
    return run(task_id, current_worker_id())
