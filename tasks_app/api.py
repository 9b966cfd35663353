"""JSON API for tasks (mounted by the project's NinjaAPI under /api/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Query, Router, Schema
from ninja import Status as Reply
from ninja.errors import HttpError
from pydantic import Field

from tasks_app import engine, logs
from tasks_app.models import IllegalTransition, Status, Task

router = Router(tags=["tasks"])


class InputFieldOut(Schema):
    key: str = Field(description="Superset's bundle path, e.g. databases/analytics.yaml")
    type: str = Field(
        description="password, ssh_password, ssh_private_key, ssh_private_key_password or overwrite"
    )
    label: str
    database_name: str | None
    uri_masked: str | None
    error: str
    options: list[list[str]] | None = Field(
        None, description="For a choice: [value, description] pairs; answer with a value."
    )
    dashboard: str | None = None
    slug: str | None = None
    target_dashboard: dict[str, Any] | None = None


class InputRequestOut(Schema):
    kinds: list[str]
    message: str
    fields: list[InputFieldOut]
    created_at: datetime
    expires_at: datetime


class TaskOut(Schema):
    id: int
    kind: str
    status: Status
    version: int = Field(
        description="Grows with every change of the task: of two answers or live messages "
        "about one task, the one with the higher version is the newer."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    source: dict[str, Any] | None = None
    target: dict[str, Any] | None = None
    dashboards: list[dict[str, Any]] = []
    overwrite: bool | None = None
    error: str
    owner: str | None
    input_request: InputRequestOut | None = None
    plan: dict[str, Any] | None = Field(
        None, description="What the task will do, asset by asset (one task's answer only)."
    )
    report: dict[str, Any] | None = Field(
        None, description="What the task did, checked afterwards (one task's answer only)."
    )


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


def input_request_json(task: Task) -> dict[str, Any] | None:
    request = task.pending_input
    if request is None:
        return None
    fields = [
        {
            "key": f["key"],
            "type": f["type"],
            "label": f.get("label", ""),
            "database_name": f.get("database_name"),
            "uri_masked": f.get("uri_masked"),
            "error": f.get("error", ""),
            **{k: f[k] for k in ("options", "dashboard", "slug", "target_dashboard") if k in f},
        }
        for f in request.fields
    ]
    return {
        "kinds": request.kinds,
        "message": request.message,
        "fields": fields,
        "created_at": request.created_at,
        "expires_at": request.expires_at,
    }


def task_json(task: Task, *, details: bool = True) -> dict[str, Any]:
    """A task as the API answers it; ``details`` adds what its kind keeps besides
    (a query or two: left out of lists)."""
    params = task.params or {}
    return {
        "id": task.pk,
        "kind": task.kind,
        "status": task.status,
        "version": task.version,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "source": params.get("source"),
        "target": params.get("target"),
        "dashboards": params.get("dashboards", []),
        "overwrite": params.get("overwrite"),
        "error": task.error,
        "owner": task.owner.get_username() if task.owner_id else None,
        "input_request": input_request_json(task),
        **(_kind_details(task) if details else {}),
    }


def _kind_details(task: Task) -> dict[str, Any]:
    try:
        return engine.get_kind(task.kind).details(task)
    except LookupError:
        return {}


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


def _task_for_change(request: HttpRequest, task_id: int) -> Task:
    task = get_object_or_404(Task.objects.select_related("owner"), pk=task_id)
    if not task.can_be_changed_by(request.user):
        raise HttpError(403, "Only the task's owner or staff may change it.")
    return task


@router.post(
    "/tasks/{task_id}/cancel",
    response={200: TaskOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut},
    summary="Cancel a pending, running or waiting task",
)
def cancel_task(request: HttpRequest, task_id: int) -> Any:
    task = _task_for_change(request, task_id)
    try:
        task.cancel()
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
    task = _task_for_change(request, task_id)
    try:
        engine.retry(task, by=request.user)
    except IllegalTransition as exc:
        raise HttpError(409, str(exc)) from None
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
