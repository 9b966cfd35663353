"""Task history, task page and actions. Thin: rules live on Task and engine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.core.handlers.asgi import ASGIRequest
from django.http import (
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

from tasks_app import engine, logs, presenter
from tasks_app.access import task_for_change
from tasks_app.htmx import Rendered, for_htmx
from tasks_app.models import IllegalTransition, Status, Task
from tasks_app.prompts import answer_task


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


def history_context(request: HttpRequest) -> dict[str, Any]:
    return presenter.history_page(_statuses(request), _cursor(request), _limit(request))


def _history_page(request: HttpRequest) -> HttpResponse:
    query = request.GET.urlencode()
    return redirect(reverse("home") + (f"?{query}" if query else ""))


@require_GET
@for_htmx(page=_history_page, fragment="tasks_app/_task_table.html")
def task_table(request: HttpRequest) -> Rendered:
    """The history table for a status filter (htmx), or the page holding it; the
    address bar follows the filter, so the view can be reloaded or shared."""
    statuses = _statuses(request)
    query = urlencode([("status", s) for s in statuses])
    return Rendered(
        history_context(request),
        headers={"HX-Push-Url": reverse("home") + (f"?{query}" if query else "")},
    )


@require_GET
@for_htmx(page="tasks_app/history.html", fragment="tasks_app/_task_rows.html")
def task_rows(request: HttpRequest) -> dict[str, Any]:
    """Older rows for "Load more" (htmx), or the same page as a full page."""
    return history_context(request)


def _get_task(task_id: int) -> Task:
    return get_object_or_404(Task.objects.select_related("owner"), pk=task_id)


@require_GET
def task_detail(request: HttpRequest, task_id: int) -> HttpResponse:
    task = _get_task(task_id)
    context = presenter.page_context(task, can_change=task.can_be_changed_by(request.user))
    return render(request, "tasks_app/task_detail.html", context)


# --- the log viewer --------------------------------------------------------


@require_GET
@for_htmx(page="tasks_app/task_logs.html", fragment="tasks_app/_log_dialog.html")
def task_logs(request: HttpRequest, task_id: int) -> Rendered:
    """A task's log: the modal (htmx, from a row), the viewer alone (htmx,
    its filter and refresh), or a page that works without JavaScript."""
    task = _get_task(task_id)
    context = presenter.log_context(task, *logs.parse_params(request.GET))
    viewer = request.htmx and request.htmx.target == f"log-viewer-{task.pk}"
    return Rendered(
        context,
        status=400 if context["errors"] else 200,
        fragment="tasks_app/_log_viewer.html" if viewer else None,
    )


def _log_page(request: HttpRequest, task_id: int) -> HttpResponse:
    query = request.GET.urlencode()
    return redirect(reverse("task-logs", args=[task_id]) + (f"?{query}" if query else ""))


@require_GET
@for_htmx(page=_log_page, fragment="tasks_app/_log_page.html")
def task_log_entries(request: HttpRequest, task_id: int) -> Rendered:
    """Earlier (``before``) or newer (``after``) entries for the viewer (htmx)."""
    context = presenter.log_context(_get_task(task_id), *logs.parse_params(request.GET))
    # Newer entries are appended below what the viewer shows: no "earlier" link.
    context["show_earlier"] = context["params"].after is None
    return Rendered(context, status=400 if context["errors"] else 200)


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


def _after_action(request: HttpRequest, task: Task) -> Rendered:
    """The task's row again (htmx), else back where the action came from."""

    def back() -> HttpResponse:
        next_url = request.POST.get("next", "")
        if next_url and url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}
        ):
            return redirect(next_url)
        return redirect("task-detail", task_id=task.pk)

    task.refresh_from_db()
    return Rendered(presenter.row_context(task), otherwise=back)


def _act(request: HttpRequest, task_id: int, act: Any, refused: str, done: str) -> Rendered:
    """Cancel or retry: the action, or why its status does not allow it."""
    task = task_for_change(request.user, task_id)
    try:
        act(task)
    except engine.RetryRefused as exc:
        messages.error(request, str(exc))
    except IllegalTransition:
        status = task.get_status_display().lower()
        messages.error(request, f"Task #{task.pk} is {status}; {refused}.")
    else:
        if not request.htmx:  # a page comes next: say what happened there
            task.refresh_from_db()
            if task.status == "RUNNING" and task.cancel_requested:
                done = "stops after the step it is in"
            messages.success(request, f"Task #{task.pk} {done}.")
    return _after_action(request, task)


@require_POST
@for_htmx(page="tasks_app/task_detail.html", fragment="tasks_app/_task_row.html")
def task_cancel(request: HttpRequest, task_id: int) -> Rendered:
    return _act(
        request,
        task_id,
        lambda task: engine.cancel(task, by=request.user),
        "it cannot be cancelled",
        "cancelled",
    )


@require_POST
@for_htmx(page="tasks_app/task_detail.html", fragment="tasks_app/_task_row.html")
def task_retry(request: HttpRequest, task_id: int) -> Rendered:
    return _act(
        request,
        task_id,
        lambda task: engine.retry(task, by=request.user),
        "only failed or cancelled tasks can be retried",
        "queued again",
    )


@require_GET
@for_htmx(page="tasks_app/input.html", fragment="tasks_app/_input_dialog.html")
def task_input(request: HttpRequest, task_id: int) -> dict[str, Any]:
    """The prompt of a task awaiting input: a modal (htmx) or a page."""
    return presenter.input_context(task_for_change(request.user, task_id))


@require_POST
@sensitive_post_parameters()
@for_htmx(page="tasks_app/input.html", fragment="tasks_app/_input_form.html")
def task_answer(request: HttpRequest, task_id: int) -> Rendered:
    task = task_for_change(request.user, task_id)
    try:
        answer_task(task, request.POST, user=request.user)
    except (engine.NotAwaitingInput, engine.AlreadyAnswered) as exc:
        task.refresh_from_db()
        return Rendered(presenter.input_context(task, notice=str(exc)), status=409)
    except engine.AnswerRejected:
        task.refresh_from_db()
        return Rendered(presenter.input_context(task), status=400)
    except ValueError as exc:  # a body the kind cannot read (never echoes a value)
        return Rendered(
            presenter.input_context(task, notice=f"Answers the task cannot read: {exc}"),
            status=400,
        )

    def to_the_task() -> HttpResponse:
        messages.success(request, f"Task #{task.pk} resumed.")
        return redirect("task-detail", task_id=task.pk)

    task.refresh_from_db()
    return Rendered(
        presenter.input_context(task, resumed=True),
        headers={"HX-Trigger": json.dumps({"task-resumed": {"id": task.pk}})},
        otherwise=to_the_task,
    )
