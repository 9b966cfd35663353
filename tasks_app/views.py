"""Task history, task page and actions. Thin: rules live on Task and engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from tasks_app import engine, logs
from tasks_app.models import IllegalTransition, Status, Task


def _statuses(request: HttpRequest) -> list[str]:
    return [s for s in request.GET.getlist("status") if s in Status.values]


def _cursor(request: HttpRequest) -> int | None:
    value = request.GET.get("before", "")
    return int(value) if value.isdigit() else None


def _limit(request: HttpRequest) -> int:
    value = request.GET.get("limit", "")
    if value.isdigit() and 0 < int(value) <= settings.API_MAX_LIMIT:
        return int(value)
    return settings.TASK_PAGE_SIZE


def history_page(statuses: list[str], before: int | None, limit: int) -> dict[str, Any]:
    """One page of the history, newest first, keyed by id (stable as tasks arrive)."""
    tasks = Task.objects.with_status(statuses).select_related("owner")
    if before is not None:
        tasks = tasks.filter(pk__lt=before)
    rows = list(tasks[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "rows": [row_context(task) for task in rows],
        "next_before": rows[-1].pk if has_more and rows else None,
        "statuses": statuses,
        "status_choices": Status.choices,
        "limit": limit,
    }


def history_context(request: HttpRequest) -> dict[str, Any]:
    return history_page(_statuses(request), _cursor(request), _limit(request))


def row_context(task: Task, *, oob: bool = False) -> dict[str, Any]:
    return {"task": task, "info": engine.describe(task), "oob": oob}


@require_GET
@vary_on_headers("HX-Request")
def task_table(request: HttpRequest) -> HttpResponse:
    """The history table for a status filter (htmx), or the page holding it."""
    if not request.htmx:
        return redirect(_migration_url(request))
    return render(request, "tasks_app/_task_table.html", history_context(request))


@require_GET
@vary_on_headers("HX-Request")
def task_rows(request: HttpRequest) -> HttpResponse:
    """Older rows for "Load more" (htmx), or the same page as a full page."""
    context = history_context(request)
    if request.htmx:
        return render(request, "tasks_app/_task_rows.html", context)
    return render(request, "tasks_app/history.html", context)


def _migration_url(request: HttpRequest) -> str:
    query = request.GET.urlencode()
    return reverse("migration") + (f"?{query}" if query else "")


def _get_task(task_id: int) -> Task:
    return get_object_or_404(Task.objects.select_related("owner"), pk=task_id)


def _get_task_for_change(request: HttpRequest, task_id: int) -> Task:
    task = _get_task(task_id)
    if not task.can_be_changed_by(request.user):
        raise Http404("No such task")
    return task


@require_GET
def task_detail(request: HttpRequest, task_id: int) -> HttpResponse:
    task = _get_task(task_id)
    context = log_context(task, logs.LogParams())
    return render(
        request,
        "tasks_app/task_detail.html",
        {**context, **_kind_page(task), "can_change": task.can_be_changed_by(request.user)},
    )


def _kind_page(task: Task) -> dict[str, Any]:
    """The section the task's kind adds to its page (a plan, a report…), if any."""
    try:
        page = engine.get_kind(task.kind).page
    except LookupError:
        page = None
    if page is None:
        return {}
    template, details = page
    return {"kind_template": template, "details": details(task)}


# --- the log viewer --------------------------------------------------------


def _log_query(params: logs.LogParams, **cursor: int | None) -> str:
    query = params.filter_query()
    query.update({k: str(v) for k, v in cursor.items() if v is not None})
    return urlencode(query)


def log_context(
    task: Task, params: logs.LogParams, errors: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """One page of a task's log and the links around it (viewer, page, fragments)."""
    page = logs.read_page(task.pk, params)
    return {
        **row_context(task),
        "page": page,
        "params": params,
        "errors": errors or {},
        "level_names": [level.value for level in logs.LevelName],
        "filter_query": _log_query(params),
        "earlier_query": _log_query(params, before=page.previous),
        "newer_query": _log_query(params, after=page.next),
    }


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def task_logs(request: HttpRequest, task_id: int) -> HttpResponse:
    """A task's log: the modal (htmx, from a row), the viewer alone (htmx,
    its filter and refresh), or a page that works without JavaScript."""
    task = _get_task(task_id)
    context = log_context(task, *logs.parse_params(request.GET))
    if not request.htmx:
        template = "tasks_app/task_logs.html"
    elif request.htmx.target == f"log-viewer-{task.pk}":
        template = "tasks_app/_log_viewer.html"
    else:
        template = "tasks_app/_log_dialog.html"
    return render(request, template, context, status=400 if context["errors"] else 200)


@require_GET
@vary_on_headers("HX-Request")
def task_log_entries(request: HttpRequest, task_id: int) -> HttpResponse:
    """Earlier (``before``) or newer (``after``) entries for the viewer (htmx)."""
    if not request.htmx:
        query = request.GET.urlencode()
        return redirect(reverse("task-logs", args=[task_id]) + (f"?{query}" if query else ""))
    context = log_context(_get_task(task_id), *logs.parse_params(request.GET))
    # Newer entries are appended below what the viewer shows: no "earlier" link.
    context["show_earlier"] = context["params"].after is None
    return render(
        request, "tasks_app/_log_page.html", context, status=400 if context["errors"] else 200
    )


@require_GET
def task_log_download(request: HttpRequest, task_id: int) -> HttpResponse:
    """The whole log (or what the filters keep) as text or JSON Lines, streamed."""
    task = _get_task(task_id)
    fmt = request.GET.get("format", "text")
    params, errors = logs.parse_params(request.GET)
    if fmt not in logs.EXPORT_FORMATS or errors:
        return HttpResponseBadRequest(
            "format must be text or jsonl; level one of DEBUG, INFO, WARNING, ERROR."
        )
    content_type, extension = logs.EXPORT_FORMATS[fmt]
    chunks: Iterator[str] | AsyncIterator[str] = logs.export(task.pk, params, fmt)
    if isinstance(request, ASGIRequest):
        chunks = _async_chunks(chunks)
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(
        True, f"task-{task.pk}-log.{extension}"
    )
    return response


async def _async_chunks(chunks: Iterator[str]) -> AsyncIterator[str]:
    """Under ASGI, Django reads a sync iterator whole before sending anything:
    hand it over a chunk at a time instead (each chunk is one keyset query)."""
    step = sync_to_async(next)
    while (chunk := await step(chunks, None)) is not None:
        yield chunk


def _after_action(request: HttpRequest, task: Task) -> HttpResponse:
    if request.htmx:
        task.refresh_from_db()
        return render(request, "tasks_app/_task_row.html", row_context(task))
    next_url = request.POST.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("task-detail", task_id=task.pk)


@require_POST
def task_cancel(request: HttpRequest, task_id: int) -> HttpResponse:
    task = _get_task_for_change(request, task_id)
    try:
        task.cancel()
    except IllegalTransition:
        messages.error(
            request,
            f"Task #{task.pk} is {task.get_status_display().lower()}; it cannot be cancelled.",
        )
    return _after_action(request, task)


@require_POST
def task_retry(request: HttpRequest, task_id: int) -> HttpResponse:
    task = _get_task_for_change(request, task_id)
    try:
        engine.retry(task, by=request.user)
    except IllegalTransition:
        messages.error(
            request,
            f"Task #{task.pk} is {task.get_status_display().lower()}; only failed or cancelled tasks can be retried.",
        )
    return _after_action(request, task)


def _input_context(task: Task, **extra: Any) -> dict[str, Any]:
    request_ = task.pending_input
    return {**row_context(task), "input_request": request_, **extra}


@require_GET
@vary_on_headers("HX-Request")
def task_input(request: HttpRequest, task_id: int) -> HttpResponse:
    """The prompt of a task awaiting input: a modal (htmx) or a page."""
    task = _get_task_for_change(request, task_id)
    template = "tasks_app/_input_dialog.html" if request.htmx else "tasks_app/input.html"
    return render(request, template, _input_context(task))


@require_POST
@sensitive_post_parameters()
def task_answer(request: HttpRequest, task_id: int) -> HttpResponse:
    task = _get_task_for_change(request, task_id)
    answers: dict[str, Any] = {}
    pending = task.pending_input
    for field in pending.fields if pending else []:
        fid = engine.field_id(field)
        if field.get("input") == "confirm":
            if fid in request.POST:
                answers[fid] = request.POST.get(fid) == "on"
        elif fid in request.POST:
            answers[fid] = request.POST[fid]
    template = "tasks_app/_input_form.html" if request.htmx else "tasks_app/input.html"
    try:
        engine.answer(task, answers, user=request.user)
    except (engine.NotAwaitingInput, engine.AlreadyAnswered) as exc:
        task.refresh_from_db()
        return render(
            request,
            template,
            _input_context(task, notice=str(exc)),
            status=409 if not request.htmx else 200,
        )
    except engine.AnswerRejected:
        task.refresh_from_db()
        return render(
            request, template, _input_context(task), status=400 if not request.htmx else 200
        )
    if request.htmx:
        task.refresh_from_db()
        response = render(request, "tasks_app/_input_form.html", _input_context(task, resumed=True))
        return trigger_client_event(response, "task-resumed", {"id": task.pk})
    messages.success(request, f"Task #{task.pk} resumed.")
    return redirect("task-detail", task_id=task.pk)
