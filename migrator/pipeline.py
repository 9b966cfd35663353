"""The migration as steps of the task engine: export, then import.

The export leaves the bundle in Django's storage and its name in the
checkpoint, so the import (on a retry, or after the user answered a prompt)
runs again without a second export.
"""

from __future__ import annotations

import contextvars
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.urls import reverse

from migrator import passwords, promote, rollback, sessions
from migrator.models import Environment, Promotion
from migrator.plan import PlanError, display_rows, plan_lines
from migrator.superset.bundle import inspect_bundle, strip_fields
from migrator.superset.client import cancellable, wait
from migrator.superset.errors import (
    ImportRejected,
    InvalidBundle,
    SupersetAPIError,
    SupersetError,
)
from migrator.superset.problems import ImportProblems
from tasks_app import engine, live, worker
from tasks_app.kinds import (
    AdminAction,
    Cancelled,
    NeedsInput,
    StepContext,
    Summary,
    TaskFailed,
)
from tasks_app.models import FINISHED_STATUSES, Task

KIND = "migration"


def _environment(ctx: StepContext, role: str) -> Environment:
    ref = ctx.task.params[role]
    env = Environment.from_ref(ref)
    if env is None:
        raise TaskFailed(f"The {role} environment {ref['name']!r} no longer exists.")
    return env


def _failed(role: str, env: Environment, exc: SupersetError) -> TaskFailed:
    return TaskFailed(f"{role.capitalize()} {env.name} ({env.url}): {exc.message}")


def _bad_bundle(source: Environment, exc: InvalidBundle) -> TaskFailed:
    return TaskFailed(
        f"The bundle exported from {source.name} ({source.url}) cannot be used: {exc.message}"
    )


def _ms(since: float) -> int:
    return round((time.monotonic() - since) * 1000)


def _fill_titles(ctx: StepContext, found: dict[int, dict[str, Any]], source: Environment) -> None:
    """Tasks started through the API name dashboards by id only: their titles."""
    dashboards = ctx.task.params["dashboards"]
    missing = [d["id"] for d in dashboards if d["id"] not in found]
    if missing:
        raise TaskFailed(
            f"Source {source.name} has no dashboard with id {', '.join(map(str, missing))}."
        )
    for d in dashboards:
        d["title"] = found[d["id"]]["title"]
    Task.objects.filter(pk=ctx.task.pk).update(params=ctx.task.params)
    live.task_changed(ctx.task)


def _read_rows(source: Environment, ids: list[int]) -> dict[int, dict[str, Any]]:
    with sessions.borrow(source) as client:
        return {row["id"]: row for row in client.get_dashboards(ids)}


def _early_reads(
    target: Environment | None,
    rows: Future,
    known: dict[str, Any] | None,
    records: dict[str, str] | None,
) -> dict[str, Any] | None:
    """The plan's reads of the target that the dashboards' rows (uuids, slugs) allow,
    made while the source exports; None when they cannot be (the plan reads itself)."""
    try:
        found = wait(rows)
    except Exception:  # noqa: BLE001 - said by the export step, which waits for them too
        return None
    if target is None:
        return None
    return promote.early_reads_or_none(target, list(found.values()), known, records)


# What the start of a migration read of the target (``promote.check_choices``'s
# ``seen``), kept for the task when a worker of this process takes it at once:
# {task id: (when, reads)}. Only this fresh: a task that waited for a worker, or that a
# worker of another process runs, reads the target itself.
HEAD_START_FRESH = 2.0
_HEAD_STARTS_KEPT = 16
_head_starts: dict[int, tuple[float, dict[str, Any]]] = {}
_head_starts_lock = threading.Lock()
_clock = time.monotonic


def head_start_wanted() -> bool:
    """Is what a start reads (and its export) worth keeping for its task? Only when a
    worker of this process is idle: a task that waits for one reads the target anew."""
    return worker.idle_here()


def drop_head_start(seen: dict[str, Any] | None) -> None:
    """A head start nobody takes: the files of its exports are closed (now, or once
    they are in)."""
    export = (seen or {}).pop("export", None)
    if export is not None:
        export.add_done_callback(lambda f: _if_done(f, lambda got: got[1].close()))
    early = (seen or {}).pop("early", None)
    if early is not None:
        early.add_done_callback(
            lambda f: _if_done(f, lambda got: promote.close_exports((got or {}).get("exports")))
        )


def _if_done(future: Future, then: Callable[[Any], None]) -> None:
    if not future.cancelled() and future.exception() is None:
        then(future.result())


def _keep_head_start(task_id: int, seen: dict[str, Any]) -> None:
    dropped = []
    with _head_starts_lock:
        now = _clock()
        for key in [k for k, (when, _) in _head_starts.items() if now - when > HEAD_START_FRESH]:
            dropped.append(_head_starts.pop(key)[1])
        _head_starts[task_id] = (now, seen)
        while len(_head_starts) > _HEAD_STARTS_KEPT:
            dropped.append(_head_starts.pop(next(iter(_head_starts)))[1])
    for old in dropped:
        drop_head_start(old)


def _head_start(task_id: int) -> dict[str, Any] | None:
    with _head_starts_lock:
        when, seen = _head_starts.pop(task_id, (0.0, None))
    if seen is not None and _clock() - when <= HEAD_START_FRESH:
        return seen
    drop_head_start(seen)
    return None


def _prefetched(export: Future | None) -> tuple[int, IO[bytes]] | None:
    """The head start's export of the source, when it went well (a failed one is
    exported again, and its failure then said as the task says any). One that has not
    begun (other starts' keep the threads busy) is not waited for: exported here."""
    if export is None or export.cancel():
        return None
    try:
        return wait(export)
    except Exception:  # noqa: BLE001 - exported again below, which reports the failure
        return None


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
    head = _head_start(ctx.task.pk)
    export = (head or {}).pop("export", None)
    early_ahead = (head or {}).pop("early", None)
    if early_ahead is not None and early_ahead.cancel():  # not begun: read here instead
        early_ahead = None
    target = Environment.from_ref(ctx.task.params["target"])
    # Beside the export: the dashboards' rows (titles, uuids), unless the start read them
    # already, then what the plan reads of the target with them. Each in a copy of this
    # context (a Cancel stops them too). The plan step takes the target's reads as they
    # come (a Future): it starts its own reads without waiting for them.
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        if all(d.get("title") and d.get("uuid") for d in dashboards):
            rows: Future = Future()
            rows.set_result({d["id"]: d for d in dashboards})
        else:
            rows = pool.submit(contextvars.copy_context().run, _read_rows, source, ids)
        if early_ahead is not None:
            early = early_ahead
        else:
            # Dashboards the target changed since the last migration (or never got from
            # it) are compared by content: their export from the target starts now too.
            records = (
                promote.dashboard_records(target, [d["uuid"] for d in dashboards])
                if target and all(d.get("uuid") for d in dashboards)
                else None
            )
            early = pool.submit(
                contextvars.copy_context().run, _early_reads, target, rows, head, records
            )
        try:
            try:
                # The start's own export when it began one (a head start), else now.
                size, tmp = _prefetched(export) or promote.export_to_file(source, ids)
            finally:
                if any(not d.get("title") for d in dashboards):
                    # An unknown id is said as such, rather than as the export's 404.
                    _fill_titles(ctx, wait(rows), source)
        except SupersetError as exc:
            ctx.log.error(
                f"Export failed: {exc.message}", environment=source.name, status=exc.status
            )
            raise _failed("source", source, exc) from exc
        with tmp:
            tmp.seek(0)
            try:
                info = inspect_bundle(tmp, promote.limits())
            except InvalidBundle as exc:
                ctx.log.error(f"The exported bundle cannot be used: {exc.message}")
                raise _bad_bundle(source, exc) from exc
            tmp.seek(0)
            name = default_storage.save(f"bundles/task-{ctx.task.pk}.zip", File(tmp))
        ctx.memo["early_reads"] = early
    finally:
        # Not waited for: read-only calls that end on their own (the plan waits for them).
        pool.shutdown(wait=False)
    ctx.checkpoint.update(bundle=name, bundle_size=size, bundle_counts=info.counts)
    # A new export is planned anew.
    Promotion.objects.filter(task=ctx.task).update(plan=None, report=None)
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


def _saved_bundle(ctx: StepContext) -> str:
    name = ctx.checkpoint.get("bundle")
    if not name or not default_storage.exists(name):
        ctx.log.warning("The saved bundle is gone; exporting again.")
        export_step(ctx)
        name = ctx.checkpoint["bundle"]
    return name


def plan_step(ctx: StepContext) -> None:
    """Plan against the target (read-only), then ask everything the plan needs at once:
    the secrets of connections it creates or replaces, and what to do about slug
    conflicts. A task resumed after answering plans again: the target may have changed
    while it waited, and the answers are part of the choices now."""
    name = _saved_bundle(ctx)
    source, target = _environment(ctx, "source"), _environment(ctx, "target")
    promotion = Promotion.of(ctx.task)
    started = time.monotonic()
    promote.close_exports(ctx.memo.pop("target_exports", None))  # a plan made again
    exports: list[promote.Export] = []
    try:
        try:
            with default_storage.open(name, "rb") as bundle:
                plan = promote.plan_bundle(
                    source,
                    target,
                    bundle,
                    ctx.task.params,
                    ctx.memo.pop("early_reads", None),
                    exports,
                )
        except PlanError as exc:
            raise TaskFailed(f"The migration cannot be planned: {exc}") from exc
        except InvalidBundle as exc:  # the saved export (the target's own are SupersetAPIError)
            ctx.log.error(f"The exported bundle cannot be used: {exc.message}")
            raise _bad_bundle(source, exc) from exc
        except SupersetError as exc:
            ctx.log.error(f"Reading the target failed: {exc.message}", status=exc.status)
            raise _failed("target", target, exc) from exc
    except BaseException:
        promote.close_exports(exports)
        raise
    # The target's exports of what it may replace, read before anything is written: the
    # backup of this run takes them (a run that resumes later exports again).
    ctx.memo["target_exports"] = exports
    promote.mark_answered(plan, ctx.task.params.get("created_databases") or [])
    if promotion.plan is None:
        promote.remember_choices(source, target, plan)
    ctx.log.info(
        f"Plan against {target.name}: {_counts(plan['summary'])}",
        plan=[line.strip() for line in plan_lines(plan)],
        duration_ms=_ms(started),
    )
    _log_release(ctx, target, plan)
    promotion.plan = plan
    promotion.save(update_fields=["plan", "updated_at"])
    live.task_changed(ctx.task)
    fields = passwords.plan_fields(plan)
    if fields:
        raise NeedsInput(
            f"{target.name} needs answers before anything is written: "
            + "; ".join(sorted({f["question"] for f in fields})),
            {"fields": fields},
        )


def _log_release(ctx: StepContext, target: Environment, plan: dict[str, Any]) -> None:
    """One line per change made for the target's release, and what does not travel."""
    if plan.get("release"):
        for line in plan["adapted"]:
            ctx.log.info(f"For Superset {plan['target_release']} on {target.name}: {line}.")
    else:
        said = plan.get("target_release")
        ctx.log.info(
            f"{target.name} runs "
            + (f"Superset {said}, a release" if said else "a Superset release")
            + " this app does not know: fields it refuses are removed when it names them."
        )
    for line in plan.get("not_carried") or []:
        ctx.log.info(f"Not carried: {line}")


def _counts(summary: dict[str, int]) -> str:
    return ", ".join(f"{n} {action}" for action, n in summary.items()) or "nothing to do"


def import_step(ctx: StepContext) -> None:
    """Apply the plan: one import per asset type at most, each with only what it changes."""
    name = _saved_bundle(ctx)
    target = _environment(ctx, "target")
    plan = Promotion.of(ctx.task).plan
    if plan is None:  # exported again (the saved bundle was gone): plan it again too
        plan_step(ctx)
        plan = Promotion.of(ctx.task).plan
    imports = promote.Imports(plan)
    calls = imports.calls()
    ctx.checkpoint["written"] = bool(calls)
    if not calls:
        promote.close_exports(ctx.memo.pop("target_exports", None))
        ctx.log.info(f"Nothing to write on {target.name}: everything is as planned already.")
        return
    _back_up(ctx, target, plan)
    started = time.monotonic()
    try:
        _apply(ctx, target, name, imports, calls)
    except Exception:
        _record_what_it_left(ctx, target, plan)
        raise
    ctx.log.info(f"Imported into {target.name}", environment=target.name, duration_ms=_ms(started))


def _record_what_it_left(ctx: StepContext, target: Environment, plan: dict[str, Any]) -> None:
    """Stopped half-way: what the target shows now for what the plan writes, so that a
    rollback tells this migration's work from later changes (the verify step records
    it when the migration ends)."""
    try:
        with cancellable(lambda: None):  # a Cancel stopped the import, not this read
            changed_on = promote.check(target, plan)["changed_on"]
    except Exception:  # noqa: BLE001 - the failure that brought us here is the news
        ctx.log.warning("Could not read what the import left on the target.")
        return
    promotion = Promotion.of(ctx.task)
    promotion.backup = {**(promotion.backup or {}), "written": promote.written(changed_on)}
    promotion.save(update_fields=["backup", "updated_at"])


def _apply(
    ctx: StepContext,
    target: Environment,
    name: str,
    imports: promote.Imports,
    calls: list[tuple[str, list[str], bool, str]],
) -> None:
    for resource, paths, overwrite, what in calls:
        ctx.check_cancelled()
        for attempt in range(promote.MAX_STRIPS + 1):
            written = promote.write_import(name, resource, paths, imports.transform, imports.as_is)
            try:
                with (
                    sessions.borrow(target, writing=True) as client,
                    default_storage.open(written, "rb") as bundle,
                ):
                    client.import_assets(resource, bundle, overwrite=overwrite)
                break
            except ImportRejected as exc:
                if exc.problems.only_unknown_fields and attempt < promote.MAX_STRIPS:
                    # Stripped in the saved export itself: a prompt's answers are
                    # checked against it, and the next call is written from it.
                    name = _strip_unknown_fields(ctx, target, name, exc.problems)
                    continue
                _refused(ctx, target, name, exc)
            except SupersetAPIError as exc:
                if exc.status == 500 and attempt < promote.MAX_STRIPS:
                    # Superset answers one of two imports touching the same rows at the
                    # same time with a bare 500; each import is by uuid, so once more is
                    # safe and usually enough.
                    ctx.log.warning(
                        f"{target.name} failed {what} ({exc.message}); trying once more."
                    )
                    continue
                ctx.log.error(
                    f"Import failed ({what}): {exc.message}",
                    environment=target.name,
                    status=exc.status,
                )
                raise _failed("target", target, exc) from exc
            except SupersetError as exc:
                ctx.log.error(
                    f"Import failed ({what}): {exc.message}",
                    environment=target.name,
                    status=exc.status,
                )
                raise _failed("target", target, exc) from exc
            except Cancelled:
                ctx.log.warning(
                    f"Cancelled while {what} on {target.name}: once Superset has the whole "
                    "bundle it finishes that import on its own, so it may be there."
                )
                raise
            finally:
                default_storage.delete(written)
        ctx.log.info(f"{target.name}: {what}", files=len(paths), overwrite=overwrite)


def _back_up(ctx: StepContext, target: Environment, plan: dict[str, Any]) -> None:
    """Before the first write: the target's own version of what the plan replaces."""
    promotion = Promotion.of(ctx.task)
    exported = ctx.memo.pop("target_exports", None)
    try:
        if promotion.backup is not None:
            return
        backup = rollback.take_backup(target, plan, ctx.task, exported)
    except SupersetError as exc:
        raise _failed("target", target, exc) from exc
    finally:
        promote.close_exports(exported)
    promotion.backup = backup or {}
    promotion.save(update_fields=["backup", "updated_at"])
    if backup:
        ctx.checkpoint["backup"] = backup["file"]  # for purge_tasks, after the row is gone
        counts = ", ".join(f"{len(rows)} {kind}" for kind, rows in backup["assets"].items())
        ctx.log.info(
            f"Backed up what this migration replaces on {target.name}: {counts} "
            f"({backup['bytes']:,} bytes); a rollback puts it back.",
            bytes=backup["bytes"],
            assets={k: [r["name"] for r in rows] for k, rows in backup["assets"].items()},
        )


def verify_step(ctx: StepContext) -> None:
    """Read the target again and report per asset; a mismatch fails the task."""
    target = _environment(ctx, "target")
    promotion = Promotion.of(ctx.task)
    try:
        result = promote.check(target, promotion.plan, written=ctx.checkpoint.get("written", True))
    except SupersetError as exc:
        raise _failed("target", target, exc) from exc
    changed_on = result.pop("changed_on")
    promote.remember_writes(target, promotion.plan, changed_on, ctx.task)
    # What the target showed right after: a rollback leaves alone what changed since.
    result["written"] = promote.written(changed_on)
    result["adapted"] = promotion.plan.get("adapted") or []
    result["not_carried"] = promotion.plan.get("not_carried") or []
    promotion.report = result
    promotion.save(update_fields=["report", "updated_at"])
    # Published with the task's end, moments later (verify is the last step: whatever it
    # raises, the task then changes status), not as a change of its own.
    for warning in result["warnings"]:
        ctx.log.warning(warning)
    ctx.log.info(
        f"Report: {_counts(result['counts'])}",
        report=[f"{a['type'][:-1]} {a['name']}: {a['outcome']}" for a in result["assets"]],
    )
    name = ctx.checkpoint.pop("bundle", None)
    if name and default_storage.exists(name):
        default_storage.delete(name)
    if result["warnings"]:
        raise TaskFailed(
            f"Imported, but {len(result['warnings'])} check(s) on {target.name} failed: "
            + " ".join(result["warnings"][:3])
        )


def _strip_unknown_fields(
    ctx: StepContext, target: Environment, name: str, problems: ImportProblems
) -> str:
    """Remove the fields an older Superset (4.1) refuses; keep the result as the checkpoint."""
    with (
        default_storage.open(name, "rb") as source,
        tempfile.TemporaryFile(dir=settings.DATA_DIR) as stripped,
    ):
        removed = strip_fields(source, stripped, problems.unknown_fields, promote.limits())
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
    if exc.problems.keys_needing("overwrite"):
        # Something the plan saw missing exists now (another migration, a person):
        # plan again rather than overwrite what the plan did not show.
        Promotion.objects.filter(task=ctx.task).update(plan=None)
        raise TaskFailed(
            f"{target.name} changed since the plan ({exc.problems.describe()}). "
            "Retry the task: it plans again against the target as it is now."
        ) from exc
    if passwords.can_ask(exc.problems):
        with default_storage.open(name, "rb") as bundle:
            info = inspect_bundle(bundle, promote.limits())
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


def summary(task: Task) -> Summary:
    params = task.params
    target = params.get("target", {}).get("name", "?")
    rolled_back_by = params.get("rolled_back_by")
    can_roll_back = task.status in FINISHED_STATUSES and not rolled_back_by
    return Summary(
        title="Migration",
        route=f"{params.get('source', {}).get('name', '?')} → {target}",
        items=[d.get("title") or f"#{d.get('id')}" for d in params.get("dashboards", [])],
        items_label="Dashboards",
        options="overwrite existing" if params.get("overwrite") else "",
        asker=target,
        links=(
            [(f"rolled back by #{rolled_back_by}", reverse("task-detail", args=[rolled_back_by]))]
            if rolled_back_by
            else []
        ),
        actions=[("Roll back", reverse("task-rollback", args=[task.pk]))] if can_roll_back else [],
    )


def task_json(task: Task) -> dict[str, Any]:
    """A migration's keys in the task's JSON (README, "API")."""
    params = task.params or {}
    return {
        "source": params.get("source"),
        "target": params.get("target"),
        "dashboards": params.get("dashboards", []),
        "overwrite": params.get("overwrite"),
    }


def details(task: Task) -> dict[str, Any]:
    promotion = Promotion.objects.filter(task=task).first()
    if promotion is None:
        return {"plan": None, "report": None, "backup": None, "rolled_back_by": None}
    backup = promotion.backup or {}
    return {
        "plan": promotion.plan,
        "report": promotion.report,
        "backup": (
            {"bytes": backup["bytes"], "assets": backup["assets"]} if backup.get("file") else None
        ),
        "rolled_back_by": promotion.rolled_back_by_id,
    }


def page_details(task: Task) -> dict[str, Any]:
    found = details(task)
    return {**found, "plan_rows": display_rows(found["plan"]) if found["plan"] else []}


def cleanup(task: Task) -> None:
    """The saved export; and, when the task itself goes (purge), its backup."""
    name = task.checkpoint.get("bundle")
    if name and default_storage.exists(name):
        default_storage.delete(name)
    backup = task.checkpoint.get("backup")
    if backup and not Task.objects.filter(pk=task.pk).exists() and default_storage.exists(backup):
        default_storage.delete(backup)


def kept_files(task: Task) -> dict[str, int]:
    """What the task keeps on disk, by what it is: its backup, for a rollback."""
    backup = task.checkpoint.get("backup")
    if backup and default_storage.exists(backup):
        return {"backup": default_storage.size(backup)}
    return {}


def roll_back(task: Task, user: Any) -> str | None:
    """The admin's "Roll back selected migrations", for one: why it refused, or None."""
    try:
        rollback.start_rollback(task, owner=user)
    except rollback.CannotRollBack as exc:
        return str(exc)
    return None


MIGRATION = engine.register(
    engine.TaskKind(
        name=KIND,
        label="Migration",
        steps=(
            engine.Step("export", sessions.interruptible(export_step), repeatable=True),
            engine.Step("plan", sessions.interruptible(plan_step), repeatable=True),
            # Superset may have written part of an import when a worker dies.
            engine.Step("import", sessions.interruptible(import_step), repeatable=False),
            engine.Step("verify", sessions.interruptible(verify_step), repeatable=True),
        ),
        summary=summary,
        task_json=task_json,
        field_info=passwords.field_info,
        parse_answers=passwords.parse_answers,
        answer_key=passwords.answer_key,
        cleanup=cleanup,
        kept_files=kept_files,
        retry_refused=lambda task: (
            f"it was rolled back by task #{task.params['rolled_back_by']}; migrate again instead"
            if task.params.get("rolled_back_by")
            else ""
        ),
        answer=passwords.answer,
        details=details,
        page=("migrator/_promotion.html", page_details),
        admin_actions=(
            AdminAction(
                "roll_back_migrations",
                "Roll back selected migrations",
                roll_back,
                done="Rollback task started for",
            ),
        ),
    )
)


def start_migration(
    *,
    owner: Any,
    source: Environment,
    target: Environment,
    dashboards: list[dict],
    overwrite: bool,
    databases: dict[str, dict[str, Any]] | None = None,
    conflicts: dict[str, str] | None = None,
    seen: dict[str, Any] | None = None,
) -> Task:
    """``seen``: what the start read of the target and began to read of both sides
    (``promote.check_choices``), a head start for the task when a worker of this process
    takes it at once."""
    with transaction.atomic():  # kept before a worker can see the task
        task = _submit(owner, source, target, dashboards, overwrite, databases, conflicts)
        if seen:
            _keep_head_start(task.pk, seen)
    return task


def _submit(
    owner: Any,
    source: Environment,
    target: Environment,
    dashboards: list[dict],
    overwrite: bool,
    databases: dict[str, dict[str, Any]] | None,
    conflicts: dict[str, str] | None,
) -> Task:
    return engine.submit(
        KIND,
        owner=owner,
        params={
            "source": source.as_ref(),
            "target": target.as_ref(),
            "dashboards": [
                {"id": d["id"], "title": d.get("title", "")}
                | {k: d[k] for k in ("uuid", "slug") if k in d}
                for d in dashboards
            ],
            "overwrite": overwrite,
            **({"databases": databases} if databases else {}),
            **({"conflicts": conflicts} if conflicts else {}),
        },
    )
