"""Fixtures of the task engine's tests, and the small kind of task they create.

tasks_app knows no migration, and neither do its tests: a task here is a
"chore", a kind registered below with just what the engine asks of a kind (steps,
a summary, what a field is about, files to clean up). What only a migration
means is tested in tests/migrator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from django.core.files.storage import default_storage

from tasks_app import engine
from tasks_app.models import Status, Task

KIND = "chore"
# A chore's params: where it works and on what (its summary reads them).
PARAMS = {"from": "dev", "to": "prod", "items": ["Sales"]}


def _step(ctx: engine.StepContext) -> None:
    ctx.log.info(f"Step {ctx.task.step or 'start'} done")


def _summary(task: Task) -> engine.Summary:
    params = task.params or {}
    route = f"{params['from']} → {params['to']}" if "from" in params and "to" in params else ""
    return engine.Summary(
        title="Chore", route=route, items=list(params.get("items", [])), asker=params.get("to", "")
    )


def _field_info(field: Mapping[str, Any]) -> dict[str, Any]:
    return {"subject": field.get("about"), "detail": field.get("detail")}


def _cleanup(task: Task) -> None:
    """A chore's run saves a file (``checkpoint["bundle"]``); gone with the task."""
    name = task.checkpoint.get("bundle")
    if name and default_storage.exists(name):
        default_storage.delete(name)


engine.register(
    engine.TaskKind(
        name=KIND,
        label="Chore",
        # Like most kinds, a step that writes elsewhere is not safe to repeat.
        steps=(engine.Step("export", _step), engine.Step("import", _step, repeatable=False)),
        summary=_summary,
        field_info=_field_info,
        cleanup=_cleanup,
    )
)


def make_task(
    status: str = Status.PENDING,
    *,
    route: tuple[str, str] = ("dev", "prod"),
    items: Iterable[str] = ("Sales",),
    **fields: Any,
) -> Task:
    """A chore from ``route[0]`` to ``route[1]`` on ``items``, in ``status``."""
    params = {"from": route[0], "to": route[1], "items": list(items)}
    return Task.objects.create(kind=KIND, status=status, params=params, **fields)


def make_tasks(n: int, status: str = Status.PENDING, **fields: Any) -> list[Task]:
    """``n`` chores, oldest first."""
    return [make_task(status, **fields) for _ in range(n)]


@pytest.fixture
def task(owner) -> Task:
    """The owner's running chore, dev → prod on "Sales" (a log to read)."""
    return make_task(Status.RUNNING, owner=owner)
