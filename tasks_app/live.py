"""The one way live updates leave the server.

Background code (worker threads or processes) and views call
``task_changed``; it renders the same fragment templates the pages include
and sends them to the channel-layer groups the consumers listen on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string

logger = logging.getLogger("tasks_app.live")

HISTORY_GROUP = "tasks"

_server_loop: asyncio.AbstractEventLoop | None = None


def task_group(task_id: int) -> str:
    return f"task-{task_id}"


def task_logs_group(task_id: int) -> str:
    return f"task-{task_id}-logs"


def remember_server_loop() -> None:
    """Called from a consumer (inside the server's event loop).

    The in-memory channel layer is not thread-safe: a worker thread of the
    embedded mode must hand its sends to this loop instead of running its
    own (STACK.md: messages otherwise arrive in bursts).
    """
    global _server_loop
    _server_loop = asyncio.get_running_loop()


def send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    loop = _server_loop
    if loop is not None and loop.is_running() and not loop.is_closed():
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(layer.group_send(group, message))
        else:
            future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
            future.add_done_callback(_report_failure)
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        logger.exception("Could not publish to %s", group)


def _report_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("Could not publish a live update: %s", future.exception())


def render_row(task: Any, *, oob: bool) -> str:
    from tasks_app.views import row_context

    return render_to_string("tasks_app/_task_row.html", row_context(task, oob=oob))


def render_status(task: Any) -> str:
    return render_to_string("tasks_app/_task_status.html", {"task": task, "oob": True})


def render_notification(task: Any) -> str:
    """The header's "requires input" count, plus a toast when this task starts waiting."""
    from tasks_app.models import Status, Task
    from tasks_app.views import row_context

    count = Task.objects.filter(status=Status.AWAITING_INPUT).count()
    html = render_to_string(
        "tasks_app/_awaiting_badge.html", {"awaiting_count": count, "oob": True}
    )
    if task.status == Status.AWAITING_INPUT:
        html += render_to_string("tasks_app/_toast.html", row_context(task))
    return html


def task_changed(task: Any, *, created: bool = False) -> None:
    """Publish a task's new state once the surrounding transaction commits."""
    transaction.on_commit(lambda: _publish_task(task.pk, created))


def _publish_task(task_id: int, created: bool) -> None:
    from tasks_app.models import Task

    task = Task.objects.select_related("owner").filter(pk=task_id).first()
    if task is None:
        return
    try:
        row = render_row(task, oob=True)
        status_html = render_status(task)
    except Exception:
        logger.exception("Could not render task %s for a live update", task_id)
        return
    summary = {"id": task.pk, "status": task.status, "kind": task.kind}
    notify = render_notification(task)
    send(
        HISTORY_GROUP,
        {"type": "task.changed", "task": summary, "created": created, "row": row, "notify": notify},
    )
    send(task_group(task.pk), {"type": "task.status", "task": summary, "html": status_html})


def log_written(entry: Any) -> None:
    task_id = entry.task_id
    entry_id = entry.pk
    transaction.on_commit(
        lambda: send(
            task_logs_group(task_id), {"type": "log.entry", "task_id": task_id, "id": entry_id}
        )
    )
