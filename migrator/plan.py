"""What a migration will do on its target, decided before anything is written.

Pure: the source's assets (``migrator.superset.assets.scan``) and what the target holds
(``Inventory``, read by ``migrator.promote``) go in, a JSON-able plan comes out. Per
asset one action:

- ``create``: not on the target;
- ``update``: on the target (same uuid), different, overwrite on;
- ``unchanged``: on the target and identical: not written;
- ``keep``: on the target, different, overwrite off: left as it is;
- ``map``: a connection or dataset of the target's own is used instead;
- ``replace``: the target's connection of the same name is replaced (asked for each time);
- ``conflict``: a dashboard of the target's own has the slug; answered by ``rename``
  (import under a new slug), ``take_over`` or ``skip``;
- ``skip``: left out (its dashboard is skipped or kept).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from migrator.superset.assets import Asset, BundleAssets, same_content

DATABASE_ACTIONS = ("map", "create", "replace")
CONFLICT_ANSWERS = ("rename", "take_over", "skip")
IMPORTED_DASHBOARD_ACTIONS = ("create", "update", "rename", "take_over")
# Actions that write an asset's file on the target.
WRITES = ("create", "update", "replace", "rename", "take_over")
PLAN_VERSION = 1


class PlanError(Exception):
    """The choices given cannot be planned: ``errors`` maps a field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


@dataclass
class Inventory:
    """What the target holds that matters for one bundle (read-only calls)."""

    databases: list[dict[str, Any]] = field(default_factory=list)
    """Every connection: ``{id, uuid, name, backend}``."""
    datasets: list[dict[str, Any]] = field(default_factory=list)
    """Datasets with a bundle dataset's uuid or table: ``{id, uuid, schema, table, database_uuid}``."""
    charts: list[dict[str, Any]] = field(default_factory=list)
    """Charts with a bundle chart's uuid: ``{id, uuid, name}``."""
    dashboards: list[dict[str, Any]] = field(default_factory=list)
    """Dashboards with a bundle dashboard's uuid or slug: ``{id, uuid, name, slug}``."""
    copies: dict[tuple[str, str], Asset] = field(default_factory=dict)
    """The target's own export of the assets it has by uuid: (type, uuid) -> Asset."""
    release: str | None = None
    """The Superset release the target says it runs (``"6.1.0"``), if it says."""

    def by_uuid(self, kind: str) -> dict[str, dict[str, Any]]:
        return {row["uuid"]: row for row in getattr(self, kind)}


@dataclass
class Choices:
    overwrite: bool = False
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Source connection name or uuid -> ``{"action": "map", "target": name|id|uuid}``,
    ``{"action": "create"}`` or ``{"action": "replace"}``."""
    saved: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Remembered choices of this source → target pair, by source connection name."""
    conflicts: dict[str, str] = field(default_factory=dict)
    """Dashboard uuid or slug -> rename, take_over or skip."""
    records: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    """(type, target uuid) -> (source hash, the target's ``changed_on``) when the last
    migration wrote it: both still the same means nobody changed it since."""


def make_plan(bundle: BundleAssets, target: Inventory, choices: Choices) -> dict[str, Any]:
    _check_names(bundle, choices)
    databases = [_database(db, target, choices) for db in bundle.of("databases")]
    # Where each source connection's datasets will live: uuid on the target.
    db_target = {p["uuid"]: p["target"]["uuid"] if p["target"] else p["uuid"] for p in databases}
    datasets = [_dataset(ds, target, choices, db_target) for ds in bundle.of("datasets")]
    ds_target = {p["uuid"]: p["target_uuid"] for p in datasets}
    charts = [_chart(ch, target, choices, ds_target) for ch in bundle.of("charts")]
    dashboards = [_dashboard(d, target, choices, ds_target) for d in bundle.of("dashboards")]
    taken = {r["slug"] for r in target.dashboards if r.get("slug")} | {
        a.slug for a in bundle.of("dashboards") if a.slug
    }
    plan = {
        "version": PLAN_VERSION,
        "overwrite": choices.overwrite,
        "databases": databases,
        "datasets": datasets,
        "charts": charts,
        "dashboards": dashboards,
    }
    plan["slugs_taken"] = sorted(taken)
    resolve_conflicts(plan, choices.conflicts, taken)
    return plan


def summary(plan: dict[str, Any]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for kind in ("databases", "datasets", "charts", "dashboards"):
        counts.update(item["action"] for item in plan[kind])
    return dict(sorted(counts.items()))


def assets(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        dict(item, type=kind)
        for kind in ("dashboards", "charts", "datasets", "databases")
        for item in plan[kind]
    ]


def display_rows(plan: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(type, items) for a table of the plan: dashboards first, as people read it."""
    return [(kind[:-1], plan[kind]) for kind in ("dashboards", "charts", "datasets")]


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """The plan as text, one asset per line (the task's log, the CLI)."""
    lines = []
    for item in assets(plan):
        target = item.get("target") or {}
        onto = f" → {target['name']}" if item["action"] in ("map", "replace") else ""
        lines.append(
            f"  {item['type'][:-1]:<9} {item['name'] + onto:<45} {item['action']:<10} "
            f"{item.get('reason', '')}"
        )
    for line in plan.get("adapted") or []:
        lines.append(f"  For Superset {plan['target_release']}: {line}")
    for line in plan.get("not_carried") or []:
        lines.append(f"  Not carried: {line}")
    return lines


def open_conflicts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in plan["dashboards"] if d["action"] == "conflict"]


def databases_needing_secrets(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Connections written with a masked secret: asked before anything is written."""
    return [
        db
        for db in plan["databases"]
        if (db["needs_password"] or db["ssh_secrets"])
        and not db.get("done")
        and (db["action"] == "replace" or (db["action"] == "create" and not db["exists"]))
    ]


def resolve_conflicts(plan: dict[str, Any], answers: dict[str, str], slugs_taken: set[str]) -> None:
    """Apply answers (dashboard uuid or slug -> rename/take_over/skip) to a plan."""
    for item in plan["dashboards"]:
        if item["action"] != "conflict" and not item.get("conflict"):
            continue
        answer = answers.get(item["uuid"]) or answers.get(item["slug"] or "")
        if answer not in CONFLICT_ANSWERS:
            continue
        item["action"] = answer
        item["new_slug"] = (
            _free_slug(item["slug"], item["uuid"], slugs_taken) if answer == "rename" else None
        )
        item["reason"] = {
            "rename": f"imported as a new dashboard under the slug {item['new_slug']!r}",
            "take_over": "the target's dashboard with this slug is replaced by this one",
            "skip": "left out: the target's dashboard with this slug stays as it is",
        }[answer]
    _skip_what_nothing_imports(plan)
    plan["summary"] = summary(plan)


def _free_slug(slug: str, uuid: str, taken: set[str]) -> str:
    """``<slug>-<start of the dashboard's uuid>``: the same on every run (a rename
    sticks), and no dashboard of the target's own or of the bundle has it (the target
    is read for the bundle's slugs only, so a counter like ``-2`` could be taken)."""
    digits = uuid.replace("-", "")
    candidates = [f"{slug}-{digits[:size]}" for size in range(8, len(digits) + 4, 4)]
    candidates += [f"{slug}-{digits}-{n}" for n in range(2, len(taken) + 3)]
    chosen = next(c for c in candidates if c not in taken)
    taken.add(chosen)
    return chosen


# --- per asset type --------------------------------------------------------------------


def _check_names(bundle: BundleAssets, choices: Choices) -> None:
    known = {a.name for a in bundle.of("databases")} | {a.uuid for a in bundle.of("databases")}
    errors: dict[str, list[str]] = {}
    for key, choice in choices.databases.items():
        if key not in known:
            errors.setdefault("databases", []).append(
                f"{key!r} is not a connection of the dashboards chosen "
                f"(they use: {', '.join(sorted(a.name for a in bundle.of('databases'))) or 'none'})."
            )
        elif not isinstance(choice, dict) or choice.get("action") not in DATABASE_ACTIONS:
            errors.setdefault("databases", []).append(
                f"{key!r}: the action must be one of {', '.join(DATABASE_ACTIONS)}."
            )
    dashboards = {a.uuid for a in bundle.of("dashboards")} | {
        a.slug for a in bundle.of("dashboards") if a.slug
    }
    for key, answer in choices.conflicts.items():
        if key not in dashboards:
            errors.setdefault("conflicts", []).append(
                f"{key!r} is not the uuid or slug of a dashboard chosen."
            )
        elif answer not in CONFLICT_ANSWERS:
            errors.setdefault("conflicts", []).append(
                f"{key!r}: the answer must be one of {', '.join(CONFLICT_ANSWERS)}."
            )
    if errors:
        raise PlanError(errors)


def _connection(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "uuid": row["uuid"], "name": row["name"]}


def _find_connection(target: Inventory, ref: Any) -> dict[str, Any] | None:
    text = str(ref)
    for row in target.databases:
        if text in (str(row["id"]), row["uuid"], row["name"]):
            return row
    return None


def _database(db: Asset, target: Inventory, choices: Choices) -> dict[str, Any]:
    by_uuid = target.by_uuid("databases")
    same_name = next((r for r in target.databases if r["name"] == db.name), None)
    explicit = choices.databases.get(db.name) or choices.databases.get(db.uuid)
    choice = explicit or choices.saved.get(db.name)
    item: dict[str, Any] = {
        "uuid": db.uuid,
        "name": db.name,
        "path": db.path,
        "uri_masked": db.uri_masked,
        "needs_password": db.needs_password,
        "ssh_secrets": list(db.ssh_secrets),
        "exists": db.uuid in by_uuid,
        "explicit": bool(explicit),
        "target": None,
    }
    field_name = f"databases.{db.name}"
    if choice and choice["action"] == "map":
        row = _find_connection(target, choice.get("target", ""))
        if row is None:
            if explicit:
                raise PlanError(
                    {field_name: [f"The target has no connection {choice.get('target')!r}."]}
                )
            choice = None  # a remembered target connection was deleted since
        else:
            why = "your choice" if explicit else "the mapping saved for these environments"
            return item | {
                "action": "map",
                "target": _connection(row),
                "reason": f"uses the target's connection {row['name']!r} ({why})",
            }
    if choice and choice["action"] == "replace":
        if same_name is None:
            raise PlanError(
                {field_name: [f"The target has no connection named {db.name!r} to replace."]}
            )
        return item | {
            "action": "replace",
            "target": _connection(same_name),
            "reason": f"the target's connection {db.name!r} is replaced by the source's",
        }
    if choice and choice["action"] == "create":
        if same_name is not None and same_name["uuid"] != db.uuid:
            if explicit:
                raise PlanError(
                    {
                        field_name: [
                            f"The target already has its own connection named {db.name!r}: "
                            "use it (map) or replace it."
                        ]
                    }
                )
        elif not item["exists"]:
            return item | {"action": "create", "reason": "created on the target"}
    if item["exists"]:
        row = by_uuid[db.uuid]
        return item | {
            "action": "map",
            "target": _connection(row),
            "reason": "already on the target (the same connection)",
        }
    if same_name is not None:
        return item | {
            "action": "map",
            "target": _connection(same_name),
            "reason": f"the target has its own connection named {db.name!r}: it is used, "
            "not changed",
        }
    return item | {"action": "create", "reason": "created on the target"}


def _existing(
    kind: str, asset: Asset, target_uuid: str, target: Inventory, choices: Choices
) -> tuple[str, str]:
    """update / unchanged / keep for an asset the target has by uuid."""
    row = target.by_uuid(kind).get(target_uuid, {})
    record = choices.records.get((kind, target_uuid))
    if record is not None and record == (asset.exact, row.get("changed_on")):
        return "unchanged", "as the last migration left it, on both sides: not written"
    if record is not None and record[0] != asset.exact:
        # Changed on the source since: no comparison that ignores ids may hide it.
        return _differs(choices, "changed on the source since the last migration")
    copy = target.copies.get((kind, target_uuid))
    # References (a chart's dataset, a dataset's connection) are compared by the
    # caller, where they will point on the target.
    if copy is not None and same_content(asset, copy):
        return "unchanged", "identical on the target: not written"
    return _differs(choices, "differs on the target")


def _differs(choices: Choices, why: str) -> tuple[str, str]:
    if choices.overwrite:
        return "update", f"{why}: updated (overwrite)"
    return "keep", f"{why}: kept as it is (overwrite is off)"


def _item(asset: Asset, **more: Any) -> dict[str, Any]:
    """What every planned dataset, chart and dashboard carries."""
    return {
        "uuid": asset.uuid,
        "name": asset.name,
        "path": asset.path,
        "exact": asset.exact,
        "target": None,
        **more,
    }


def _dataset(
    ds: Asset, target: Inventory, choices: Choices, db_target: dict[str, str]
) -> dict[str, Any]:
    item = _item(ds, database=ds.database_uuid, target_uuid=ds.uuid)
    by_uuid = target.by_uuid("datasets")
    on_target_db = db_target.get(ds.database_uuid or "", ds.database_uuid)
    if ds.uuid in by_uuid:
        action, reason = _existing("datasets", ds, ds.uuid, target, choices)
        if by_uuid[ds.uuid]["database_uuid"] != on_target_db:
            # Superset's importer cannot move a dataset to another connection (it looks
            # the dataset up under the new one and fails inserting a second).
            action, reason = (
                "keep",
                "on another connection on the target: left as it is (a dataset cannot "
                "be moved between connections by an import)",
            )
        return item | {"action": action, "reason": reason, "target": _row(by_uuid[ds.uuid])}
    twin = next(
        (
            row
            for row in target.datasets
            if row["database_uuid"] == on_target_db
            and row["table"] == ds.table
            and (row["schema"] or None) == (ds.schema or None)
        ),
        None,
    )
    if twin is not None:
        return item | {
            "action": "map",
            "target": _row(twin),
            "target_uuid": twin["uuid"],
            "reason": "the target has its own dataset on this table: the charts use it, "
            "it is not changed",
        }
    return item | {"action": "create", "reason": "created on the target"}


def _row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "uuid": row["uuid"],
        "name": row.get("name") or "",
        "changed_on": row.get("changed_on") or "",
    }


def _chart(
    chart: Asset, target: Inventory, choices: Choices, ds_target: dict[str, str]
) -> dict[str, Any]:
    item = _item(chart, dataset=chart.dataset_uuid)
    by_uuid = target.by_uuid("charts")
    if chart.uuid not in by_uuid:
        return item | {"action": "create", "reason": "created on the target"}
    action, reason = _existing("charts", chart, chart.uuid, target, choices)
    copy = target.copies.get(("charts", chart.uuid))
    # Same content, but on another dataset than the one it will use: not the same.
    if (
        action == "unchanged"
        and copy is not None
        and copy.dataset_uuid != ds_target.get(chart.dataset_uuid or "", chart.dataset_uuid)
    ):
        action, reason = _differs(choices, "uses another dataset on the target")
    return item | {"action": action, "reason": reason, "target": _row(by_uuid[chart.uuid])}


def _dashboard(
    dash: Asset, target: Inventory, choices: Choices, ds_target: dict[str, str]
) -> dict[str, Any]:
    item = _item(
        dash,
        slug=dash.slug,
        charts=list(dash.chart_uuids),
        filter_datasets=list(dash.dataset_uuids),
        new_slug=None,
    )
    by_uuid = target.by_uuid("dashboards")
    twin = next(
        (
            r
            for r in target.dashboards
            if dash.slug and r["slug"] == dash.slug and r["uuid"] != dash.uuid
        ),
        None,
    )
    if dash.uuid in by_uuid:
        row = by_uuid[dash.uuid]
        action, reason = _existing("dashboards", dash, dash.uuid, target, choices)
        if twin is not None and row.get("slug"):
            # Imported under another slug before (a conflict renamed it): it keeps it.
            item["new_slug"] = row["slug"]
            reason += f"; it keeps its slug {row['slug']!r} on the target"
        return item | {"action": action, "reason": reason, "target": _row(row)}
    if twin is None:
        return item | {"action": "create", "reason": "created on the target"}
    item |= {
        "action": "conflict",
        "target": _row(twin),
        "conflict": _row(twin) | {"slug": twin["slug"]},
        "reason": f"the target has its own dashboard {twin['name']!r} with the slug "
        f"{dash.slug!r}: rename, take over or skip?",
    }
    return item


def _skip_what_nothing_imports(plan: dict[str, Any]) -> None:
    """A new chart, dataset or connection only reaches the target with a dashboard
    that is imported (Superset's importer follows the dashboards' references).
    Settled again whenever a dashboard's action changes (a conflict answered)."""
    for kind in ("charts", "datasets", "databases"):
        for item in plan[kind]:
            if "skipped_from" in item:
                item["action"], item["reason"] = item.pop("skipped_from")
    imported = [d for d in plan["dashboards"] if d["action"] in IMPORTED_DASHBOARD_ACTIONS]
    chart_uuids = {u for d in imported for u in d["charts"]}
    chart_dataset = {c["uuid"]: c["dataset"] for c in plan["charts"]}
    dataset_uuids = {chart_dataset.get(u) for u in chart_uuids} | {
        u for d in imported for u in d["filter_datasets"]
    }
    dataset_uuids |= {c["dataset"] for c in plan["charts"] if c["action"] == "update"}
    for chart in plan["charts"]:
        if chart["action"] == "create" and chart["uuid"] not in chart_uuids:
            _skip(chart, "left out with its dashboard")
    for ds in plan["datasets"]:
        if ds["action"] == "create" and ds["uuid"] not in dataset_uuids:
            _skip(ds, "left out with its dashboard")
    used = {ds["database"] for ds in plan["datasets"] if ds["action"] in ("create", "update")}
    for db in plan["databases"]:
        if db["action"] == "create" and db["uuid"] not in used:
            _skip(db, "left out: nothing imported uses it")


def _skip(item: dict[str, Any], reason: str) -> None:
    item["skipped_from"] = [item["action"], item["reason"]]
    item["action"], item["reason"] = "skip", reason
