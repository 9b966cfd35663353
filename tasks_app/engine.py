"""Running tasks as a sequence of steps with a saved checkpoint.

A kind of task (registered by another app, e.g. ``migrator``) is a list of
steps. Each step reads and updates the task's checkpoint; after each step the
checkpoint is saved, so a later run (a resume after input, a retry, a requeue
after a lost worker) starts at the step that has not finished yet.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction

from tasks_app.models import IllegalTransition, Task
from tasks_app.tasklog import TaskLog

logger = logging.getLogger("tasks_app.engine")


class TaskFailed(Exception):
    """A step failed with a reason a person understands; the task ends FAILED."""


class NeedsInput(Exception):
    """A step cannot go on without a person's answer; the task awaits input."""

    def __init__(self, message: str, request: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.request = request or {}


class Cancelled(Exception):
    pass


@dataclass
class StepContext:
    task: Task
    log: TaskLog
    checkpoint: dict[str, Any]
    # Secrets handed to this run only (e.g. answered passwords); never saved.
    inputs: dict[str, Any] = field(default_factory=dict)

    def check_cancelled(self) -> None:
        if Task.objects.filter(pk=self.task.pk, cancel_requested=True).exists():
            raise Cancelled()


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[StepContext], None]
    # Safe to run again after a worker died in the middle of it?
    repeatable: bool = True


@dataclass(frozen=True)
class TaskKind:
    name: str
    label: str
    steps: tuple[Step, ...]
    # Keys from ``params`` that the history shows; the kind decides.
    describe: Callable[[Task], dict[str, Any]] = lambda task: {}
    # Called when a task of this kind is deleted or given up (clean saved files).
    cleanup: Callable[[Task], None] = lambda task: None

    def step_named(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def steps_from(self, name: str) -> tuple[Step, ...]:
        names = [s.name for s in self.steps]
        return self.steps[names.index(name) :] if name in names else self.steps


_KINDS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> TaskKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"Unknown task kind {name!r}") from None


def describe(task: Task) -> dict[str, Any]:
    kind = _KINDS.get(task.kind)
    return kind.describe(task) if kind else {}


# --- submitting ----------------------------------------------------------


def submit(kind: str, *, owner: Any, params: dict[str, Any]) -> Task:
    """Create a PENDING task and queue it, in one transaction."""
    get_kind(kind)
    with transaction.atomic():
        task = Task.objects.create(kind=kind, owner=owner, params=params)
        enqueue(task)
    from tasks_app import live

    transaction.on_commit(lambda: live.task_changed(task, created=True))
    return task


def enqueue(task: Task) -> None:
    """Queue a run of ``task`` on django.tasks; committed with the caller's transaction."""
    from tasks_app.tasks import run_task
    from tasks_app.worker import wake_workers

    run_task.enqueue(task.pk)
    transaction.on_commit(wake_workers)


def retry(task: Task, *, by: Any = None) -> None:
    """Run a failed or cancelled task again, from its checkpoint."""
    with transaction.atomic():
        task.retry()
        enqueue(task)
    who = getattr(by, "username", None)
    TaskLog(task).info(
        f"Retry requested{f' by {who}' if who else ''}; resuming at step {task.step or 'start'!r}."
    )


# --- running -------------------------------------------------------------


class _Heartbeat(threading.Thread):
    def __init__(self, task: Task, interval: float) -> None:
        super().__init__(name=f"heartbeat-{task.pk}", daemon=True)
        self.task = task
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                self.task.beat()
        finally:
            close_old_connections()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval + 1)


def run(task_id: int, worker_id: str, inputs: dict[str, Any] | None = None) -> str:
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
    kind = _KINDS.get(task.kind)
    log = TaskLog(task)
    if kind is None:
        log.error(f"This server does not know how to run tasks of kind {task.kind!r}.")
        task.fail(f"Unknown task kind {task.kind!r}")
        return task.status

    heartbeat = _Heartbeat(task, settings.TASK_HEARTBEAT_INTERVAL)
    heartbeat.start()
    ctx = StepContext(task=task, log=log, checkpoint=dict(task.checkpoint), inputs=inputs or {})
    try:
        for step in kind.steps_from(task.step):
            ctx.check_cancelled()
            task.save_checkpoint(step.name, ctx.checkpoint)
            step.run(ctx)
        task.save_checkpoint("", ctx.checkpoint)
        task.succeed()
        log.info("Task finished successfully.")
    except Cancelled:
        log.warning("Cancelled at the user's request.")
        task.mark_cancelled()
    except NeedsInput as exc:
        task.save_checkpoint(task.step, ctx.checkpoint)
        log.warning(str(exc), **exc.request)
        task.await_input()
    except TaskFailed as exc:
        log.error(str(exc))
        task.fail(str(exc))
    except IllegalTransition as exc:
        # Someone else moved the task (cancelled, reaped): they own it now.
        logger.warning("Task %s: %s", task_id, exc)
    except Exception as exc:
        logger.exception("Task %s crashed", task_id)
        log.error(
            f"Unexpected error: {type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=8),
        )
        with contextlib.suppress(IllegalTransition):
            task.fail(f"Unexpected error: {type(exc).__name__}: {exc}")
    finally:
        heartbeat.stop()
        ctx.inputs.clear()
    return task.status


def reap_lost_tasks(timeout: float | None = None) -> list[int]:
    """RUNNING tasks whose heartbeat stopped: requeue them or fail them.

    A task is requeued when the step it was in is safe to repeat; otherwise
    it fails with "worker lost", never staying RUNNING.
    """
    timeout = settings.TASK_HEARTBEAT_TIMEOUT if timeout is None else timeout
    handled = []
    for task in Task.objects.stale(timeout):
        kind = _KINDS.get(task.kind)
        step = kind.step_named(task.step) if kind else None
        # No step recorded yet: the worker died before doing anything.
        safe = kind is not None and (not task.step or (step is not None and step.repeatable))
        log = TaskLog(task)
        try:
            if safe:
                with transaction.atomic():
                    task.requeue()
                    enqueue(task)
                log.warning(
                    f"Worker lost during step {task.step or 'start'!r}; it is safe to repeat, so the task was queued again.",
                    worker=task.worker_id,
                )
            else:
                task.fail(f"Worker lost during step {task.step!r}")
                log.error(
                    f"Worker lost during step {task.step!r}; it is not safe to repeat automatically. Retry the task to run it again.",
                    worker=task.worker_id,
                )
        except IllegalTransition:
            continue
        handled.append(task.pk)
    return handled
