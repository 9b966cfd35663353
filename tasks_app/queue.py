"""Queueing a run of a task: a django.tasks message, and a word to the workers."""

from __future__ import annotations

from django.db import transaction

from tasks_app.models import Task
from tasks_app.tasks import run_task
from tasks_app.wakeup import notify_workers, wake_workers


def enqueue(task: Task) -> None:
    """Queue a run of ``task`` on django.tasks; committed with the caller's transaction."""
    run_task.enqueue(task.pk)
    # Idle workers of this process at once, and of other processes too.
    notify_workers()
    transaction.on_commit(wake_workers)
