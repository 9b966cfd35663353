"""JSON API for tasks (mounted by the project's NinjaAPI under /api/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Body, Query, Router, Schema
from ninja import Status as Reply
from ninja.errors import HttpError
from pydantic import BaseModel, ConfigDict, Field

from tasks_app import engine, logs
from tasks_app.access import task_for_change
from tasks_app.kinds import get_kind
from tasks_app.models import IllegalTransition, Status, Task
from tasks_app.presenter import task_json
from tasks_app.prompts import answer_task

router = Router(tags=["tasks"])


class InputFieldOut(BaseModel):
    """Besides these keys, a field has those its task's kind documents."""

    model_config = ConfigDict(extra="allow")

    key: str = Field(description="What the field is about, e.g. a bundle path")
    type: str = Field(description="What is asked; answers are keyed by `type:key`")
    label: str
    error: str
    options: list[list[str]] | None = Field(
        None, description="For a choice: [value, description] pairs; answer with a value."
    )
    subject: str | None = Field(None, description="What the field is about, in words")
    detail: str | None = Field(None, description="More about it, e.g. a masked address")


class InputRequestOut(BaseModel):
    kinds: list[str]
    message: str
    fields: list[InputFieldOut]
    created_at: datetime
    expires_at: datetime


class TaskOut(BaseModel):
    """Besides these keys, a task has those its kind documents (README, "API")."""

    model_config = ConfigDict(extra="allow")

    id: int
    kind: str
    title: str = Field(description="The kind of task, in words")
    status: Status
    version: int = Field(
        description="Grows with every change of the task: of two answers or live messages "
        "about one task, the one with the higher version is the newer."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worked_seconds: float = Field(
        description="Working time of this attempt (running), in seconds; grows while it runs"
    )
    waited_seconds: float = Field(
        description="Time this attempt waited for a person's answer (requires input), in "
        "seconds; not part of worked_seconds"
    )
    error: str
    owner: str | None
    input_request: InputRequestOut | None = None


class TaskPage(Schema):
    items: list[TaskOut]
    total: int
    limit: int
    offset: int


class TaskListParams(Schema):
    limit: int = Field(
        default_factory=lambda: settings.TASK_PAGE_SIZE, ge=1, le=settings.API_MAX_LIMIT
    )
    offset: int = Field(0, ge=0, le=10_000_000)
    status: list[Status] = Field(default_factory=list)


class LogEntryOut(Schema):
    id: int
    timestamp: datetime
    level: str = Field(description="DEBUG, INFO, WARNING or ERROR")
    message: str
    context: dict[str, Any]


class LogPageOut(Schema):
    task_id: int
    entries: list[LogEntryOut] = Field(description="Ascending by id (oldest first).")
    next: int | None = Field(
        description="Pass as `after` for newer entries; null when there are none yet "
        "(follow a running task with `after=<id of the last entry>`)."
    )
    previous: int | None = Field(
        description="Pass as `before` for the older page; null at the start of the log."
    )


class ErrorOut(Schema):
    detail: str
    errors: dict[str, list[str]] | None = None


@router.get("/tasks", response=TaskPage, summary="List tasks, newest first")
def list_tasks(request: HttpRequest, filters: Query[TaskListParams]) -> dict[str, Any]:
    tasks = (
        Task.objects.with_status(list(filters.status))
        .select_related("owner")
        .prefetch_related("input_requests")
    )
    window = tasks[filters.offset : filters.offset + filters.limit]
    return {
        "items": [task_json(t, details=False) for t in window],
        "total": tasks.count(),
        "limit": filters.limit,
        "offset": filters.offset,
    }


@router.get("/tasks/{task_id}", response={200: TaskOut, 404: ErrorOut}, summary="One task")
def get_task(request: HttpRequest, task_id: int) -> dict[str, Any]:
    return task_json(get_object_or_404(Task.objects.select_related("owner"), pk=task_id))


@router.post(
    "/tasks/{task_id}/cancel",
    response={200: TaskOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Cancel a pending, running or waiting task",
)
def cancel_task(request: HttpRequest, task_id: int) -> Any:
    task = task_for_change(request.user, task_id)
    try:
        engine.cancel(task, by=request.user)
    except IllegalTransition as exc:
        raise HttpError(409, str(exc)) from None
    task.refresh_from_db()
    return task_json(task)


@router.post(
    "/tasks/{task_id}/retry",
    response={202: TaskOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Run a failed or cancelled task again from its checkpoint",
)
def retry_task(request: HttpRequest, task_id: int) -> Any:
    task = task_for_change(request.user, task_id)
    try:
        engine.retry(task, by=request.user)
    except IllegalTransition as exc:
        raise HttpError(409, str(exc)) from None
    task.refresh_from_db()
    return Reply(202, task_json(task))


@router.post(
    "/tasks/{task_id}/resume",
    response={202: TaskOut, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Answer a task's input request and resume it",
    description="The body holds the answers to the fields of `input_request`, as the task's "
    'kind reads them (README, "API"). Each answer is checked before the task resumes; wrong '
    "ones come back as 400 with an error per key. 409 when the task is not waiting for input "
    "or another submission already answered it.",
)
def resume_task(request: HttpRequest, task_id: int, payload: Body[dict[str, Any]]) -> Any:
    task = task_for_change(request.user, task_id)
    try:
        answer_task(task, payload, user=request.user)
    except (engine.NotAwaitingInput, engine.AlreadyAnswered) as exc:
        raise HttpError(409, str(exc)) from None
    except engine.AnswerRejected as exc:
        key = get_kind(task.kind).answer_key
        errors = {key(fid): [message] for fid, message in exc.errors.items()}
        return Reply(400, {"detail": "Some answers were missing or wrong.", "errors": errors})
    except ValueError as exc:
        return Reply(400, {"detail": f"Answers the task cannot read: {exc}"})
    finally:
        payload.clear()
    task.refresh_from_db()
    return Reply(202, task_json(task))


@router.get(
    "/tasks/{task_id}/logs",
    response={200: LogPageOut, 400: ErrorOut, 404: ErrorOut},
    summary="A page of a task's log",
    description="Without `after`/`before`: the newest page. Cursors are entry ids, so pages "
    "neither skip nor repeat entries while the task keeps writing. `level` is a minimum level; "
    "`search` matches the message or the context, in any case.",
)
def task_logs(request: HttpRequest, task_id: int, filters: Query[logs.LogParams]) -> Any:
    if not Task.objects.filter(pk=task_id).exists():
        raise Http404("No such task")
    page = logs.read_page(task_id, filters)
    return {
        "task_id": task_id,
        "entries": [e.as_json() for e in page.entries],
        "next": page.next,
        "previous": page.previous,
    }
