"""Thin WebSocket consumers: authenticate, join a group, relay."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from tasks_app import live, logs, watchdog
from tasks_app.models import Status, Task

logger = logging.getLogger("tasks_app.consumers")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class _Base(AsyncWebsocketConsumer):
    group: str = ""

    def _query(self) -> dict[str, list[str]]:
        return parse_qs(self.scope.get("query_string", b"").decode())

    async def _authenticate(self) -> bool:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return False
        live.remember_server_loop()
        self.json = self._query().get("format", ["html"])[0] == "json"
        return True

    async def _join(self, group: str) -> bool:
        """Join ``group`` and accept; refuse when the channel layer (Redis) is away.

        The refused browser retries with back-off and polls meanwhile.
        """
        try:
            await self.channel_layer.group_add(group, self.channel_name)
        except Exception as exc:  # noqa: BLE001 - Redis down: any error means "not now"
            logger.warning("Refusing a WebSocket: the channel layer is unavailable (%s)", exc)
            await self.close()
            return False
        self.group = group
        await self.accept()
        watchdog.watch(self)
        return True

    async def _authenticate_for_task(self) -> int | None:
        """The task id of the URL, once the user is known and the task exists; else closed."""
        if not await self._authenticate():
            return None
        task_id = self.scope["url_route"]["kwargs"]["task_id"]
        if not await database_sync_to_async(Task.objects.filter(pk=task_id).exists)():
            await self.close(code=CLOSE_NOT_FOUND)
            return None
        return task_id

    async def disconnect(self, code: int) -> None:
        if self.group:
            try:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            except Exception:  # Redis away: its subscriptions are gone anyway
                logger.debug("group_discard failed", exc_info=True)


class TaskHistoryConsumer(_Base):
    """``/ws/tasks/``: rows of the history table as they change.

    ``?status=FAILED&status=RUNNING`` mirrors the page's filter, so a row
    that leaves the filter is removed and one that enters it appears.
    """

    async def connect(self) -> None:
        if not await self._authenticate():
            return
        self.statuses = {s for s in self._query().get("status", []) if s in Status.values}
        # "notify": only the header's count and toasts, on every page.
        self.notify_only = self._query().get("view", [""])[0] == "notify"
        await self._join(live.HISTORY_GROUP)

    async def task_changed(self, event: dict[str, Any]) -> None:
        task = event["task"]
        if self.json:
            await self.send(text_data=json.dumps({"event": "task.changed", **task}))
            return
        if self.notify_only:
            await self.send(text_data=event["notify"])
            return
        if not self.statuses or task["status"] in self.statuses:
            # Replaces the row; a row the page lacks is inserted by static/js/app.js.
            await self.send(text_data=event["row"])
        else:
            # Versioned too: an older row arriving later must not bring it back.
            await self.send(text_data=event["removal"])


class TaskStatusConsumer(_Base):
    """``/ws/tasks/{id}/status``: one task's status."""

    async def connect(self) -> None:
        task_id = await self._authenticate_for_task()
        if task_id is not None:
            await self._join(live.task_group(task_id))

    async def task_status(self, event: dict[str, Any]) -> None:
        if self.json:
            await self.send(text_data=json.dumps({"event": "task.status", **event["task"]}))
        else:
            await self.send(text_data=event["html"])


class TaskLogConsumer(_Base):
    """``/ws/tasks/{id}/logs``: each new entry of one task's log.

    ``?level=WARNING&search=text`` mirror the viewer's filters, so a filtered
    viewer only receives entries it would show.
    """

    async def connect(self) -> None:
        task_id = await self._authenticate_for_task()
        if task_id is None:
            return
        self.params, _ = logs.parse_params({k: v[0] for k, v in self._query().items()})
        await self._join(live.task_logs_group(task_id))

    async def log_entry(self, event: dict[str, Any]) -> None:
        entry = event["entry"]
        # The viewer's filters, by the rule its pages are read with.
        if self.params.filtered and not await database_sync_to_async(logs.shows)(
            self.params, event["task_id"], entry["id"]
        ):
            return
        if self.json:
            await self.send(text_data=json.dumps({"event": "log.entry", **entry}))
        else:
            await self.send(text_data=event["html"])


class NoSuchSocket(AsyncWebsocketConsumer):
    """Any other WebSocket path: refused at the handshake."""

    async def connect(self) -> None:
        await self.close()
