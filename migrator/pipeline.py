"""The migration as steps of the task engine: export, then import.

The export leaves the bundle in Django's storage and its name in the
checkpoint, so the import (on a retry, or after the user answered a prompt)
runs again without a second export.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage

from migrator import passwords, sessions
from migrator.models import Environment
from migrator.superset.bundle import ImportProblems, inspect_bundle, strip_fields
from migrator.superset.errors import ImportRejected, SupersetError
from tasks_app import engine, live
from tasks_app.engine import NeedsInput, StepContext, TaskFailed
from tasks_app.models import Task

KIND = "migration"


def _environment(ctx: StepContext, role: str) -> Environment:
    ref = ctx.task.params[role]
    env = Environment.from_ref(ref)
    if env is None:
        raise TaskFailed(f"The {role} environment {ref['name']!r} no longer exists.")
    return env


def _failed(role: str, env: Environment, exc: SupersetError) -> TaskFailed:
    return TaskFailed(f"{role.capitalize()} {env.name} ({env.url}): {exc.message}")


def _ms(since: float) -> int:
    return round((time.monotonic() - since) * 1000)


def _fill_titles(ctx: StepContext, client: Any, source: Environment) -> None:
    """Tasks started through the API name dashboards by id only: look up their titles."""
    dashboards = ctx.task.params["dashboards"]
    found = {row["id"]: row for row in client.get_dashboards([d["id"] for d in dashboards])}
    missing = [d["id"] for d in dashboards if d["id"] not in found]
    if missing:
        raise TaskFailed(
            f"Source {source.name} has no dashboard with id {', '.join(map(str, missing))}."
        )
    for d in dashboards:
        d["title"] = found[d["id"]]["title"]
    Task.objects.filter(pk=ctx.task.pk).update(params=ctx.task.params)
    live.task_changed(ctx.task)


def export_step(ctx: StepContext) -> None:
    source = _environment(ctx, "source")
    dashboards = ctx.task.params["dashboards"]
    ids = [d["id"] for d in dashboards]
    ctx.log.info(
        f"Exporting {len(ids)} dashboard(s) from {source.name}",
        environment=source.name,
        url=source.url,
        dashboards=dashboards,
    )
    started = time.monotonic()
    with tempfile.TemporaryFile() as tmp:
        try:
            with sessions.borrow(source) as client:
                if any(not d.get("title") for d in dashboards):
                    _fill_titles(ctx, client, source)
                size = client.export_dashboards(ids, tmp)
        except SupersetError as exc:
            ctx.log.error(
                f"Export failed: {exc.message}", environment=source.name, status=exc.status
            )
            raise _failed("source", source, exc) from exc
        tmp.seek(0)
        info = inspect_bundle(tmp)
        tmp.seek(0)
        name = default_storage.save(f"bundles/task-{ctx.task.pk}.zip", File(tmp))
    ctx.checkpoint.update(bundle=name, bundle_size=size, bundle_counts=info.counts)
    ctx.log.info(
        f"Exported a bundle of {size:,} bytes: "
        + ", ".join(f"{n} {kind}" for kind, n in info.counts.items()),
        bytes=size,
        files=info.counts,
        databases=[
            {"file": db.key, "name": db.name, "uri": db.uri_masked} for db in info.databases
        ],
        duration_ms=_ms(started),
    )


def import_step(ctx: StepContext) -> None:
    name = ctx.checkpoint.get("bundle")
    if not name or not default_storage.exists(name):
        ctx.log.warning("The saved bundle is gone; exporting again.")
        export_step(ctx)
        name = ctx.checkpoint["bundle"]
    target = _environment(ctx, "target")
    overwrite = bool(ctx.task.params.get("overwrite"))
    ctx.log.info(
        f"Importing the bundle into {target.name}",
        environment=target.name,
        url=target.url,
        overwrite=overwrite,
    )
    started = time.monotonic()
    for attempt in range(_MAX_STRIPS + 1):
        try:
            with sessions.borrow(target) as client, default_storage.open(name, "rb") as bundle:
                client.import_dashboards(bundle, overwrite=overwrite)
            break
        except ImportRejected as exc:
            if exc.problems.only_unknown_fields and attempt < _MAX_STRIPS:
                name = _strip_unknown_fields(ctx, target, name, exc.problems)
                continue
            _refused(ctx, target, name, exc)
        except SupersetError as exc:
            ctx.log.error(
                f"Import failed: {exc.message}", environment=target.name, status=exc.status
            )
            raise _failed("target", target, exc) from exc
    ctx.log.info(
        f"Imported into {target.name}",
        environment=target.name,
        duration_ms=_ms(started),
    )
    default_storage.delete(name)
    ctx.checkpoint.pop("bundle", None)


# An older target may report unknown fields in a second pass (after the first
# ones are gone); more than that means something else is wrong.
_MAX_STRIPS = 2


def _strip_unknown_fields(
    ctx: StepContext, target: Environment, name: str, problems: ImportProblems
) -> str:
    """Remove the fields an older Superset (4.1) refuses; keep the result as the checkpoint."""
    with default_storage.open(name, "rb") as source, tempfile.TemporaryFile() as stripped:
        removed = strip_fields(source, stripped, problems.unknown_fields)
        stripped.seek(0)
        default_storage.delete(name)
        name = default_storage.save(name, File(stripped))
    ctx.checkpoint["bundle"] = name
    ctx.log.warning(
        f"{target.name} is an older Superset that does not know {len(removed)} field(s) of this "
        "bundle (added by a newer Superset); they were removed and the import is tried again.",
        removed=removed[:100],
    )
    return name


def _refused(ctx: StepContext, target: Environment, name: str, exc: ImportRejected) -> None:
    """Superset's 422: a prompt when input can fix it, else a failure with its reason."""
    if passwords.can_ask(exc.problems):
        with default_storage.open(name, "rb") as bundle:
            info = inspect_bundle(bundle)
        raise NeedsInput(
            f"{target.name} needs input before it can import the bundle: {exc.problems.describe()}",
            {"fields": passwords.input_fields(exc.problems, info)},
        ) from exc
    ctx.log.error(
        f"{target.name} refused the bundle: {exc.problems.describe()}",
        status=exc.status,
        superset_message=exc.problems.message,
    )
    raise TaskFailed(f"Target {target.name} refused the bundle: {exc.problems.describe()}") from exc


def describe(task: Task) -> dict[str, Any]:
    params = task.params
    return {
        "source": params.get("source", {}).get("name", "?"),
        "target": params.get("target", {}).get("name", "?"),
        "items": [d.get("title") or f"#{d.get('id')}" for d in params.get("dashboards", [])],
        "options": "overwrite existing" if params.get("overwrite") else "",
    }


def cleanup(task: Task) -> None:
    name = task.checkpoint.get("bundle")
    if name and default_storage.exists(name):
        default_storage.delete(name)


MIGRATION = engine.register(
    engine.TaskKind(
        name=KIND,
        label="Migration",
        steps=(
            engine.Step("export", export_step, repeatable=True),
            # Superset may have written part of an import when a worker dies.
            engine.Step("import", import_step, repeatable=False),
        ),
        describe=describe,
        cleanup=cleanup,
        answer=passwords.answer,
    )
)


def start_migration(
    *, owner: Any, source: Environment, target: Environment, dashboards: list[dict], overwrite: bool
) -> Task:
    return engine.submit(
        KIND,
        owner=owner,
        params={
            "source": source.as_ref(),
            "target": target.as_ref(),
            "dashboards": [{"id": d["id"], "title": d.get("title", "")} for d in dashboards],
            "overwrite": overwrite,
        },
    )
