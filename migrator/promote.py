"""A promotion against a real target: read it, plan, apply the plan, check the result.

The plan (``migrator.plan``) is computed from the exported bundle and read-only calls
to the target. Applying it rewrites the bundle so that nothing of the target's own is
taken over (connections and datasets it maps to are referred to by their target uuid,
which Superset's importer then leaves alone) and calls each importer at most once:
connections replaced, datasets updated, charts updated, dashboards imported. The check
reads the target again and reports per asset.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, NamedTuple

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from migrator import sessions
from migrator.models import DatabaseMapping, Environment, PromotedAsset
from migrator.plan import (
    IMPORTED_DASHBOARD_ACTIONS,
    WRITES,
    Choices,
    Inventory,
    make_plan,
    summary,
)
from migrator.superset import versions
from migrator.superset.assets import (
    ASSET_TYPES,
    BUNDLE_TYPES,
    Asset,
    BundleAssets,
    read_documents,
    rewrite_references,
    scan,
    write_bundle,
)
from migrator.superset.bundle import Limits
from migrator.superset.client import wait
from migrator.superset.errors import InvalidBundle, SupersetAPIError
from tasks_app.models import storable

DATASET_COLUMNS = ["id", "uuid", "table_name", "schema", "database.id", "changed_on_utc"]
CHART_COLUMNS = ["id", "uuid", "slice_name", "changed_on_utc"]
DASHBOARD_COLUMNS = ["id", "uuid", "slug", "dashboard_title", "changed_on_utc"]
# Read-only calls made at the same time against one Superset.
READERS = 4
# An older target may report unknown fields in a second pass (after the first ones are
# gone); more than that means something else is wrong.
MAX_STRIPS = 2


def limits() -> Limits:
    """What the settings allow a Superset to make us read (README, "Configuration")."""
    return Limits.from_settings(settings)


# --- reading the target -----------------------------------------------------------------


def _borrowing(env: Environment, call: Callable[[Any], Any]) -> Any:
    with sessions.borrow(env) as client:
        return call(client)


def _starter(pool: ThreadPoolExecutor, env: Environment) -> Callable[..., Future]:
    """Start a read-only call to ``env`` in ``pool``, on a session of its own (a
    ``requests.Session`` is not shared between threads) and in a copy of this context
    (a Cancel stops it too: superset.client.cancellable)."""
    return lambda call: pool.submit(contextvars.copy_context().run, _borrowing, env, call)


def parallel(env: Environment, calls: dict[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """Read-only calls to one Superset at the same time, each on a session of its own."""
    if len(calls) == 1:
        ((name, call),) = calls.items()
        return {name: _borrowing(env, call)}
    with ThreadPoolExecutor(max_workers=min(READERS, len(calls))) as pool:
        start = _starter(pool, env)
        futures = {name: start(call) for name, call in calls.items()}
        return {name: wait(future) for name, future in futures.items()}


def early_reads(
    env: Environment,
    dashboards: list[dict[str, Any]],
    known: dict[str, Any] | None = None,
    records: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What a plan reads of the target that the source's dashboard rows (their uuids)
    already allow: read while the source exports. ``read_inventory`` uses it when it
    covers the bundle's dashboards.

    ``known``: what the start of the migration read of the target moments ago (its
    ``databases``; its ``dashboards`` found by slug, which are the ones found by uuid
    when each has its twin among them), not read again. ``records``: the target's
    ``changed_on`` of each dashboard when the last migration wrote it. A dashboard the
    target has and changed since (or never got from us) is compared by content whatever
    the source holds now: its export (``copies``) is read here too."""
    uuids = {str(d["uuid"]) for d in dashboards if d.get("uuid")}
    known = known or {}
    found: dict[str, Any] = {}
    if known.get("databases") is not None:
        found["databases"] = known["databases"]
        found["release"] = known.get("release")
    twins = [r for r in known.get("dashboards") or [] if str(r.get("uuid")) in uuids]
    if uuids and {str(r["uuid"]) for r in twins} == uuids:
        found["dashboards"] = twins
    reads: dict[str, Callable[[Any], Any]] = {}
    if "databases" not in found:
        reads["databases"] = lambda c: c.list_databases()
    if "dashboards" not in found:
        reads["dashboards"] = _find("dashboard", "uuid", uuids, DASHBOARD_COLUMNS)
    # The target's release rides on the first read (no session of its own).
    first = next(iter(reads), None) if "release" not in found else None
    if first is not None:
        reads[first] = _and_release(reads[first])
    found |= parallel(env, reads) if reads else {}
    if first is not None:
        found[first], found["release"] = found[first]
    changed = (
        []
        if records is None
        else [
            row
            for row in _dashboards(found["dashboards"])
            if records.get(row["uuid"]) != row["changed_on"]
        ]
    )
    if changed:
        found["exports"] = []
        with sessions.borrow(env) as client:
            found["copies"] = target_copies(
                client, dashboards=changed, charts=[], datasets=[], kept=found["exports"]
            )
    return {"uuids": uuids, **found}


def _and_release(call: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, str | None]]:
    """``call``, then the target's release on the same session (a static file: one more
    call rather than a session and a login of its own)."""
    return lambda client: (call(client), client.release())


# The source's export for the task a start makes, begun while the start checks the target
# (``check_choices`` with ``seen``): a Future of (bytes, the open unnamed file in DATA_DIR),
# kept as the head start's "export" (pipeline.export_step takes it; pipeline.drop_head_start
# closes one nobody takes).
_exporter = ThreadPoolExecutor(max_workers=4, thread_name_prefix="head-start")


def _export_ahead(seen: dict[str, Any], source: Environment, ids: list[int]) -> None:
    seen["export"] = _exporter.submit(contextvars.copy_context().run, export_to_file, source, ids)


def _read_ahead(seen: dict[str, Any], target: Environment) -> None:
    """Once the start has read the target (its connections, its dashboards by slug), the
    rest of ``early_reads`` begins (``seen["early"]``): the target's own export of the
    dashboards it changed since the last migration, beside the source's export."""
    rows = seen.get("source_rows")
    if not rows or "early" in seen:
        return
    records = dashboard_records(target, [str(r["uuid"]) for r in rows])
    known = {k: seen[k] for k in ("databases", "release", "dashboards") if k in seen}
    seen["early"] = _exporter.submit(
        contextvars.copy_context().run, early_reads_or_none, target, rows, known, records
    )


def early_reads_or_none(*args: Any) -> dict[str, Any] | None:
    """``early_reads``, or None when they fail: a head start only, the plan reads (and
    says) itself."""
    try:
        return early_reads(*args)
    except Exception:  # noqa: BLE001 - a head start only: the plan reads (and says) itself
        return None


def export_to_file(source: Environment, ids: list[int]) -> tuple[int, IO[bytes]]:
    """The source's export of dashboards ``ids``: its size, and the open unnamed file in
    DATA_DIR that holds it (nothing a source sends is written elsewhere)."""
    tmp = tempfile.TemporaryFile(dir=settings.DATA_DIR)  # noqa: SIM115 - handed over open
    try:
        with sessions.borrow(source) as client:
            return client.export_dashboards(ids, tmp), tmp
    except BaseException:
        tmp.close()
        raise


def dashboard_records(target: Environment, uuids: Iterable[str]) -> dict[str, str]:
    """The target's ``changed_on`` of each of these dashboards when a migration last wrote
    it (``early_reads``'s ``records``)."""
    return dict(
        PromotedAsset.objects.filter(
            target=target, asset_type="dashboards", uuid__in=list(uuids)
        ).values_list("uuid", "target_changed_on")
    )


Early = dict[str, Any] | Future | None


def read_inventory(
    env: Environment,
    bundle: BundleAssets,
    records: dict[tuple[str, str], tuple[str, str]] | None = None,
    early: Early = None,
    kept: list[Export] | None = None,
) -> Inventory:
    """What the target holds for this bundle. Its own export of an asset (to compare
    contents) is only read when the record of the last migration cannot tell.

    ``early`` is ``early_reads`` (or a Future of it, still reading while the source
    exported; None when it failed). The calls start as soon as what they need is known:
    the datasets and charts at once, the target's export of its dashboards (which
    carries their charts and datasets too) as soon as its dashboards are read, beside
    the others. The same calls as one after the other, in about the time of the
    longest chain. ``kept``: where the target's exports of dashboards go (``target_copies``)."""
    source = {(a.type, a.uuid): a.exact for a in bundle.assets}
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        start = _starter(pool, env)
        pending: dict[str, Future] = {
            "datasets": start(
                _find("dataset", "uuid", _uuids(bundle, "datasets"), DATASET_COLUMNS)
            ),
            "charts": start(_find("chart", "uuid", _uuids(bundle, "charts"), CHART_COLUMNS)),
        }
        ahead = _early(early, bundle)
        if ahead is None:
            pending["databases"] = start(_and_release(lambda c: c.list_databases()))
            dashboards = _find("dashboard", "uuid", _uuids(bundle, "dashboards"), DASHBOARD_COLUMNS)
            ahead = {"dashboards": wait(start(dashboards))}
        early_copies = ahead.get("copies") or {}
        if kept is not None:
            kept += ahead.get("exports") or []
        else:
            close_exports(ahead.get("exports"))
        undecided = [
            row
            for row in _undecided(_dashboards(ahead["dashboards"]), "dashboards", source, records)
            if ("dashboards", row["uuid"]) not in early_copies
        ]
        copies = (
            start(
                lambda c: target_copies(c, dashboards=undecided, charts=[], datasets=[], kept=kept)
            )
            if undecided
            else None
        )
        found = {
            **{k: v for k, v in ahead.items() if k not in ("copies", "exports")},
            **{kind: wait(future) for kind, future in pending.items()},
        }
        if "databases" in pending:  # read here, with the release
            found["databases"], found["release"] = found["databases"]
        # What a uuid did not find may still collide by name: a dataset's table (only one
        # dataset per table and connection), a dashboard's slug (unique, so a dashboard
        # found under the same slug has no twin). Usually nothing is left to ask.
        found_uuids = {
            str(row["uuid"]) for kind in ("datasets", "dashboards") for row in found[kind]
        }
        slug_of = {str(row["uuid"]): row.get("slug") for row in found["dashboards"]}
        tables = {a.table for a in bundle.of("datasets") if a.uuid not in found_uuids}
        slugs = {
            a.slug for a in bundle.of("dashboards") if a.slug and slug_of.get(a.uuid) != a.slug
        }
        more: dict[str, Future] = {}
        if tables:
            more["datasets"] = start(_find("dataset", "table_name", tables, DATASET_COLUMNS))
        if slugs:
            more["dashboards"] = start(_find("dashboard", "slug", slugs, DASHBOARD_COLUMNS))
        for kind, future in more.items():
            found[kind] = found[kind] + wait(future)
        inventory = _inventory(found)
        inventory.copies = {**early_copies, **(wait(copies) if copies is not None else {})}
    # Charts and datasets the record cannot tell and the dashboards' export did not carry.
    rest = {
        kind: [
            row
            for row in _undecided(getattr(inventory, kind), kind, source, records)
            if (kind, row["uuid"]) not in inventory.copies
        ]
        for kind in ("charts", "datasets")
    }
    if any(rest.values()):
        with sessions.borrow(env) as client:
            inventory.copies.update(target_copies(client, dashboards=[], **rest))
    return inventory


def _early(early: Early, bundle: BundleAssets) -> dict[str, Any] | None:
    if isinstance(early, Future):
        early = wait(early)
    if early and _uuids(bundle, "dashboards") <= early["uuids"]:
        return early
    return None  # none, or the dashboards changed between the two reads: read them again


def _undecided(
    rows: list[dict[str, Any]],
    kind: str,
    source: dict[tuple[str, str], str],
    records: dict[tuple[str, str], tuple[str, str]] | None,
) -> list[dict[str, Any]]:
    """The target's rows of bundle assets that the record of the last migration cannot
    tell apart from the source's (its contents are compared with the target's export)."""
    return [
        row
        for row in rows
        if (kind, row["uuid"]) in source
        and (records or {}).get((kind, row["uuid"]))
        != (source[(kind, row["uuid"])], row["changed_on"])
    ]


def _inventory(found: dict[str, Any]) -> Inventory:
    databases = [
        {
            "id": row["id"],
            "uuid": str(row.get("uuid") or ""),
            "name": row.get("database_name") or "",
            "backend": row.get("backend") or "",
        }
        for row in found["databases"]
    ]
    db_uuid = {db["id"]: db["uuid"] for db in databases}
    return Inventory(
        databases=databases,
        datasets=_datasets(found["datasets"], db_uuid),
        charts=[
            {
                "id": r["id"],
                "uuid": str(r["uuid"]),
                "name": r.get("slice_name") or "",
                "changed_on": r.get("changed_on_utc") or "",
            }
            for r in found["charts"]
        ],
        dashboards=_dashboards(found["dashboards"]),
        release=found.get("release"),
    )


def _uuids(bundle: BundleAssets, kind: str) -> set[str]:
    return {a.uuid for a in bundle.of(kind)}


def _datasets(rows: list[dict[str, Any]], db_uuid: dict[int, str]) -> list[dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for row in rows:
        database = row.get("database") if isinstance(row.get("database"), dict) else {}
        schema, table = row.get("schema"), row.get("table_name") or ""
        found[row["id"]] = {
            "id": row["id"],
            "uuid": str(row.get("uuid") or ""),
            "schema": schema,
            "table": table,
            "name": f"{schema}.{table}" if schema else table,
            "database_uuid": db_uuid.get(database.get("id"), ""),
            "changed_on": row.get("changed_on_utc") or "",
        }
    return list(found.values())


def _dashboards(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(
        {
            row["id"]: {
                "id": row["id"],
                "uuid": str(row.get("uuid") or ""),
                "name": row.get("dashboard_title") or "",
                "slug": row.get("slug"),
                "changed_on": row.get("changed_on_utc") or "",
            }
            for row in rows
        }.values()
    )


class Export(NamedTuple):
    """The target's own export of some dashboards, kept for the backup."""

    ids: frozenset[int]
    file: IO[bytes]
    """Open and unnamed in DATA_DIR; it goes when closed or forgotten."""
    carried: frozenset[tuple[str, str]]
    """(type, uuid) of every asset in it: the dashboards' charts and datasets too."""


def target_copies(
    client: Any,
    *,
    dashboards: list[dict[str, Any]],
    charts: list[dict[str, Any]],
    datasets: list[dict[str, Any]],
    kept: list[Export] | None = None,
) -> dict[tuple[str, str], Asset]:
    """The target's own export of these assets: one export per type at most, the
    dashboards' export first (it carries their charts and datasets too). With ``kept``,
    the dashboards' export is appended there, open: a migration that then updates them
    backs them up from it (``rollback.take_backup``) rather than exporting them again."""
    copies: dict[tuple[str, str], Asset] = {}
    for resource, kind, rows in (
        ("dashboard", "dashboards", dashboards),
        ("chart", "charts", charts),
        ("dataset", "datasets", datasets),
    ):
        missing = [r["id"] for r in rows if (kind, r["uuid"]) not in copies]
        if not missing:
            continue
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryFile(dir=settings.DATA_DIR))
            client.export_assets(resource, missing, tmp)
            tmp.seek(0)
            try:
                found = scan(tmp, limits())
            except InvalidBundle as exc:
                # The target's own export: its fault, not the source bundle's.
                raise SupersetAPIError(
                    f"Superset at {client.url} exported {resource}(s) "
                    f"{', '.join(map(str, missing))} as a bundle that cannot be read: {exc.message}",
                    url=client.url,
                ) from exc
            for asset in found.assets:
                copies[(asset.type, asset.uuid)] = asset
            if kept is not None and resource == "dashboard":
                tmp.seek(0)
                carried = frozenset((a.type, a.uuid) for a in found.assets)
                kept.append(Export(frozenset(missing), tmp, carried))
                stack.pop_all()  # open, for the backup
    return copies


def close_exports(exports: list[Export] | None) -> None:
    for export in exports or []:
        export.file.close()


def choices(
    source: Environment, target: Environment, params: dict[str, Any], bundle: BundleAssets
) -> Choices:
    uuids = [a.uuid for a in bundle.assets]
    records = {
        (r.asset_type, r.uuid): (r.source_hash, r.target_changed_on)
        for r in PromotedAsset.objects.filter(target=target, uuid__in=uuids)
    }
    return Choices(
        overwrite=bool(params.get("overwrite")),
        databases=dict(params.get("databases") or {}),
        saved=DatabaseMapping.choices_for(source, target),
        conflicts=dict(params.get("conflicts") or {}),
        records=records,
    )


def plan_bundle(
    source: Environment,
    target: Environment,
    bundle_file: IO[bytes],
    params: dict[str, Any],
    early: Early = None,
    kept: list[Export] | None = None,
) -> dict[str, Any]:
    """The plan for an exported bundle (read-only calls to the target)."""
    bundle = scan(bundle_file, limits())
    chosen = choices(source, target, params, bundle)
    inventory = read_inventory(target, bundle, chosen.records, early, kept)
    plan = make_plan(bundle, inventory, chosen)
    plan["target_connections"] = [
        {"id": r["id"], "uuid": r["uuid"], "name": r["name"]} for r in inventory.databases
    ]
    target.saw_release(inventory.release)
    plan["target_release"] = inventory.release or ""
    plan["release"] = versions.family(inventory.release)
    plan["themes"] = bundle.others.get("themes", [])
    bundle_file.seek(0)
    plan["adapted"] = adaptation(plan, bundle_file)
    plan["not_carried"] = not_carried(plan)
    return plan


def adaptation(plan: dict[str, Any], bundle_file: IO[bytes]) -> list[str]:
    """What adapting the bundle to the target's release changes in what the plan writes,
    one line each (nothing when the release is not known: then a refusal tells)."""
    if not plan.get("release"):
        return []
    names = {item["path"]: item["name"] for kind in ASSET_TYPES for item in plan[kind]}
    written = {
        item["path"] for kind in ASSET_TYPES for item in plan[kind] if item["action"] in WRITES
    }
    dashboards = any(d["action"] in IMPORTED_DASHBOARD_ACTIONS for d in plan["dashboards"])
    paths = written | set(plan["themes"] if dashboards else ())
    release = plan["release"]
    # Only the files adapting may change are read (a folder the release does not keep is
    # counted, not read).
    kept = {p for p in paths if versions.keeps_folder(p.split("/", 1)[0], release)}
    documents = itertools.chain(
        ((path, "", {}) for path in sorted(paths - kept)),
        (
            # As exported: what the plan rewrites (uuids, a slug) is no key adapting touches.
            (path, names.get(path, path.rsplit("/", 1)[-1]), doc)
            for path, doc in read_documents(
                bundle_file,
                {p for p in kept if versions.changes(p.split("/", 1)[0], release)},
                limits(),
            )
        ),
    )
    return versions.adaptation(documents, release).lines()


def not_carried(plan: dict[str, Any]) -> list[str]:
    """What no dashboard migration carries, said before anything is written."""
    created = [db["name"] for db in plan["databases"] if db["action"] in ("create", "replace")]
    if not created:
        return []
    return [
        f"A connection's encrypted extra (e.g. a service account key) is in no dashboard "
        f"export: if {', '.join(created)} has one on the source, enter it again on the target."
    ]


def preview(
    source: Environment, target: Environment, dashboard_ids: list[int], params: dict[str, Any]
) -> dict[str, Any]:
    """Export from the source and plan against the target; nothing is written anywhere."""
    with tempfile.TemporaryFile(dir=settings.DATA_DIR) as tmp:
        with sessions.borrow(source) as client:
            client.export_dashboards(dashboard_ids, tmp)
        tmp.seek(0)
        return plan_bundle(source, target, tmp, params)


def check_choices(
    source: Environment,
    target: Environment,
    dashboard_ids: list[int],
    *,
    databases: dict[str, dict[str, Any]],
    conflicts: dict[str, str],
    require_answers: bool = False,
    dashboard_rows: dict[int, dict[str, Any]] | None = None,
    seen: dict[str, Any] | None = None,
) -> dict[str, list[str]]:
    """Errors naming each choice that refers to nothing (read-only calls, only for
    what was chosen): a source connection, a target connection, a dashboard. With
    ``require_answers``, also each slug conflict left without an answer. The
    dashboards' rows (title, uuid, slug), when they were read, are put in ``dashboard_rows``; ``conflicts``
    ``{"*": answer}`` becomes that answer for each dashboard chosen, in place. With
    ``seen``, what was read of the target is put there for the task (``early_reads``'s
    ``known``): its dashboards found by slug, and its connections, read meanwhile; the
    source's export of the dashboards begins (``seen["export"]``) as soon as the source
    has answered the checks' reads, and the rest of the plan's early reads of the target
    once the checks' are in (``seen["early"]``)."""
    errors: dict[str, list[str]] = {}
    target_rows: list[dict[str, Any]] | None = None
    if databases:
        with sessions.borrow(source) as client:
            rows = client.list_databases()
        known = {r.get("database_name") for r in rows} | {str(r.get("uuid")) for r in rows}
        for key in databases:
            if key not in known:
                errors.setdefault("databases", []).append(f"The source has no connection {key!r}.")
        wanted = [c["target"] for c in databases.values() if c.get("action") == "map"]
        if wanted:
            with sessions.borrow(target) as client:
                rows = target_rows = client.list_databases()
            known = {str(r.get(k)) for r in rows for k in ("id", "uuid", "database_name")}
            for ref in wanted:
                if str(ref) not in known:
                    errors.setdefault("databases", []).append(
                        f"The target has no connection {ref!r}."
                    )
    if conflicts or require_answers:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # While the source answers: the target is idle. Its connections, unless the
            # mapping's check just read them.
            connections = (
                _starter(pool, target)(
                    _and_release(
                        (lambda c: target_rows) if target_rows is not None else _connections
                    )
                )
                if seen is not None
                else None
            )
            errors |= _check_dashboards(
                source, target, dashboard_ids, conflicts, require_answers, dashboard_rows, seen
            )
            if connections is not None:
                with contextlib.suppress(Exception):  # a head start only: the task reads
                    seen["databases"], seen["release"] = wait(connections)
        if seen is not None:
            _read_ahead(seen, target)
    return errors


def _connections(client: Any) -> list[dict[str, Any]]:
    return client.list_databases()


def _check_dashboards(
    source: Environment,
    target: Environment,
    dashboard_ids: list[int],
    conflicts: dict[str, str],
    require_answers: bool,
    dashboard_rows: dict[int, dict[str, Any]] | None,
    seen: dict[str, Any] | None,
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    with sessions.borrow(source) as client:
        rows = client.get_dashboards(dashboard_ids)
    if seen is not None:  # while the target is read: the source is free now
        _export_ahead(seen, source, dashboard_ids)
        seen["source_rows"] = rows
    if dashboard_rows is not None:
        dashboard_rows.update({row["id"]: row for row in rows})
    if "*" in conflicts:  # one answer for every dashboard chosen (the CLI's --on-conflict)
        conflicts.update({str(row["uuid"]): conflicts["*"] for row in rows})
        del conflicts["*"]
    known = {str(r.get("uuid")) for r in rows} | {r["slug"] for r in rows if r.get("slug")}
    for key in conflicts:
        if key not in known:
            errors.setdefault("conflicts", []).append(
                f"{key!r} is not the uuid or slug of a dashboard chosen."
            )
    if require_answers:
        for row, theirs in _slug_conflicts(target, rows, seen):
            if not {str(row["uuid"]), row["slug"]} & set(conflicts):
                errors.setdefault("conflicts", []).append(
                    f"Dashboard {row['title']!r}: the target already has its own dashboard "
                    f"{theirs['name']!r} with the slug {row['slug']!r}. Choose rename, "
                    f"take_over or skip for {row['slug']!r} in `conflicts`."
                )
    return errors


def _slug_conflicts(
    target: Environment, rows: list[dict[str, Any]], seen: dict[str, Any] | None = None
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Source dashboards whose slug a dashboard of the target's own (another uuid) has."""
    slugs = {r["slug"] for r in rows if r.get("slug")}
    if not slugs:
        return []
    with sessions.borrow(target) as client:
        found = client.find_rows("dashboard", "slug", slugs, DASHBOARD_COLUMNS)
    if seen is not None:
        seen["dashboards"] = found
    theirs = _dashboards(found)
    by_slug = {t["slug"]: t for t in theirs}
    # The same dashboard (same uuid) under its slug is an update, not a conflict.
    return [
        (row, by_slug[row["slug"]])
        for row in rows
        if row.get("slug") in by_slug and by_slug[row["slug"]]["uuid"] != str(row["uuid"])
    ]


def mark_answered(plan: dict[str, Any], created: list[str]) -> None:
    """Connections whose secrets were answered are on the target now (the answer
    created or replaced them, after Superset's connection test passed)."""
    for db in plan["databases"]:
        if db["path"] not in created:
            continue
        db["done"] = True
        if db["action"] == "map" and db["target"] and db["target"]["uuid"] == db["uuid"]:
            db["action"] = "create"
            db["reason"] = "created on the target (its password was checked when given)"
    plan["summary"] = summary(plan)


def remember_choices(source: Environment, target: Environment, plan: dict[str, Any]) -> None:
    """Explicit map and create choices become this pair's defaults."""
    DatabaseMapping.remember(
        source,
        target,
        {
            db["name"]: {"action": db["action"], "target": (db["target"] or {}).get("name", "")}
            for db in plan["databases"]
            if db.get("explicit") and db["action"] in ("map", "create")
        },
    )


# --- applying the plan -------------------------------------------------------------------


class Imports:
    """The bundles a plan needs, each written from the saved export for one importer."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.paths = {
            kind: {item["uuid"]: item["path"] for item in plan[kind]}
            for kind in ("databases", "datasets", "charts", "dashboards")
        }
        self.dataset_db = {d["uuid"]: d["database"] for d in plan["datasets"]}
        self.chart_dataset = {c["uuid"]: c["dataset"] for c in plan["charts"]}
        self.databases = {
            d["uuid"]: {"uuid": d["target"]["uuid"], "name": d["target"]["name"]}
            for d in plan["databases"]
            if d["action"] == "map"
        }
        self.datasets = {
            d["uuid"]: d["target_uuid"] for d in plan["datasets"] if d["action"] == "map"
        }
        self.slugs = {d["path"]: d["new_slug"] for d in plan["dashboards"] if d.get("new_slug")}
        self.release = plan.get("release")
        # 6.x links a dashboard to its theme when the theme's file is in the bundle.
        self.themes = (
            list(plan.get("themes") or []) if versions.keeps_folder("themes", self.release) else []
        )

    def transform(self, path: str, document: dict[str, Any]) -> dict[str, Any]:
        """A document as this plan writes it: pointed at the target's own assets, and as
        the target's release takes it (plan["adapted"] says what that changes)."""
        document = self.rewrite(path, document)
        kind = path.split("/", 1)[0]
        return versions.adapt(kind, document, self.release) if self.release else document

    def as_is(self, path: str) -> bool:
        """Does ``transform`` leave this file as exported? Then it is not read again."""
        kind = path.split("/", 1)[0]
        if kind in ("databases", "datasets") or (
            self.release and versions.changes(kind, self.release)
        ):
            return False
        if kind == "dashboards":
            return not self.datasets and path not in self.slugs
        if kind == "charts":
            return not self.datasets
        return kind == "themes"

    def rewrite(self, path: str, document: dict[str, Any]) -> dict[str, Any]:
        """A document pointed at the target's own assets (mapped connections, datasets)."""
        kind = path.split("/", 1)[0]
        if kind == "databases" and document.get("uuid") in self.databases:
            # Superset returns the existing connection untouched: its secrets are not needed.
            document = {
                k: v
                for k, v in document.items()
                if k not in ("ssh_tunnel", "masked_encrypted_extra", "encrypted_extra")
            }
        return rewrite_references(
            kind,
            document,
            databases=self.databases,
            datasets=self.datasets,
            slug=self.slugs.get(path),
        )

    def _with_parents(self, datasets: Iterable[str], charts: Iterable[str] = ()) -> list[str]:
        charts = [c for c in charts if c in self.paths["charts"]]
        datasets = set(datasets) | {self.chart_dataset[c] for c in charts}
        datasets = {d for d in datasets if d in self.paths["datasets"]}
        dbs = {self.dataset_db[d] for d in datasets} & set(self.paths["databases"])
        return (
            [self.paths["charts"][c] for c in charts]
            + [self.paths["datasets"][d] for d in datasets]
            + [self.paths["databases"][d] for d in dbs]
        )

    def calls(self) -> list[tuple[str, list[str], bool, str]]:
        """(resource, bundle paths, overwrite, what) for each import, in order."""
        plan = self.plan
        calls: list[tuple[str, list[str], bool, str]] = []
        replaced = [d for d in plan["databases"] if d["action"] == "replace" and not d.get("done")]
        if replaced:
            calls.append(
                (
                    "database",
                    [d["path"] for d in replaced],
                    True,
                    f"replacing {len(replaced)} connection(s)",
                )
            )
        datasets = [d["uuid"] for d in plan["datasets"] if d["action"] == "update"]
        if datasets:
            calls.append(
                (
                    "dataset",
                    self._with_parents(datasets),
                    True,
                    f"updating {len(datasets)} dataset(s)",
                )
            )
        charts = [c["uuid"] for c in plan["charts"] if c["action"] == "update"]
        if charts:
            calls.append(
                ("chart", self._with_parents((), charts), True, f"updating {len(charts)} chart(s)")
            )
        dashboards = [d for d in plan["dashboards"] if d["action"] in IMPORTED_DASHBOARD_ACTIONS]
        if dashboards:
            paths = (
                [d["path"] for d in dashboards]
                + self._with_parents(
                    {u for d in dashboards for u in d["filter_datasets"]},
                    [u for d in dashboards for u in d["charts"]],
                )
                + self.themes
            )
            overwrite = any(d["action"] == "update" for d in dashboards)
            calls.append(
                ("dashboard", paths, overwrite, f"importing {len(dashboards)} dashboard(s)")
            )
        return calls


def write_import(
    saved_name: str,
    resource: str,
    paths: list[str],
    transform: Callable[[str, dict[str, Any]], dict[str, Any]],
    as_is: Callable[[str], bool] | None = None,
) -> str:
    """Write the bundle of one import call next to ``saved_name`` (an export, or a
    rollback's backup), each document through ``transform`` (unless ``as_is`` says it
    does not change it); return its name."""
    with (
        default_storage.open(saved_name, "rb") as source,
        tempfile.TemporaryFile(dir=settings.DATA_DIR) as out,
    ):
        write_bundle(
            source,
            out,
            BUNDLE_TYPES[resource],
            dict.fromkeys(paths),
            transform,
            limits(),
            as_is,
        )
        out.seek(0)
        return default_storage.save(f"{saved_name.removesuffix('.zip')}-{resource}.zip", File(out))


# --- checking the result -------------------------------------------------------------------

OUTCOMES = {
    "create": "created",
    "update": "updated",
    "unchanged": "unchanged",
    "keep": "kept",
    "map": "mapped",
    "replace": "replaced",
    "rename": "created",
    "take_over": "taken over",
    "skip": "skipped",
}


def expected_uuid(kind: str, item: dict[str, Any]) -> str:
    if kind == "datasets":
        return item["target_uuid"]
    if kind == "databases" and item["action"] == "map":
        return item["target"]["uuid"]
    return item["uuid"]


# What an import writes: these assets are read again after it; the others are as the
# plan read them moments before.
WRITTEN = ("create", "update", "replace", "rename", "take_over")


def check(target: Environment, plan: dict[str, Any], *, written: bool = True) -> dict[str, Any]:
    """Read the target again: every planned asset under its planned uuid, every dataset
    on its planned connection, every imported dashboard with its charts. Only what the
    import wrote is read again (one call per asset type at most); what it did not write
    is as the plan's own reading of the target found it."""
    rows = _rows_in_plan(plan)
    wanted = {
        kind: {expected_uuid(kind, i) for i in plan[kind] if written and i["action"] in WRITTEN}
        for kind in ("databases", "datasets", "charts", "dashboards")
    }
    for kind, uuids in wanted.items():
        for uuid in uuids:
            rows.pop((kind, uuid), None)
    reads: dict[str, Callable[[Any], Any]] = {
        kind: _find(resource, "uuid", wanted[kind], columns)
        for kind, resource, columns in (
            ("datasets", "dataset", DATASET_COLUMNS),
            ("charts", "chart", CHART_COLUMNS),
            ("dashboards", "dashboard", DASHBOARD_COLUMNS),
        )
        if wanted[kind]
    }
    # A dataset row names its connection by id: the connections' uuids are read too.
    if wanted["databases"] or wanted["datasets"]:
        reads["databases"] = lambda c: c.list_databases()
    found = parallel(target, reads) if reads else {}
    db_uuid = {row["id"]: str(row.get("uuid") or "") for row in found.get("databases", [])}
    for db_id, uuid in db_uuid.items():
        rows[("databases", uuid)] = {"id": db_id}
    dataset_db: dict[str, str] = {}
    for kind in ("datasets", "charts", "dashboards"):
        for row in found.get(kind, []):
            rows[(kind, str(row["uuid"]))] = row
            if kind == "datasets":
                database = row.get("database") if isinstance(row.get("database"), dict) else {}
                dataset_db[str(row["uuid"])] = db_uuid.get(database.get("id"), "")
    return _report(plan, target, rows, dataset_db)


def _find(
    resource: str, column: str, values: set[str], columns: list[str]
) -> Callable[[Any], list[dict[str, Any]]]:
    return lambda client: client.find_rows(resource, column, values, columns)


def _rows_in_plan(plan: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (kind, expected_uuid(kind, item)): item["target"]
        for kind in ("databases", "datasets", "charts", "dashboards")
        for item in plan[kind]
        if item.get("target")
    }


def _report(
    plan: dict[str, Any],
    target: Environment,
    rows: dict[tuple[str, str], dict[str, Any]],
    dataset_db: dict[str, str],
) -> dict[str, Any]:
    db_target = {d["uuid"]: expected_uuid("databases", d) for d in plan["databases"]}
    warnings: list[str] = []
    items: list[dict[str, Any]] = []
    for kind in ("dashboards", "charts", "datasets", "databases"):
        for item in plan[kind]:
            uuid = expected_uuid(kind, item)
            row = rows.get((kind, uuid))
            entry = {
                "type": kind,
                "name": item["name"],
                "uuid": uuid,
                "outcome": OUTCOMES[item["action"]],
                "id": row["id"] if row else None,
            }
            entry["url"] = _link(target.url, kind, entry["id"])
            items.append(entry)
            if item["action"] == "skip" or (item["action"] == "keep" and row is None):
                continue
            if row is None:
                warnings.append(
                    f"{_singular(kind)} {item['name']!r} is not on the target under uuid {uuid}."
                )
                entry["outcome"] = "missing"
            elif kind == "datasets" and dataset_db and item["action"] in ("create", "update"):
                planned_db = db_target.get(item["database"], item["database"])
                if dataset_db.get(uuid) != planned_db:
                    warnings.append(
                        f"Dataset {item['name']!r} is not on the planned connection "
                        f"(expected {planned_db}, found {dataset_db.get(uuid) or 'none'})."
                    )
            elif kind == "dashboards" and item["action"] in IMPORTED_DASHBOARD_ACTIONS:
                missing = [c for c in item["charts"] if ("charts", c) not in rows]
                if missing:
                    warnings.append(
                        f"Dashboard {item['name']!r} is missing {len(missing)} of its "
                        f"{len(item['charts'])} chart(s) on the target."
                    )
    counts: dict[str, int] = {}
    for entry in items:
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    changed = {
        key: row.get("changed_on_utc") or row.get("changed_on") or "" for key, row in rows.items()
    }
    return {
        "assets": items,
        "warnings": warnings,
        "counts": dict(sorted(counts.items())),
        "changed_on": changed,
    }


def written(changed_on: dict[tuple[str, str], str]) -> dict[str, str]:
    """``changed_on`` as a rollback reads it: ``{"charts/<uuid>": changed_on}``."""
    return {f"{kind}/{uuid}": when for (kind, uuid), when in changed_on.items()}


def remember_writes(
    target: Environment, plan: dict[str, Any], changed_on: dict[tuple[str, str], str], task: Any
) -> None:
    """Record what this migration left on the target, asset by asset (PromotedAsset):
    one statement for them all (an upsert on the target, type and uuid)."""
    records = [
        PromotedAsset(
            target=target,
            asset_type=kind,
            uuid=uuid,
            source_hash=item["exact"],
            # Text from the target: what a column of 64 can hold.
            target_changed_on=storable(changed_on[(kind, uuid)])[:64],
            task=task,
        )
        for kind in ("datasets", "charts", "dashboards")
        for item in plan[kind]
        if item["action"] in ("create", "update", "unchanged", "rename", "take_over")
        and changed_on.get((kind, uuid := expected_uuid(kind, item)))
    ]
    if records:
        PromotedAsset.objects.bulk_create(
            records,
            update_conflicts=True,
            unique_fields=["target", "asset_type", "uuid"],
            update_fields=["source_hash", "target_changed_on", "task", "updated_at"],
        )


def _singular(kind: str) -> str:
    return {"databases": "Connection", "datasets": "Dataset", "charts": "Chart"}.get(
        kind, "Dashboard"
    )


def _link(url: str, kind: str, object_id: int | None) -> str | None:
    if object_id is None:
        return None
    return {
        "dashboards": f"{url}/superset/dashboard/{object_id}/",
        "charts": f"{url}/explore/?slice_id={object_id}",
        "datasets": f"{url}/explore/?datasource_type=table&datasource_id={object_id}",
        "databases": f"{url}/databaseview/list/",
    }[kind]
