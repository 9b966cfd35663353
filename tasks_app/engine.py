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
from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from tasks_app.models import IllegalTransition, InputRequest, Status, Task
from tasks_app.signals import task_changed
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


class RunLost(Exception):
    """This run no longer owns its task (its heartbeat found it reaped or moved)."""


@dataclass
class StepContext:
    task: Task
    log: TaskLog
    checkpoint: dict[str, Any]
    # Set by the heartbeat when this run no longer owns the task (reaped, or
    # moved by someone else): the step must stop at its next check.
    lost: threading.Event = field(default_factory=threading.Event)

    def check_cancelled(self) -> None:
        if self.lost.is_set():
            raise RunLost()
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
    # Extra keys of one task's JSON (``GET /api/tasks/{id}``), e.g. a plan and a report.
    details: Callable[[Task], dict[str, Any]] = lambda task: {}
    # What the task page shows besides: (template, context of a task as ``details``).
    page: tuple[str, Callable[[Task], dict[str, Any]]] | None = None

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
        task_changed.send(sender=Task, task=task, created=True)  # published at commit
    return task


def enqueue(task: Task) -> None:
    """Queue a run of ``task`` on django.tasks; committed with the caller's transaction."""
    from tasks_app.tasks import run_task
    from tasks_app.worker import notify_workers, wake_workers

    run_task.enqueue(task.pk)
    # Idle workers of this process at once, and of other processes too.
    notify_workers()
    transaction.on_commit(wake_workers)


WORKER_LOST = "Worker lost during step"


def can_resume(task: Task) -> bool:
    """May a retry start at the task's checkpoint, or must it start over?

    Not when this server does not know the kind or the step any more (the
    code changed), nor when a worker died inside a step that is not safe to
    repeat: what that step left behind is unknown, so the kind's steps run
    again from the first.
    """
    kind = _KINDS.get(task.kind)
    if kind is None:
        return False
    if not task.step:
        return True
    step = kind.step_named(task.step)
    if step is None:
        return False
    return step.repeatable or not task.error.startswith(WORKER_LOST)


def retry(task: Task, *, by: Any = None) -> None:
    """Run a failed or cancelled task again: from its checkpoint when that is
    safe (``can_resume``), otherwise from its first step on a clean checkpoint."""
    from_start = not can_resume(task)
    previous = Task(
        pk=task.pk, kind=task.kind, params=task.params, checkpoint=dict(task.checkpoint)
    )
    with transaction.atomic():
        task.retry(from_start=from_start)
        enqueue(task)
    who = f" by {by.username}" if getattr(by, "username", None) else ""
    if from_start:
        kind = _KINDS.get(task.kind)
        if kind:
            kind.cleanup(previous)  # the files of the abandoned attempt
        TaskLog(task).info(f"Retry from the start requested{who}.")
    else:
        TaskLog(task).info(f"Retry requested{who}; resuming at step {task.step or 'start'!r}.")


# --- running -------------------------------------------------------------


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
    kind = _KINDS.get(task.kind)
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
        task.save_checkpoint("", ctx.checkpoint)
        task.succeed()
        log.info("Task finished successfully.")
    except Cancelled:
        log.warning("Cancelled at the user's request.")
        task.mark_cancelled()
    except NeedsInput as exc:
        task.save_checkpoint(task.step, ctx.checkpoint)
        if Task.objects.filter(pk=task.pk, cancel_requested=True).exists():
            # Cancelled while the step ran: honour that rather than ask.
            log.warning("Cancelled at the user's request.")
            task.mark_cancelled()
        else:
            _ask(task, log, exc)
    except TaskFailed as exc:
        log.error(str(exc))
        task.fail(str(exc))
    except (IllegalTransition, RunLost) as exc:
        # Someone else moved the task (cancelled, reaped): they own it now.
        logger.warning("Task %s: %s", task_id, exc or "this run lost the task")
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


def _validate(field: dict[str, Any], value: Any) -> str:
    """The error for ``value`` (None: not answered), or ''."""
    if field.get("input") == "confirm":
        return "" if value is True else "Confirm, or cancel the task."
    if field.get("input") == "choice":
        options = [option[0] for option in field.get("options", [])]
        return "" if value in options else "Pick one of the choices."
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
        request = InputRequest.objects.filter(task=task).pending().first()
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
            remaining.append(dict(field, error=errors.get(fid) or _validate(field, None)))
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


def _expire(task: Task, request: InputRequest, error: str, message: str) -> bool:
    request.close(InputRequest.State.EXPIRED)
    try:
        task.fail(error)
    except IllegalTransition:
        return False
    kind = _KINDS.get(task.kind)
    if kind:
        kind.cleanup(task)
    TaskLog(task).error(message, requested_at=request.created_at.isoformat())
    return True


def expire_input_requests() -> list[int]:
    """Fail tasks whose question stayed unanswered past INPUT_REQUEST_EXPIRY."""
    expired = []
    days = settings.INPUT_REQUEST_EXPIRY / 86400
    for request in InputRequest.objects.filter(
        state="OPEN", expires_at__lt=timezone.now()
    ).select_related("task"):
        if _expire(
            request.task,
            request,
            f"Expired: nobody answered the input request within {days:g} day(s).",
            f"Expired after waiting {days:g} day(s) for input; saved files were removed.",
        ):
            expired.append(request.task_id)
    return expired


def expire_input(task: Task, *, by: Any = None) -> bool:
    """Give up waiting for this task's answer now (staff triage); False if it was not waiting."""
    request = InputRequest.objects.filter(task=task, state="OPEN").first()
    task.refresh_from_db()
    if request is None or task.status != Status.AWAITING_INPUT:
        return False
    who = getattr(by, "username", None) or "staff"
    return _expire(
        task,
        request,
        f"Expired: {who} closed the input request.",
        f"The input request was expired by {who}; saved files were removed.",
    )


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
    kind = _KINDS.get(task.kind)
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
