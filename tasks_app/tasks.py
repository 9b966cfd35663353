"""The django.tasks entry point: the queue message only says "run task N"."""

from __future__ import annotations

from django.tasks import task

from tasks_app import engine
from tasks_app.worker import current_worker_id


@task()
def run_task(task_id: int) -> str:
    return engine.run(task_id, current_worker_id())
