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
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from tasks_app.models import IllegalTransition, InputRequest, Status, Task
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


def _no_answers(task: Task, request: InputRequest, answers: dict[str, Any]) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class TaskKind:
    name: str
    label: str
    steps: tuple[Step, ...]
    # Keys from ``params`` that the history shows; the kind decides.
    describe: Callable[[Task], dict[str, Any]] = lambda task: {}
    # Called when a task of this kind is deleted or given up (clean saved files).
    cleanup: Callable[[Task], None] = lambda task: None
    # Checks and applies a person's answers to an input request; returns
    # {field id: error} for the answers that were wrong. Runs in the web
    # process, so secrets never travel to a worker.
    answer: Callable[[Task, InputRequest, dict[str, Any]], dict[str, str]] = _no_answers

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
        _ask(task, log, exc)
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


# --- input from a person --------------------------------------------------


class NotAwaitingInput(Exception):
    pass


class AlreadyAnswered(Exception):
    pass


class AnswerRejected(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("Some answers were missing or wrong.")
        self.errors = errors


def field_id(field: dict[str, Any]) -> str:
    return f"{field['type']}:{field['key']}"


def _ask(task: Task, log: TaskLog, exc: NeedsInput) -> None:
    fields = [dict(f, error=f.get("error", "")) for f in exc.request.get("fields", [])]
    with transaction.atomic():
        InputRequest.objects.filter(task=task, state__in=["OPEN", "ANSWERING"]).update(
            state="CLOSED"
        )
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


def _validate(field: dict[str, Any], value: Any) -> str:
    if field.get("input") == "confirm":
        return "" if value is True else "Confirm, or cancel the task."
    if value == "" and field.get("allow_empty"):
        return ""
    if not isinstance(value, str) or value == "":
        return "Required."
    limit = int(field.get("max_length", 1024))
    if len(value) > limit:
        return f"At most {limit} characters."
    return ""


def answer(task: Task, answers: dict[str, Any], *, user: Any) -> Task:
    """Check a person's answers and resume the task, exactly once.

    ``answers`` maps field ids (``type:key``) to values; it is emptied before
    returning, whatever happens, so no secret outlives the request. Raises
    NotAwaitingInput, AlreadyAnswered (another submission won) or
    AnswerRejected with per-field errors (the request stays open, asking only
    for what is still missing).
    """
    try:
        request = InputRequest.objects.filter(task=task, state__in=["OPEN", "ANSWERING"]).first()
        task.refresh_from_db()
        if task.status != Status.AWAITING_INPUT or request is None:
            raise NotAwaitingInput(f"Task #{task.pk} is not waiting for input.")
        if not request.claim():
            raise AlreadyAnswered(f"Task #{task.pk} was already answered.")
        known = {field_id(f) for f in request.fields}
        unknown = {k: "Not asked for." for k in answers if k not in known}
        if unknown:
            request.reopen(request.fields)
            raise AnswerRejected(unknown)
        errors = {}
        given = {}
        for field in request.fields:
            problem = _validate(field, answers.get(field_id(field)))
            if problem and field_id(field) in answers:
                errors[field_id(field)] = problem
            elif not problem:
                given[field_id(field)] = answers[field_id(field)]
        try:
            errors.update(get_kind(task.kind).answer(task, request, given) if given else {})
        except Exception:
            request.reopen(request.fields)
            raise
        remaining = []
        for field in request.fields:
            fid = field_id(field)
            if fid in given and fid not in errors:
                continue  # applied: never asked again
            missing = (
                "Confirm, or cancel the task." if field.get("input") == "confirm" else "Required."
            )
            remaining.append(dict(field, error=errors.get(fid) or missing))
        if remaining:
            request.reopen(remaining)
            raise AnswerRejected({field_id(f): f["error"] for f in remaining})
        with transaction.atomic():
            request.close(InputRequest.State.ANSWERED, user)
            task.resume()
            enqueue(task)
        TaskLog(task).info(
            f"Input received from {getattr(user, 'username', 'a user')}; resuming at step {task.step!r}.",
            answered=[f"{f['type']} for {f['key']}" for f in request.fields],
        )
        return task
    finally:
        answers.clear()


def expire_input_requests() -> list[int]:
    """Fail tasks whose question stayed unanswered past INPUT_REQUEST_EXPIRY."""
    expired = []
    for request in InputRequest.objects.filter(
        state="OPEN", expires_at__lt=timezone.now()
    ).select_related("task"):
        task = request.task
        request.close(InputRequest.State.EXPIRED)
        days = settings.INPUT_REQUEST_EXPIRY / 86400
        try:
            task.fail(f"Expired: nobody answered the input request within {days:g} day(s).")
        except IllegalTransition:
            continue
        kind = _KINDS.get(task.kind)
        if kind:
            kind.cleanup(task)
        TaskLog(task).error(
            f"Expired after waiting {days:g} day(s) for input; saved files were removed.",
            requested_at=request.created_at.isoformat(),
        )
        expired.append(task.pk)
    return expired


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
