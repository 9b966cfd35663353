"""Reading a task's log: pages keyed by entry id, filters, whole-log exports.

Every read walks the ``(task, id)`` index from a cursor and stops after one
page, so a page of a 100,000-entry log costs what a page of a short one does:
no OFFSET, no COUNT(*). The API, the HTML views and the downloads share the
parameters (``LogParams``) and the queries here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db.models import Q, QuerySet
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from tasks_app.models import LogLevel, TaskLogEntry

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
MAX_SEARCH = 200
EXPORT_CHUNK = 2000


class LevelName(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LogParams(BaseModel):
    """Which entries to read: a cursor, a page size and the filters."""

    after: int | None = Field(
        None, ge=0, description="Entries with a larger id (newer); the `next` cursor."
    )
    before: int | None = Field(
        None, ge=1, description="Entries with a smaller id (older); the `previous` cursor."
    )
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Entries per page.")
    level: LevelName | None = Field(
        None, description="Minimum level: DEBUG, INFO, WARNING or ERROR (any case)."
    )
    search: str = Field(
        "", max_length=MAX_SEARCH, description="Text in the message or the context (any case)."
    )

    @field_validator("level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().upper() or None
        return value

    @field_validator("search")
    @classmethod
    def _strip(cls, value: str) -> str:
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL: refuse it here rather than 500 there.
            raise ValueError("Search text cannot contain NUL characters.")
        return value.strip()

    @field_validator("before")
    @classmethod
    def _one_cursor(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("after") is not None:
            raise ValueError("Give after or before, not both.")
        return value

    @property
    def min_level(self) -> int | None:
        return LogLevel[self.level.value].value if self.level else None

    @property
    def filtered(self) -> bool:
        return bool(self.level or self.search)

    def filter_query(self) -> dict[str, str]:
        """The filters as URL parameters (for links that keep them)."""
        query = {}
        if self.level:
            query["level"] = self.level.value
        if self.search:
            query["search"] = self.search
        return query


def parse_params(data: Mapping[str, Any]) -> tuple[LogParams, dict[str, list[str]]]:
    """Parameters from a query string, and errors per field (empty values are absent).

    Pages must still render when a hand-edited URL is wrong: the fields in
    error fall back to their defaults.
    """
    values = {k: data.get(k) for k in LogParams.model_fields if data.get(k) not in (None, "")}
    try:
        return LogParams.model_validate(values), {}
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "__all__"
            errors.setdefault(field, []).append(err["msg"])
            values.pop(field, None)
        return LogParams.model_validate(values), errors


def entries_of(task_id: int, params: LogParams) -> QuerySet[TaskLogEntry]:
    entries = TaskLogEntry.objects.filter(task_id=task_id)
    if params.min_level is not None:
        entries = entries.filter(level__gte=params.min_level)
    if params.search:
        entries = entries.filter(
            Q(message__icontains=params.search) | json_contains("context", params.search)
        )
    return entries


def shows(params: LogParams, task_id: int, entry_id: int) -> bool:
    """Does a viewer with these filters show this entry? For live entries: the rule
    of ``entries_of`` itself, so a pushed entry and a page never disagree."""
    return entries_of(task_id, params).filter(pk=entry_id).exists()


def json_contains(field: str, text: str) -> Q:
    """``field`` (a JSONField) holds ``text``, case-insensitively.

    SQLite keeps non-ASCII escaped in stored JSON (``\\u00e9``), so the escaped
    form is searched too; on PostgreSQL it simply matches nothing more.
    """
    match = Q(**{f"{field}__icontains": text})
    escaped = json.dumps(text)[1:-1]
    if escaped != text:
        match |= Q(**{f"{field}__icontains": escaped})
    return match


@dataclass(frozen=True)
class LogPage:
    """Entries in ascending id order, and the cursors around them.

    ``previous``: pass as ``before`` for the older page (None: nothing older).
    ``next``: pass as ``after`` for newer entries (None: nothing newer yet;
    follow a running task with ``after=<id of the last entry>``).
    """

    entries: list[TaskLogEntry]
    previous: int | None
    next: int | None
    params: LogParams

    @property
    def reaches_newest(self) -> bool:
        """Nothing newer exists yet: live entries may be appended right after this page."""
        return self.next is None and (self.params.before is None or bool(self.entries))


def read_page(task_id: int, params: LogParams) -> LogPage:
    """One page in at most two indexed queries, whatever the size of the log."""
    entries = entries_of(task_id, params)
    limit = params.limit
    if params.after is not None:
        rows = list(entries.filter(pk__gt=params.after).order_by("pk")[: limit + 1])
        newer = len(rows) > limit
        rows = rows[:limit]
        older = bool(rows) and entries.filter(pk__lt=rows[0].pk).exists()
    else:
        window = entries.filter(pk__lt=params.before) if params.before is not None else entries
        rows = list(window.order_by("-pk")[: limit + 1])
        older = len(rows) > limit
        rows = rows[:limit][::-1]
        newer = (
            params.before is not None and bool(rows) and entries.filter(pk__gt=rows[-1].pk).exists()
        )
    return LogPage(
        entries=rows,
        previous=rows[0].pk if older else None,
        next=rows[-1].pk if newer else None,
        params=params,
    )


# --- whole-log exports ---------------------------------------------------


def iter_entries(task_id: int, params: LogParams) -> Iterator[list[TaskLogEntry]]:
    """The whole (filtered) log in id order, a chunk at a time (keyset, constant memory)."""
    entries = entries_of(task_id, params).order_by("pk")
    last = 0
    while True:
        chunk = list(entries.filter(pk__gt=last)[:EXPORT_CHUNK])
        if not chunk:
            return
        yield chunk
        if len(chunk) < EXPORT_CHUNK:
            return
        last = chunk[-1].pk


EXPORT_FORMATS = {
    "text": ("text/plain; charset=utf-8", "txt"),
    "jsonl": ("application/jsonl; charset=utf-8", "jsonl"),
}


def export(task_id: int, params: LogParams, fmt: str) -> Iterator[str]:
    """The log as text lines or JSON Lines, one string per chunk of entries."""
    for chunk in iter_entries(task_id, params):
        if fmt == "jsonl":
            yield "".join(
                json.dumps(e.as_json(), ensure_ascii=False, default=str) + "\n" for e in chunk
            )
        else:
            yield "".join(e.as_text() + "\n" for e in chunk)
