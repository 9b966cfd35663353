"""Running a task: its remaining steps, with a heartbeat, on a worker.

Each step reads and updates the task's checkpoint; after each step the
checkpoint is saved, so a later run (a resume after input, a retry, a requeue
after a lost worker) starts at the step that has not finished yet.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from tasks_app.kinds import (
    Cancelled,
    NeedsInput,
    RunLost,
    StepContext,
    TaskFailed,
    find_kind,
)
from tasks_app.models import IllegalTransition, InputRequest, Task
from tasks_app.tasklog import TaskLog

logger = logging.getLogger("tasks_app.engine")

WORKER_LOST = "Worker lost during step"


class _Heartbeat(threading.Thread):
    """Proves the run is alive every ``interval``; notices when it is no longer ours."""

    def __init__(self, task: Task, interval: float, lost: threading.Event) -> None:
        super().__init__(name=f"heartbeat-{task.pk}", daemon=True)
        self.task = task
        self.interval = interval
        self.lost = lost
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    alive = self.task.beat()
                except Exception:
                    # A database blip: keep beating; the timeout is many intervals.
                    logger.warning("Heartbeat of task %s failed", self.task.pk, exc_info=True)
                    close_old_connections()
                    continue
                if not alive and not self.stopped.is_set():
                    logger.warning(
                        "Task %s: this run lost the task (reaped or moved); stopping it.",
                        self.task.pk,
                    )
                    self.lost.set()
                    return
        finally:
            # This thread ends with the run: its database connection goes too.
            connections.close_all()

    def ending(self) -> None:
        """The run itself is about to move the task out of RUNNING: a beat that finds
        it moved is no news (no "lost the task" warning)."""
        self.stopped.set()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval + 1)


def run(task_id: int, worker_id: str) -> str:
    """Run a task's remaining steps. Returns the status it ended in.

    Safe to call for a task that is no longer PENDING (a duplicate queue
    message, a task cancelled meanwhile): it does nothing.
    """
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return "missing"
    try:
        task.start(worker_id)
    except IllegalTransition:
        logger.info("Task %s is %s, not PENDING: skipping this run", task_id, task.status)
        return task.status
    kind = find_kind(task.kind)
    log = TaskLog(task)
    if kind is None:
        log.error(f"This server does not know how to run tasks of kind {task.kind!r}.")
        task.fail(f"Unknown task kind {task.kind!r}")
        return task.status

    ctx = StepContext(task=task, log=log, checkpoint=dict(task.checkpoint))
    heartbeat = _Heartbeat(task, settings.TASK_HEARTBEAT_INTERVAL, ctx.lost)
    heartbeat.start()
    try:
        for step in kind.steps_from(task.step):
            ctx.check_cancelled()
            task.save_checkpoint(step.name, ctx.checkpoint)
            step.run(ctx)
        heartbeat.ending()
        task.save_checkpoint("", ctx.checkpoint)
        task.succeed()
        log.info("Task finished successfully.")
    except Cancelled:
        heartbeat.ending()
        log.warning("Cancelled at the user's request.")
        task.mark_cancelled()
    except NeedsInput as exc:
        heartbeat.ending()
        task.save_checkpoint(task.step, ctx.checkpoint)
        if Task.objects.filter(pk=task.pk, cancel_requested=True).exists():
            # Cancelled while the step ran: honour that rather than ask.
            log.warning("Cancelled at the user's request.")
            task.mark_cancelled()
        else:
            _ask(task, log, exc)
    except TaskFailed as exc:
        heartbeat.ending()
        log.error(str(exc))
        task.fail(str(exc))
    except (IllegalTransition, RunLost) as exc:
        # Someone else moved the task (cancelled, reaped): they own it now.
        logger.warning("Task %s: %s", task_id, exc or "this run lost the task")
    except Exception as exc:
        heartbeat.ending()
        logger.exception("Task %s crashed", task_id)
        _last_resort(task, log, exc)
    finally:
        heartbeat.stop()
    return task.status


def _ask(task: Task, log: TaskLog, exc: NeedsInput) -> None:
    fields = [dict(f, error=f.get("error", "")) for f in exc.request.get("fields", [])]
    with transaction.atomic():
        InputRequest.objects.filter(task=task).pending().update(state=InputRequest.State.CLOSED)
        InputRequest.objects.create(
            task=task,
            message=str(exc),
            fields=fields,
            expires_at=timezone.now() + timedelta(seconds=settings.INPUT_REQUEST_EXPIRY),
        )
        task.await_input()
    log.warning(
        str(exc),
        needs=[{"field": f["key"], "type": f["type"], "label": f.get("label", "")} for f in fields],
    )


def _last_resort(task: Task, log: TaskLog, exc: Exception) -> None:
    """A step crashed: say why in the log and fail the task. This must not fail in turn
    (the task would stay RUNNING, be reaped, re-run and end "worker lost", hiding the
    reason): each write is tried on its own, once more on a fresh connection."""
    reason = f"Unexpected error: {type(exc).__name__}: {exc}"
    writes = (
        lambda: log.error(reason, traceback=traceback.format_exc(limit=8)),
        lambda: task.fail(reason),
    )
    for write in writes:
        for attempt in range(2):
            try:
                with contextlib.suppress(IllegalTransition):
                    write()
                break
            except Exception:
                logger.exception("Task %s: a write after its crash failed", task.pk)
                if attempt == 0:
                    connections.close_all()  # a broken connection is not reused
