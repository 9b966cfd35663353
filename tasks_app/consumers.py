"""Thin WebSocket consumers: authenticate, join a group, relay."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from tasks_app import live
from tasks_app.models import Status, Task

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

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)


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
        self.group = live.HISTORY_GROUP
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

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
            await self.send(text_data=f'<tr id="task-{task["id"]}" hx-swap-oob="delete"></tr>')


class TaskStatusConsumer(_Base):
    """``/ws/tasks/{id}/status``: one task's status."""

    async def connect(self) -> None:
        if not await self._authenticate():
            return
        task_id = self.scope["url_route"]["kwargs"]["task_id"]
        if not await database_sync_to_async(Task.objects.filter(pk=task_id).exists)():
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = live.task_group(task_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def task_status(self, event: dict[str, Any]) -> None:
        if self.json:
            await self.send(text_data=json.dumps({"event": "task.status", **event["task"]}))
        else:
            await self.send(text_data=event["html"])
