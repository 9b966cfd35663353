"""Undoing a migration: what it replaced comes back from its backup, what it created is
deleted, and what someone changed on the target since is left alone.

Before its first write, a migration exports the target's own version of every asset it
will update or replace (``take_backup``). A rollback is a task of its own kind
(``rollback``): it plans against the target as it is now (``plan_rollback``), then
re-imports the backup through the same per-type imports a promotion uses, deletes what
the migration created (a connection only when nothing else uses it), and reports.
"""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.urls import reverse

from migrator import promote, sessions
from migrator.models import Environment, Promotion
from migrator.superset.assets import (
    ASSET_TYPES,
    merge_bundles,
    scan,
)
from migrator.superset.errors import SupersetError
from tasks_app.kinds import Step, Summary, TaskKind, register
from tasks_app.models import FINISHED_STATUSES, Task

KIND = "rollback"
# What a migration replaces on the target, per plan action, and the export that keeps it.
REPLACED = ("update", "take_over", "replace")
CREATED = ("create", "rename")


class CannotRollBack(Exception):
    """Refused, with the reason a person reads (the API answers 409)."""


# --- the backup, taken by the migration -----------------------------------------------


def backup_rows(plan: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The target's own assets the plan replaces: ``{kind: [{uuid, name, id}]}``."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for kind in ASSET_TYPES:
        for item in plan[kind]:
            target = item.get("target") or {}
            if item["action"] in REPLACED and target.get("id") is not None:
                rows.setdefault(kind, []).append(
                    {
                        "uuid": target.get("uuid") or item["uuid"],
                        "name": item["name"],
                        "id": target["id"],
                    }
                )
    return rows


def take_backup(
    target: Environment,
    plan: dict[str, Any],
    task: Task,
    exported: list[promote.Export] | None = None,
) -> dict[str, Any] | None:
    """Export the target's version of what the plan replaces, as one saved bundle (its
    passwords masked, as in any Superset export). None when the plan replaces nothing.
    ``exported``: the target's exports of dashboards that the plan read (moments ago, in
    this run, before anything was written), used instead of exporting them again."""
    rows = backup_rows(plan)
    if not any(kind != "databases" for kind in rows):
        return None
    carried: set[tuple[str, str]] = set()
    with contextlib.ExitStack() as stack:
        exports = []
        with sessions.borrow(target) as client:
            # Dashboards first: their export carries their charts and datasets, which are
            # then not exported again.
            for kind in ("dashboards", "charts", "datasets"):
                ids = [r["id"] for r in rows.get(kind, []) if (kind, r["uuid"]) not in carried]
                if not ids:
                    continue
                ready = [e for e in exported or [] if kind == "dashboards" and set(ids) <= e.ids]
                if ready:
                    ready[0].file.seek(0)
                    exports.append(ready[0].file)
                    carried |= ready[0].carried
                    continue
                tmp = stack.enter_context(tempfile.TemporaryFile(dir=settings.DATA_DIR))
                client.export_assets(kind[:-1], ids, tmp)
                tmp.seek(0)
                if kind == "dashboards" and (rows.get("charts") or rows.get("datasets")):
                    carried |= {(a.type, a.uuid) for a in scan(tmp, promote.limits()).assets}
                    tmp.seek(0)
                exports.append(tmp)
        merged = stack.enter_context(tempfile.TemporaryFile(dir=settings.DATA_DIR))
        merge_bundles(exports, merged, root=f"backup_task_{task.pk}", limits=promote.limits())
        size = merged.tell()
        merged.seek(0)
        name = default_storage.save(f"bundles/task-{task.pk}-backup.zip", File(merged))
    return {"file": name, "bytes": size, "assets": rows}


# --- starting a rollback ----------------------------------------------------------------


def check_can_roll_back(migration: Task) -> Promotion:
    if migration.kind != "migration":
        raise CannotRollBack(
            f"Task #{migration.pk} is a {migration.kind}, not a migration: only a migration "
            "can be rolled back (migrate again to redo what a rollback undid)."
        )
    if migration.status not in FINISHED_STATUSES:
        raise CannotRollBack(
            f"Task #{migration.pk} is {migration.get_status_display().lower()}: "
            "a migration is rolled back once it has finished."
        )
    promotion = Promotion.objects.filter(task=migration).first()
    if promotion is None or not promotion.plan:
        raise CannotRollBack(f"Task #{migration.pk} wrote nothing: there is nothing to roll back.")
    if promotion.rolled_back_by_id:
        raise CannotRollBack(
            f"Task #{migration.pk} is already rolled back by task #{promotion.rolled_back_by_id}."
        )
    return promotion


def start_rollback(migration: Task, *, owner: Any) -> Task:
    """Queue the rollback of ``migration``: once only (a second one is refused)."""
    from tasks_app import engine

    with transaction.atomic():
        promotion = check_can_roll_back(migration)
        promotion = Promotion.objects.select_for_update().get(pk=promotion.pk)
        if promotion.rolled_back_by_id:
            raise CannotRollBack(
                f"Task #{migration.pk} is already rolled back by task "
                f"#{promotion.rolled_back_by_id}."
            )
        task = engine.submit(
            KIND,
            owner=owner,
            params={
                "migration": migration.pk,
                "source": migration.params.get("source"),
                "target": migration.params.get("target"),
                "dashboards": migration.params.get("dashboards", []),
            },
        )
        promotion.rolled_back_by = task
        promotion.save(update_fields=["rolled_back_by", "updated_at"])
        # The history shows the link without a query per row.
        migration.params = {**migration.params, "rolled_back_by": task.pk}
        Task.objects.filter(pk=migration.pk).update(params=migration.params)
    migration.touch()
    return task


# --- the plan of a rollback ---------------------------------------------------------------


def plan_rollback(migration: Task) -> dict[str, Any]:
    """What a rollback of ``migration`` will do, asset by asset, against the target as it
    is now (read-only). Assets changed on the target after the migration are kept."""
    promotion = Promotion.objects.get(task=migration)
    target = Environment.from_ref(migration.params["target"])
    if target is None:
        raise CannotRollBack("The target environment no longer exists.")
    plan = promotion.plan
    # What the target showed right after the migration's writes: from its verify step,
    # or, when it stopped half-way, from the moment it stopped.
    backup = promotion.backup or {}
    written = (promotion.report or {}).get("written") or backup.get("written") or {}
    backed_up = {(k, r["uuid"]) for k, rows in (backup.get("assets") or {}).items() for r in rows}
    now = _read_target(target, plan)
    items: list[dict[str, Any]] = []
    for kind in ASSET_TYPES:
        for item in plan[kind]:
            items.append(_step(kind, item, now, written, backed_up))
    _keep_what_kept_assets_use(plan, items)
    return {
        "migration": migration.pk,
        "target": {"id": target.pk, "name": target.name},
        "backup": {"bytes": backup["bytes"]} if backup.get("file") else None,
        "assets": items,
        "summary": _summary(items),
    }


def _read_target(
    target: Environment, plan: dict[str, Any], more: dict[str, set[str]] | None = None
) -> dict[tuple[str, str], dict]:
    uuids = {
        kind: {promote.expected_uuid(kind, i) for i in plan[kind] if i["action"] != "skip"}
        | (more or {}).get(kind, set())
        for kind in ("datasets", "charts", "dashboards")
    }
    found = promote.parallel(
        target,
        {
            "databases": lambda c: c.list_databases(),
            "datasets": promote._find(
                "dataset", "uuid", uuids["datasets"], promote.DATASET_COLUMNS
            ),
            "charts": promote._find("chart", "uuid", uuids["charts"], promote.CHART_COLUMNS),
            "dashboards": promote._find(
                "dashboard", "uuid", uuids["dashboards"], promote.DASHBOARD_COLUMNS
            ),
        },
    )
    rows = {("databases", str(r.get("uuid"))): r for r in found["databases"]}
    for kind in ("datasets", "charts", "dashboards"):
        rows.update({(kind, str(r["uuid"])): r for r in found[kind]})
    return rows


def _step(
    kind: str,
    item: dict[str, Any],
    now: dict[tuple[str, str], dict],
    written: dict[str, str],
    backed_up: set[tuple[str, str]],
) -> dict[str, Any]:
    uuid = promote.expected_uuid(kind, item)
    row = now.get((kind, uuid))
    entry = {
        "type": kind,
        "name": item["name"],
        "uuid": uuid,
        "id": row["id"] if row else None,
        "migration": item["action"],
    }
    created = item["action"] in CREATED
    replaced = item["action"] in REPLACED
    if not (created or replaced):
        return entry | {"action": "untouched", "reason": "the migration did not write it"}
    if row is None:
        if created:
            return entry | {"action": "gone", "reason": "no longer on the target"}
        return entry | {"action": "keep", "reason": "no longer on the target", "warning": True}
    if kind == "databases" and replaced:
        return entry | {
            "action": "keep",
            "warning": True,
            "reason": "a replaced connection is not put back (no export holds its password): "
            "edit it on the target",
        }
    recorded = written.get(f"{kind}/{uuid}")
    changed_on = row.get("changed_on_utc") or ""
    if kind != "databases" and not recorded:
        return entry | {
            "action": "keep",
            "warning": True,
            "reason": "no record of what the migration left here (it stopped before "
            "writing, or before it could read the target back): left as it is",
        }
    if kind != "databases" and changed_on != recorded:
        return entry | {
            "action": "keep",
            "warning": True,
            "reason": "changed on the target after the migration: left as it is",
        }
    if created:
        reason = "created by the migration: deleted"
        if kind == "databases":
            reason += " unless something else on the target uses it"
        return entry | {"action": "delete", "reason": reason}
    # The target's own asset as the backup has it: under its own uuid, which a take
    # over replaced with the source's.
    for restore_uuid in ((item.get("target") or {}).get("uuid"), uuid):
        if restore_uuid and (kind, restore_uuid) in backed_up:
            return entry | {
                "action": "restore",
                "restore_uuid": restore_uuid,
                "reason": "put back as the backup has it",
            }
    return entry | {"action": "keep", "warning": True, "reason": "no backup of it: left as it is"}


def _keep_what_kept_assets_use(plan: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """A dashboard kept keeps its charts; a chart kept keeps its dataset (deleting them
    would break what someone chose to keep). Connections are checked when deleting."""
    by_key = {(i["type"], i["uuid"]): i for i in items}
    dataset_uuid = {d["uuid"]: d["target_uuid"] for d in plan["datasets"]}
    uses = [
        *[
            ("dashboards", d["uuid"], "charts", c)
            for d in plan["dashboards"]
            for c in d.get("charts", [])
        ],
        *[
            ("charts", c["uuid"], "datasets", dataset_uuid.get(c.get("dataset") or "", ""))
            for c in plan["charts"]
        ],
    ]
    for kind, uuid, used_kind, used_uuid in uses:
        user, used = by_key.get((kind, uuid)), by_key.get((used_kind, used_uuid))
        if user and used and user["action"] == "keep" and used["action"] == "delete":
            used["action"] = "keep"
            used["reason"] = f"the {kind[:-1]} {user['name']!r}, kept, uses it"


def _summary(items: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        if item["action"] != "untouched":
            counts[item["action"]] = counts.get(item["action"], 0) + 1
    return dict(sorted(counts.items()))


# --- undoing -------------------------------------------------------------------------------


def restore_calls(plan: dict[str, Any], backup_file: Any) -> list[tuple[str, list[str]]]:
    """(resource, bundle paths of the backup) for each import that puts assets back: one
    per type, each with what it refers to (connections, datasets) from the backup too."""
    backup = scan(backup_file, promote.limits())
    by_uuid = {(a.type, a.uuid): a for a in backup.assets}
    calls = []
    for kind in ASSET_TYPES:
        wanted = [
            by_uuid[(kind, _restore_uuid(i))]
            for i in plan["assets"]
            if i["type"] == kind
            and i["action"] == "restore"
            and (kind, _restore_uuid(i)) in by_uuid
        ]
        if not wanted:
            continue
        paths = {a.path for a in wanted}
        for asset in wanted:
            dataset = by_uuid.get(("datasets", asset.dataset_uuid or ""))
            if dataset is not None:
                paths.add(dataset.path)
            for uuid in (asset.database_uuid, dataset.database_uuid if dataset else None):
                if ("databases", uuid or "") in by_uuid:
                    paths.add(by_uuid[("databases", uuid)].path)
            for chart_uuid in asset.chart_uuids:
                chart = by_uuid.get(("charts", chart_uuid))
                if chart is None:
                    continue
                paths.add(chart.path)
                ds = by_uuid.get(("datasets", chart.dataset_uuid or ""))
                if ds is not None:
                    paths.add(ds.path)
                    db = by_uuid.get(("databases", ds.database_uuid or ""))
                    if db is not None:
                        paths.add(db.path)
        calls.append((kind[:-1], sorted(paths)))
    return calls


def _restore_uuid(item: dict[str, Any]) -> str:
    return item.get("restore_uuid") or item["uuid"]


def delete_created(client: Any, plan: dict[str, Any], log: Any) -> list[str]:
    """Delete what the migration created, dashboards first; a connection only when no
    dataset on the target uses it any more. Returns what was kept, and why."""
    kept = _keep_what_the_target_uses(client, plan)
    for kind in ("dashboards", "charts", "datasets"):
        ids = [i["id"] for i in plan["assets"] if i["type"] == kind and i["action"] == "delete"]
        if ids:
            client.delete_assets(kind[:-1], ids)
            log.info(f"Deleted {len(ids)} {kind} the migration created.", ids=ids)
    for item in plan["assets"]:
        if item["type"] != "databases" or item["action"] != "delete":
            continue
        users = client.count_datasets_on(item["id"])
        if users:
            item["action"], item["warning"] = "keep", True
            item["reason"] = f"{users} dataset(s) on the target still use it: left as it is"
            kept.append(item["name"])
            continue
        client.delete_database(item["id"])
        log.info(f"Deleted the connection {item['name']} the migration created.")
    return kept


def _keep_what_the_target_uses(client: Any, plan: dict[str, Any]) -> list[str]:
    """A created chart on a dashboard of the target's own, or a created dataset under a
    chart of the target's own (made after the migration), is kept: deleting it would
    break that work. Read before anything is deleted (two reads)."""
    deleting = {
        kind: {i["id"] for i in plan["assets"] if i["type"] == kind and i["action"] == "delete"}
        for kind in ("dashboards", "charts", "datasets")
    }
    used: dict[tuple[str, int], str] = {}
    if deleting["charts"]:
        for row in client.find_rows("chart", "id", deleting["charts"], ["id", "dashboards.id"]):
            others = {d.get("id") for d in row.get("dashboards") or []} - deleting["dashboards"]
            if others:
                used[("charts", row["id"])] = f"{len(others)} other dashboard(s) on the target"
    keeping_charts = {cid for kind, cid in used if kind == "charts"}
    if deleting["datasets"]:
        rows = client.find_rows(
            "chart", "datasource_id", deleting["datasets"], ["id", "datasource_id"]
        )
        for row in rows:
            if row["id"] not in deleting["charts"] or row["id"] in keeping_charts:
                used.setdefault(("datasets", row["datasource_id"]), "charts on the target")
    kept = []
    for item in plan["assets"]:
        why = used.get((item["type"], item["id"])) if item["action"] == "delete" else None
        if why:
            item["action"], item["warning"] = "keep", True
            item["reason"] = f"{why} use it (made after the migration): left as it is"
            kept.append(item["name"])
    return kept


# --- the rollback kind's steps ---------------------------------------------------------------


def _migration(ctx: Any) -> Task:
    from tasks_app.kinds import TaskFailed

    migration = Task.objects.filter(pk=ctx.task.params["migration"]).first()
    if migration is None:
        raise TaskFailed(f"Task #{ctx.task.params['migration']} no longer exists.")
    return migration


def plan_step(ctx: Any) -> None:
    from tasks_app.kinds import TaskFailed

    migration = _migration(ctx)
    try:
        plan = plan_rollback(migration)
    except CannotRollBack as exc:
        raise TaskFailed(str(exc)) from exc
    except SupersetError as exc:
        raise TaskFailed(f"Reading the target failed: {exc.message}") from exc
    own = Promotion.of(ctx.task)
    own.plan = plan
    own.save(update_fields=["plan", "updated_at"])
    ctx.task.touch()
    ctx.log.info(
        f"Rollback plan for task #{migration.pk}: "
        + (", ".join(f"{n} {a}" for a, n in plan["summary"].items()) or "nothing to undo"),
        plan=[
            f"{i['type'][:-1]} {i['name']}: {i['action']} ({i['reason']})" for i in plan["assets"]
        ],
    )


def restore_step(ctx: Any) -> None:
    from tasks_app.kinds import TaskFailed

    plan = Promotion.of(ctx.task).plan
    backup = Promotion.objects.get(task=_migration(ctx)).backup or {}
    name = backup.get("file")
    wanted = [i for i in plan["assets"] if i["action"] == "restore"]
    if not wanted:
        return
    if not name or not default_storage.exists(name):
        raise TaskFailed("The migration's backup is gone: nothing can be put back.")
    target = Environment.from_ref(ctx.task.params["target"])
    if target is None:
        raise TaskFailed("The target environment no longer exists.")
    with default_storage.open(name, "rb") as bundle:
        calls = restore_calls(plan, bundle)
    for resource, paths in calls:
        ctx.check_cancelled()
        written = promote.write_import(name, resource, paths, lambda path, doc: doc)
        try:
            with (
                sessions.borrow(target, writing=True) as client,
                default_storage.open(written, "rb") as f,
            ):
                client.import_assets(resource, f, overwrite=True)
        except SupersetError as exc:
            raise TaskFailed(
                f"{target.name} refused to put the {resource}s back: {exc.message}"
            ) from exc
        finally:
            default_storage.delete(written)
        ctx.log.info(f"{target.name}: put {resource}s back from the backup", files=len(paths))


def delete_step(ctx: Any) -> None:
    from tasks_app.kinds import TaskFailed

    own = Promotion.of(ctx.task)
    plan = own.plan
    if not any(i["action"] == "delete" for i in plan["assets"]):
        return
    target = Environment.from_ref(ctx.task.params["target"])
    if target is None:
        raise TaskFailed("The target environment no longer exists.")
    try:
        with sessions.borrow(target, writing=True) as client:
            delete_created(client, plan, ctx.log)
    except SupersetError as exc:
        raise TaskFailed(f"{target.name} refused a deletion: {exc.message}") from exc
    own.plan = plan  # connections still in use are kept (and said so)
    own.save(update_fields=["plan", "updated_at"])


OUTCOMES = {"restore": "restored", "delete": "deleted", "keep": "kept", "gone": "gone"}


def report_step(ctx: Any) -> None:
    own = Promotion.of(ctx.task)
    plan = own.plan
    target = Environment.from_ref(ctx.task.params["target"])
    restored: dict[str, set[str]] = {}
    for item in plan["assets"]:
        if item["action"] == "restore":
            restored.setdefault(item["type"], set()).add(_restore_uuid(item))
    migration_plan = Promotion.objects.get(task=_migration(ctx)).plan
    now = _read_target(target, migration_plan, restored) if target else {}
    assets, warnings = [], []
    for item in plan["assets"]:
        if item["action"] == "untouched":
            continue
        row = now.get((item["type"], _restore_uuid(item)))
        outcome = OUTCOMES[item["action"]]
        if item["action"] == "delete" and row is not None:
            outcome = "still there"
            warnings.append(f"{item['name']} ({item['type'][:-1]}) is still on the target.")
        elif item["action"] == "restore" and row is None:
            outcome = "missing"
            warnings.append(f"{item['name']} ({item['type'][:-1]}) is not on the target.")
        elif item.get("warning"):
            warnings.append(f"{item['name']} ({item['type'][:-1]}) kept: {item['reason']}.")
        assets.append(
            {
                "type": item["type"],
                "name": item["name"],
                "uuid": item["uuid"],
                "outcome": outcome,
                "id": row["id"] if row else None,
                "url": promote._link(target.url, item["type"], row["id"])
                if row and target
                else None,
            }
        )
    counts: dict[str, int] = {}
    for a in assets:
        counts[a["outcome"]] = counts.get(a["outcome"], 0) + 1
    own.report = {"assets": assets, "warnings": warnings, "counts": dict(sorted(counts.items()))}
    own.save(update_fields=["report", "updated_at"])
    ctx.task.touch()
    for warning in warnings:
        ctx.log.warning(warning)
    ctx.log.info(
        "Report: "
        + (", ".join(f"{n} {o}" for o, n in own.report["counts"].items()) or "nothing undone"),
        report=[f"{a['type'][:-1]} {a['name']}: {a['outcome']}" for a in assets],
    )


# --- the kind ---------------------------------------------------------------------------------


def summary(task: Task) -> Summary:
    params = task.params
    migration = params.get("migration")
    return Summary(
        title=f"Rollback of #{migration}",
        route=f"{(params.get('target') or {}).get('name', '?')} (undo)",
        items=[d.get("title") or f"#{d.get('id')}" for d in params.get("dashboards", [])],
        items_label="Dashboards",
        asker=(params.get("target") or {}).get("name", ""),
        links=[(f"rolls back #{migration}", reverse("task-detail", args=[migration]))],
    )


def task_json(task: Task) -> dict[str, Any]:
    return {"migration": task.params.get("migration"), "target": task.params.get("target")}


def details(task: Task) -> dict[str, Any]:
    own = Promotion.objects.filter(task=task).first()
    return {"plan": own.plan if own else None, "report": own.report if own else None}


def page_details(task: Task) -> dict[str, Any]:
    return {**details(task), "rollback": True}


ROLLBACK = register(
    TaskKind(
        name=KIND,
        label="Rollback",
        steps=(
            Step("plan", sessions.interruptible(plan_step), repeatable=True),
            # Each import is by uuid and puts back the same documents: safe to repeat.
            Step("restore", sessions.interruptible(restore_step), repeatable=True),
            Step("delete", sessions.interruptible(delete_step), repeatable=True),
            Step("report", sessions.interruptible(report_step), repeatable=True),
        ),
        summary=summary,
        task_json=task_json,
        details=details,
        page=("migrator/_rollback.html", page_details),
    )
)
