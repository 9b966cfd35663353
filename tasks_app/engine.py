"""The task engine's public face: submit and retry here; each other job in its module.

- ``kinds``: what a kind of task is (steps, summary, answers), the registry;
- ``queue`` and ``tasks``: a queued run; ``wakeup``: waking the workers;
- ``runner``: running the steps with a heartbeat; ``prompts``: a person's answers;
- ``reaper``: tasks whose worker was lost; ``worker``: the worker loops;
- ``presenter``: a task as markup or JSON; ``live``: pushing it to browsers.

The names most callers need are re-exported here.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from tasks_app.kinds import (
    Cancelled,
    NeedsInput,
    RunLost,
    Step,
    StepContext,
    Summary,
    TaskFailed,
    TaskKind,
    field_id,
    find_kind,
    get_kind,
    register,
)
from tasks_app.models import IllegalTransition, Status, Task
from tasks_app.prompts import (
    AlreadyAnswered,
    AnswerRejected,
    NotAwaitingInput,
    answer,
    expire_input,
    expire_input_requests,
)
from tasks_app.queue import enqueue
from tasks_app.reaper import reap_lost_tasks, release_tasks
from tasks_app.runner import WORKER_LOST, run
from tasks_app.signals import task_changed
from tasks_app.tasklog import TaskLog

__all__ = [
    "AlreadyAnswered",
    "AnswerRejected",
    "Cancelled",
    "IllegalTransition",
    "NeedsInput",
    "NotAwaitingInput",
    "RetryRefused",
    "RunLost",
    "Step",
    "StepContext",
    "Summary",
    "TaskFailed",
    "TaskKind",
    "answer",
    "can_resume",
    "enqueue",
    "expire_input",
    "expire_input_requests",
    "field_id",
    "find_kind",
    "get_kind",
    "reap_lost_tasks",
    "register",
    "release_tasks",
    "retry",
    "run",
    "submit",
]


def submit(kind: str, *, owner: Any, params: dict[str, Any]) -> Task:
    """Create a PENDING task and queue it, in one transaction."""
    get_kind(kind)
    with transaction.atomic():
        task = Task.objects.create(kind=kind, owner=owner, params=params)
        enqueue(task)
        task_changed.send(sender=Task, task=task, created=True)  # published at commit
    return task


class RetryRefused(IllegalTransition):
    """The task's kind says it must not run again (the sentence says why)."""


def can_resume(task: Task) -> bool:
    """May a retry start at the task's checkpoint, or must it start over?

    Not when this server does not know the kind or the step any more (the
    code changed), nor when a worker died inside a step that is not safe to
    repeat: what that step left behind is unknown, so the kind's steps run
    again from the first.
    """
    kind = find_kind(task.kind)
    if kind is None:
        return False
    if not task.step:
        return True
    step = kind.step_named(task.step)
    if step is None:
        return False
    return step.repeatable or not task.error.startswith(WORKER_LOST)


def cancel(task: Task, *, by: Any = None) -> None:
    """Cancel a task for a person (page, API), and say so in its log: a pending or
    waiting task ends now, a running one stops after its step (the runner logs it).
    Raises IllegalTransition when its status does not allow it."""
    was = task.status
    task.cancel()
    who = f" by {by.get_username()}" if by is not None and hasattr(by, "get_username") else ""
    if was == Status.AWAITING_INPUT:
        TaskLog(task).warning(f"Cancelled{who} while it waited for input.")
    elif was == Status.PENDING:
        TaskLog(task).warning(f"Cancelled{who} before it started.")
    else:
        TaskLog(task).info(f"Cancel requested{who}: it stops after the step it is in.")


def retry(task: Task, *, by: Any = None) -> None:
    """Run a failed or cancelled task again: from its checkpoint when that is
    safe (``can_resume``), otherwise from its first step on a clean checkpoint."""
    kind = find_kind(task.kind)
    refused = kind.retry_refused(task) if kind else ""
    if refused:
        raise RetryRefused(f"Task #{task.pk} cannot run again: {refused}")
    from_start = not can_resume(task)
    previous = Task(
        pk=task.pk, kind=task.kind, params=task.params, checkpoint=dict(task.checkpoint)
    )
    with transaction.atomic():
        task.retry(from_start=from_start)
        enqueue(task)
    who = f" by {by.username}" if getattr(by, "username", None) else ""
    if from_start:
        kind = find_kind(task.kind)
        if kind:
            kind.cleanup(previous)  # the files of the abandoned attempt
        TaskLog(task).info(f"Retry from the start requested{who}.")
    else:
        TaskLog(task).info(f"Retry requested{who}; resuming at step {task.step or 'start'!r}.")
