"""The one way live updates leave the server.

A task's changes arrive through ``signals.task_changed`` (sent by the models
and the engine, connected in ``AppConfig.ready``) with the state each change
made. The same fragment templates the pages include are rendered and sent to
the channel-layer groups the consumers listen on, stamped with the task's
version: several processes publish about one task (the web process that
queued it, the worker that runs it) in no particular order, and the browser
keeps the newest.

Scaled out, the layer is Redis, and Redis can be down: publishing then never
blocks nor crashes the task or request that publishes (a background thread
sends, with a timeout). The web side of an outage (closing the WebSockets so
browsers catch up) is ``tasks_app.watchdog``.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import logging
import threading
import time
from collections import deque
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from tasks_app import presenter

logger = logging.getLogger("tasks_app.live")

HISTORY_GROUP = "tasks"
# A publish that Redis does not acknowledge within this many seconds is dropped.
PUBLISH_TIMEOUT = 2.0
# Publishes waiting while Redis is slow or down; past this the oldest are dropped
# (browsers catch up by refreshing when their WebSocket comes back).
PUBLISH_BACKLOG = 1000

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
    if not isinstance(layer, InMemoryChannelLayer):
        _publisher().submit(layer, group, message)
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


class _Publisher:
    """One thread per process, with its own event loop, sends to a cross-process layer.

    The caller only appends to a bounded backlog, so a Redis that is down or
    hangs never holds up a task step or a request; one loop means one Redis
    connection for every publish, and messages leave in the order they came.
    """

    def __init__(self) -> None:
        self._backlog: deque[tuple[Any, str, dict[str, Any]]] = deque(maxlen=PUBLISH_BACKLOG)
        self._cond = threading.Condition()
        self._busy = False
        self.dropped = 0
        self._failing = 0
        threading.Thread(target=self._run, name="live-publisher", daemon=True).start()
        # A short-lived process (a management command) still delivers what it published.
        atexit.register(self.flush, PUBLISH_TIMEOUT)

    def submit(self, layer: Any, group: str, message: dict[str, Any]) -> None:
        with self._cond:
            if len(self._backlog) == PUBLISH_BACKLOG:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % PUBLISH_BACKLOG == 0:
                    logger.warning(
                        "Live updates are backing up (channel layer slow or down): "
                        "%d dropped so far",
                        self.dropped,
                    )
            self._backlog.append((layer, group, message))
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted has been sent (or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._backlog or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        while True:
            with self._cond:
                while not self._backlog:
                    self._cond.wait()
                layer, group, message = self._backlog.popleft()
                self._busy = True
            try:
                loop.run_until_complete(
                    asyncio.wait_for(layer.group_send(group, message), PUBLISH_TIMEOUT)
                )
                if self._failing:
                    logger.warning(
                        "Live updates flow again after %d failed publish(es).", self._failing
                    )
                    self._failing = 0
            except Exception as exc:  # noqa: BLE001 - whatever Redis does, the worker goes on
                self._failing += 1
                if self._failing == 1:
                    # Once per outage: a worker must not flood its log while Redis is away.
                    logger.warning(
                        "Could not publish a live update to %s (%s: %s); dropping live "
                        "updates until the channel layer answers again.",
                        group,
                        type(exc).__name__,
                        exc,
                    )
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


_publisher_instance: _Publisher | None = None
_publisher_lock = threading.Lock()


def _publisher() -> _Publisher:
    global _publisher_instance
    with _publisher_lock:
        if _publisher_instance is None:
            _publisher_instance = _Publisher()
        return _publisher_instance


def flush(timeout: float = PUBLISH_TIMEOUT) -> bool:
    """Deliver what this process has published so far (before a worker exits)."""
    return _publisher_instance.flush(timeout) if _publisher_instance else True


def _report_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("Could not publish a live update: %s", future.exception())


def on_task_changed(sender: Any, task: Any, created: bool = False, **kwargs: Any) -> None:
    """Receiver of ``signals.task_changed``: publish ``task`` as the change left it,
    once the transaction commits.

    The state published is the one of that change, under its version, not the
    row as it is at commit: every status a task goes through reaches the
    browsers, which keep the newest version whatever the order of arrival.
    """
    snapshot = copy.deepcopy(task)  # the caller may change its object before the commit
    transaction.on_commit(lambda: _publish_task(snapshot, created))


def task_changed(task: Any) -> None:
    """For code that changed a task outside a status transition: ``Task.touch``
    (a new version of it, published once the transaction commits)."""
    task.touch()


def listened(group: str) -> bool:
    """Might anyone receive what is sent to ``group``? False only when that is certain:
    the in-memory layer (one process, the embedded mode) knows its groups' members; a
    cross-process layer (Redis) does not tell, so there it is always True. What nobody
    would receive is not rendered."""
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return bool(layer.groups.get(group))
    return layer is not None


def _publish_task(task: Any, created: bool) -> None:
    history, status = listened(HISTORY_GROUP), listened(task_group(task.pk))
    if not (history or status):
        return
    try:
        if history:
            row = presenter.render_row(task)
            removal = presenter.render_row_removal(task)
            notify = presenter.render_notification(task)
        if status:
            status_html = presenter.render_status(task)
    except Exception:
        logger.exception("Could not render task %s for a live update", task.pk)
        return
    summary = presenter.live_json(task)
    if history:
        send(
            HISTORY_GROUP,
            {
                "type": "task.changed",
                "task": summary,
                "created": created,
                "row": row,
                "removal": removal,
                "notify": notify,
            },
        )
    if status:
        send(task_group(task.pk), {"type": "task.status", "task": summary, "html": status_html})


def on_log_written(sender: Any, entry: Any, **kwargs: Any) -> None:
    """Receiver of ``signals.log_written``: publish the entry once its transaction commits."""
    transaction.on_commit(lambda: _publish_log_entry(entry))


def _publish_log_entry(entry: Any) -> None:
    group = task_logs_group(entry.task_id)
    if not listened(group):
        return
    # Rendered once here, however many viewers listen: the consumers relay it.
    try:
        html = presenter.render_log_entry(entry)
    except Exception:
        logger.exception("Could not render log entry %s for a live update", entry.pk)
        return
    send(
        group,
        {
            "type": "log.entry",
            "task_id": entry.task_id,
            "level": entry.level,
            "entry": entry.as_json(),
            "html": html,
        },
    )
