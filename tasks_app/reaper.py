"""Tasks whose worker was lost or stopped: queued again when that is safe, else failed.

A task never stays RUNNING after its worker died: every worker process reaps
(``worker.housekeeping``), and the status change is conditional on the run it
saw, so of several reapers one wins.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tasks_app.kinds import find_kind
from tasks_app.models import IllegalTransition, Status, Task
from tasks_app.queue import enqueue
from tasks_app.runner import WORKER_LOST
from tasks_app.tasklog import TaskLog


def reap_lost_tasks(timeout: float | None = None) -> list[int]:
    """RUNNING tasks whose heartbeat stopped: requeue them or fail them.

    A task is requeued when the step it was in is safe to repeat; otherwise
    it fails with "worker lost", never staying RUNNING. Every worker reaps;
    the status change is conditional on the run it saw (``attempts``), so
    of several reapers one wins and a newer run is never touched.
    """
    timeout = settings.TASK_HEARTBEAT_TIMEOUT if timeout is None else timeout
    return [task.pk for task in Task.objects.stale(timeout) if _hand_back(task, "Worker lost")]


def release_tasks(worker_ids: list[str]) -> list[int]:
    """Hand back the RUNNING tasks of workers that stop before finishing them.

    Called by a worker process whose graceful shutdown ran out of time: what
    the reaper would do after the heartbeat timeout, done at once.
    """
    running = Task.objects.filter(status=Status.RUNNING, worker_id__in=worker_ids)
    return [task.pk for task in running if _hand_back(task, "Worker stopped")]


def _hand_back(task: Task, what: str) -> bool:
    """Requeue ``task`` if its step is safe to repeat, else fail it; False if another process won."""
    kind = find_kind(task.kind)
    step = kind.step_named(task.step) if kind else None
    # No step recorded yet: the worker died before doing anything.
    safe = kind is not None and (not task.step or (step is not None and step.repeatable))
    gave_up = safe and task.attempts >= settings.TASK_MAX_ATTEMPTS
    safe = safe and not gave_up
    worker = task.worker_id
    log = TaskLog(task)
    try:
        # One transaction: whoever sees the new status also sees why.
        with transaction.atomic():
            if safe:
                task.requeue()
                log.warning(
                    f"{what} during step {task.step or 'start'!r}; it is safe to repeat, so the task was queued again.",
                    worker=worker,
                )
                enqueue(task)
            else:
                task.fail(f"{WORKER_LOST} {task.step!r}")
                reason = (
                    f"it already ran {task.attempts} times (TASK_MAX_ATTEMPTS)"
                    if gave_up
                    else "it is not safe to repeat automatically"
                )
                log.error(
                    f"{what} during step {task.step!r}; {reason}. Retry the task to run it again.",
                    worker=worker,
                )
            _release_queue_message(task.pk, worker)
    except IllegalTransition:
        return False
    return True


def _release_queue_message(task_id: int, worker: str) -> None:
    """django-tasks-db never hears of a dead worker: close its RUNNING message for this task."""
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(status="RUNNING", args_kwargs__args=[task_id]).update(
        status="FAILED",
        finished_at=timezone.now(),
        exception_class_path="tasks_app.engine.WorkerLost",
        traceback=f"Worker {worker or '?'} was lost or stopped; the task was reaped.",
    )
