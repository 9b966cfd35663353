"""Where a task becomes markup or JSON: one place for the page, the htmx fragments,
the live pushes, the admin and the API.

What a task means (its title, route, items, input fields, extra JSON keys) comes
from its kind (``tasks_app.kinds``); the rest is the engine's own.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.template.loader import render_to_string

from tasks_app import logs
from tasks_app.kinds import find_kind, summary
from tasks_app.models import Status, Task, TaskLogEntry

# --- contexts of templates ---------------------------------------------------------


def seconds_text(value: timedelta) -> str:
    """A duration as people read it: "1.2 s", "3 min 05 s", "2 h 04 min"."""
    seconds = max(value.total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def step_of(task: Task) -> dict[str, Any] | None:
    """Which step a running task is in: {name, number, total}, or None."""
    kind = find_kind(task.kind)
    if kind is None or task.status != Status.RUNNING or not kind.steps:
        return None
    names = [s.name for s in kind.steps]
    name = task.step if task.step in names else names[0]
    return {"name": name, "number": names.index(name) + 1, "total": len(names)}


def timing(task: Task) -> dict[str, str]:
    """The row's durations: working time, and the wait for a person's answer apart."""
    waited = task.wait_time
    return {
        "worked": seconds_text(task.work_time),
        "waited": seconds_text(waited) if waited >= timedelta(seconds=0.05) else "",
    }


def row_context(task: Task, *, oob: bool = False) -> dict[str, Any]:
    """A task as its history row, toast and headers show it."""
    return {
        "task": task,
        "summary": summary(task),
        "oob": oob,
        "step": step_of(task),
        "timing": timing(task),
    }


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


def page_context(task: Task, *, can_change: bool) -> dict[str, Any]:
    """The task's page: its facts, its kind's section (a plan, a report…), its log."""
    context = {**log_context(task, logs.LogParams()), "can_change": can_change}
    kind = find_kind(task.kind)
    if kind is not None and kind.page is not None:
        template, details = kind.page
        context |= {"kind_template": template, "details": details(task)}
    return context


def input_fields(task: Task) -> list[dict[str, Any]]:
    """The open request's fields as a person sees them: the kind adds ``subject``
    (what a field is about) and ``detail`` (a line below it)."""
    request = task.pending_input
    if request is None:
        return []
    kind = find_kind(task.kind)
    return [{**f, **(kind.field_info(f) if kind else {})} for f in request.fields]


def input_context(task: Task, **extra: Any) -> dict[str, Any]:
    return {
        **row_context(task),
        "input_request": task.pending_input,
        "fields": input_fields(task),
        **extra,
    }


# --- JSON --------------------------------------------------------------------------

FIELD_KEYS = ("key", "type", "label", "error")


def input_request_json(task: Task) -> dict[str, Any] | None:
    request = task.pending_input
    if request is None:
        return None
    kind = find_kind(task.kind)
    fields = [
        {
            **{k: f.get(k, "") for k in FIELD_KEYS},
            **({"options": f["options"]} if "options" in f else {}),
            **(kind.field_info(f) if kind else {}),
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
    kind = find_kind(task.kind)
    return {
        "id": task.pk,
        "kind": task.kind,
        "status": task.status,
        "version": task.version,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "worked_seconds": round(task.work_time.total_seconds(), 3),
        "waited_seconds": round(task.wait_time.total_seconds(), 3),
        "title": summary(task).title,
        "error": task.error,
        "owner": task.owner.get_username() if task.owner_id else None,
        "input_request": input_request_json(task),
        **(kind.task_json(task) if kind else {}),
        **(kind.details(task) if kind and details else {}),
    }


def live_json(task: Task) -> dict[str, Any]:
    """What JSON listeners of live updates get; ``version`` orders one task's messages."""
    return {"id": task.pk, "status": task.status, "kind": task.kind, "version": task.version}


# --- fragments pushed live -----------------------------------------------------------


def render_row(task: Task) -> str:
    """The history row, as an out-of-band swap."""
    return render_to_string("tasks_app/_task_row.html", row_context(task, oob=True))


def render_row_removal(task: Task) -> str:
    """For a table whose status filter the task left: remove its row (versioned too)."""
    return render_to_string("tasks_app/_task_row_removal.html", {"task": task})


def render_status(task: Task) -> str:
    return render_to_string("tasks_app/_task_status.html", {"task": task, "oob": True})


def render_notification(task: Task) -> str:
    """The header's "requires input" count, plus a toast when this task starts waiting."""
    html = render_to_string(
        "tasks_app/_awaiting_badge.html",
        {"awaiting_count": Task.objects.awaiting_input_count(), "oob": True},
    )
    if task.status == Status.AWAITING_INPUT:
        html += render_to_string("tasks_app/_toast.html", row_context(task))
    return html


def render_log_entry(entry: TaskLogEntry) -> str:
    """A log entry, as an out-of-band append to the viewer's list."""
    return render_to_string("tasks_app/_log_entry.html", {"entry": entry, "oob": True})
