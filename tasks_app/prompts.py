"""A person's answers to a task awaiting input, and giving up on them.

A step raises ``NeedsInput`` (the runner opens an ``InputRequest``); the
answers come from the web page, the API or the terminal, are read by the
task's kind (``TaskKind.parse_answers``), checked here and by the kind
(``TaskKind.answer``), and resume the task exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tasks_app.kinds import field_id, find_kind, get_kind
from tasks_app.models import IllegalTransition, InputRequest, Status, Task
from tasks_app.queue import enqueue
from tasks_app.tasklog import TaskLog


class NotAwaitingInput(Exception):
    pass


class AlreadyAnswered(Exception):
    pass


class AnswerRejected(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("Some answers were missing or wrong.")
        self.errors = errors


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
        for fid in set(answers) & set(request.accepted) - known:
            answers.pop(fid)  # accepted in an earlier round: sent again, not asked again
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
            request.reopen(remaining, accepted=[f for f in given if f not in errors])
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
    kind = find_kind(task.kind)
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


def answer_task(task: Task, data: Mapping[str, Any], *, user: Any) -> Task:
    """``answer`` with answers read from a request's body (a form, a script's JSON, the
    terminal's) as the task's kind reads them. Raises ValueError for a body the kind
    cannot read, besides what ``answer`` raises."""
    request = task.pending_input
    kind = find_kind(task.kind)
    answers = kind.parse_answers(request, data) if request is not None and kind else {}
    return answer(task, answers, user=user)
