"""Writing a task's log entries, with secrets redacted before storage.

A logging filter alone cannot keep a password out of a log *table*, so every
entry passes through ``redact`` here, where it is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from tasks_app.models import LogLevel, Task, TaskLogEntry

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)?|secret|token|private_key|api_key|credential", re.I)
_URI_PASSWORD = re.compile(r"(?P<prefix>[a-z][a-z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?=@)", re.I)
MASK = "XXXXXXXXXX"

logger = logging.getLogger("tasks_app.tasklog")


def _redact_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, REDACTED)

    def _mask(match: re.Match[str]) -> str:
        pw = match.group("pw")
        return match.group(0) if pw == MASK else match.group("prefix") + REDACTED

    return _URI_PASSWORD.sub(_mask, text)


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    secrets = tuple(s for s in secrets if s)
    if isinstance(value, str):
        return _redact_text(value, secrets)
    if isinstance(value, dict):
        return {
            str(k): (
                REDACTED
                if _SECRET_KEY.search(str(k)) and v not in (None, "")
                else redact(v, secrets)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _redact_text(str(value), secrets)


class TaskLog:
    """``log.info("Exported bundle", size=1234)`` → one redacted entry."""

    def __init__(self, task: Task, secrets: Iterable[str] = ()) -> None:
        self.task = task
        self.secrets: set[str] = set(secrets)

    def add_secret(self, value: str | None) -> None:
        if value:
            self.secrets.add(value)

    def write(self, level: int, message: str, **context: Any) -> TaskLogEntry:
        entry = TaskLogEntry.objects.create(
            task=self.task,
            level=level,
            message=redact(message, self.secrets),
            context=redact(context, self.secrets),
        )
        logger.log(level, "task %s: %s", self.task.pk, entry.message)
        from tasks_app import live

        live.log_written(entry)
        return entry

    def debug(self, message: str, **context: Any) -> TaskLogEntry:
        return self.write(LogLevel.DEBUG, message, **context)

    def info(self, message: str, **context: Any) -> TaskLogEntry:
        return self.write(LogLevel.INFO, message, **context)

    def warning(self, message: str, **context: Any) -> TaskLogEntry:
        return self.write(LogLevel.WARNING, message, **context)

    def error(self, message: str, **context: Any) -> TaskLogEntry:
        return self.write(LogLevel.ERROR, message, **context)
