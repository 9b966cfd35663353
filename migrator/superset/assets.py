"""The assets inside a dashboard bundle, their fingerprints, and bundles rewritten for a plan.

Pure functions: no HTTP, no Django. Members are read one at a time, so memory holds the
identity of each asset (a few strings) and one YAML document, whatever the bundle size.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import yaml

from migrator.superset.bundle import (
    DEFAULT_LIMITS,
    PASSWORD_MASK,
    SSH_SECRET_FIELDS,
    Limits,
    copy_member,
    dump_yaml,
    load_member,
    mask_uri,
    open_bundle,
    split_uri_password,
)
from migrator.superset.errors import InvalidBundle
from migrator.superset.versions import VERSIONED_PATHS, normalise_currency, pop_path

ASSET_TYPES = ("databases", "datasets", "charts", "dashboards")
# metadata.yaml ``type`` of each importer (``POST /api/v1/<resource>/import/``).
BUNDLE_TYPES = {
    "dashboard": "Dashboard",
    "chart": "Slice",
    "dataset": "SqlaTable",
    "database": "Database",
}

# Keys whose values are ids of the Superset that wrote the file (they differ between two
# Supersets holding the same asset), or that Superset derives again on import.
_ENVIRONMENT_KEYS = frozenset(
    {
        "chartId",
        "slice_id",
        "datasource_id",
        "datasource_name",
        "datasetId",
        "query_context",
        "version",
        # Dashboards' json_metadata keyed or filled by chart ids.
        "chart_configuration",
        "global_chart_configuration",
        "expanded_slices",
        "timed_refresh_immune_slices",
        "filter_scopes",
        "positions",
        "chartsInScope",
        "shared_label_colors",
        "color_scheme_domain",
        "map_label_colors",
    }
)
# References to other assets, compared separately (a mapping rewrites them).
_REFERENCE_KEYS = frozenset({"database_uuid", "dataset_uuid", "datasetUuid"})


@dataclass(frozen=True)
class Asset:
    type: str
    """One of ASSET_TYPES."""
    path: str
    """Bundle path without the root folder, e.g. ``charts/Sales_by_Region_1.yaml``."""
    uuid: str
    name: str
    """What a person calls it: a connection's or chart's name, a dataset's
    ``schema.table``, a dashboard's title."""
    exact: str
    """Hash of the document as written (what changed since a previous export)."""
    content: str
    """Hash without ids and references: equal for the same asset in two Supersets (of
    one release; ``versioned`` holds what releases write differently)."""
    versioned: tuple[tuple[str, str], ...] = ()
    """(key path, hash of its values) of each key that some release does not know."""
    slug: str | None = None
    schema: str | None = None
    table: str | None = None
    database_uuid: str | None = None
    dataset_uuid: str | None = None
    chart_uuids: tuple[str, ...] = ()
    dataset_uuids: tuple[str, ...] = ()
    """Dashboards: the datasets their native filters use."""
    uri_masked: str = ""
    needs_password: bool = False
    ssh_secrets: tuple[str, ...] = ()


@dataclass
class BundleAssets:
    root: str
    assets: list[Asset] = field(default_factory=list)
    others: dict[str, list[str]] = field(default_factory=dict)
    """Other folders' YAML files (6.x: ``themes``) → their bundle paths."""

    def of(self, kind: str) -> list[Asset]:
        return [a for a in self.assets if a.type == kind]

    def by_uuid(self, kind: str) -> dict[str, Asset]:
        return {a.uuid: a for a in self.assets if a.type == kind}


def scan(
    source: str | os.PathLike[str] | IO[bytes], limits: Limits = DEFAULT_LIMITS
) -> BundleAssets:
    """Every database, dataset, chart and dashboard of a bundle, with its fingerprints."""
    with open_bundle(source, limits) as archive:
        root, members = _members(archive)
        found = BundleAssets(root=root)
        for path, info in members:
            kind = path.split("/", 1)[0]
            if kind in ASSET_TYPES and path.endswith((".yaml", ".yml")):
                document = load_member(archive, info, path, limits)
                found.assets.append(_asset(kind, path, document))
            elif "/" in path and path.endswith((".yaml", ".yml")):
                found.others.setdefault(kind, []).append(path)
        return found


def read_documents(
    source: str | os.PathLike[str] | IO[bytes],
    paths: Iterable[str],
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, document) of each of ``paths`` in the bundle, one at a time."""
    wanted = set(paths)
    with open_bundle(source, limits) as archive:
        for path, info in _members(archive)[1]:
            if path in wanted:
                yield path, load_member(archive, info, path, limits)


def _members(archive: zipfile.ZipFile) -> tuple[str, list[tuple[str, zipfile.ZipInfo]]]:
    files = [info for info in archive.infolist() if not info.is_dir()]
    roots = {info.filename.split("/", 1)[0] for info in files}
    if len(roots) != 1 or any("/" not in info.filename for info in files):
        raise InvalidBundle(
            "The ZIP archive is not a Superset export: its files are not all inside one root folder."
        )
    return roots.pop(), [(info.filename.split("/", 1)[1], info) for info in files]


def _asset(kind: str, path: str, doc: dict[str, Any]) -> Asset:
    uuid = str(doc.get("uuid") or "")
    if not uuid:
        raise InvalidBundle(f"{path} in the bundle has no uuid.")
    common = {"type": kind, "path": path, "uuid": uuid, **fingerprints(doc, kind)}
    if kind == "databases":
        uri = str(doc.get("sqlalchemy_uri") or "")
        tunnel = doc.get("ssh_tunnel") if isinstance(doc.get("ssh_tunnel"), dict) else {}
        return Asset(
            **common,
            name=str(doc.get("database_name") or path),
            uri_masked=mask_uri(uri),
            needs_password=split_uri_password(uri)[0] == PASSWORD_MASK,
            ssh_secrets=tuple(f for f in SSH_SECRET_FIELDS if tunnel.get(f) == PASSWORD_MASK),
        )
    if kind == "datasets":
        schema = doc.get("schema")
        table = str(doc.get("table_name") or "")
        return Asset(
            **common,
            name=f"{schema}.{table}" if schema else table,
            schema=None if schema is None else str(schema),
            table=table,
            database_uuid=str(doc.get("database_uuid") or ""),
        )
    if kind == "charts":
        return Asset(
            **common,
            name=str(doc.get("slice_name") or path),
            dataset_uuid=str(doc.get("dataset_uuid") or ""),
        )
    return Asset(
        **common,
        name=str(doc.get("dashboard_title") or path),
        slug=doc.get("slug") or None,
        chart_uuids=tuple(chart_uuids(doc)),
        dataset_uuids=tuple(filter_dataset_uuids(doc)),
    )


def chart_uuids(dashboard: dict[str, Any]) -> list[str]:
    position = dashboard.get("position")
    if not isinstance(position, dict):
        return []
    found = []
    for node in position.values():
        if isinstance(node, dict) and node.get("type") == "CHART":
            meta = node.get("meta") if isinstance(node.get("meta"), dict) else {}
            if meta.get("uuid"):
                found.append(str(meta["uuid"]))
    return list(dict.fromkeys(found))


def filter_dataset_uuids(dashboard: dict[str, Any]) -> list[str]:
    found = []
    for target in _native_filter_targets(dashboard):
        if target.get("datasetUuid"):
            found.append(str(target["datasetUuid"]))
    return list(dict.fromkeys(found))


def _native_filter_targets(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    metadata = dashboard.get("metadata")
    filters = metadata.get("native_filter_configuration") if isinstance(metadata, dict) else None
    for native_filter in filters if isinstance(filters, list) else []:
        targets = native_filter.get("targets") if isinstance(native_filter, dict) else None
        for target in targets if isinstance(targets, list) else []:
            if isinstance(target, dict):
                yield target


def fingerprints(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """``exact``: the document as written; ``content``: what two Supersets compare,
    without ids, references and the keys only some releases write (those are hashed
    apart, in ``versioned``, and compared only where both copies have them)."""
    exact = {k: v for k, v in doc.items() if k != "version"}
    comparable = normalise_currency(doc) if kind == "datasets" else doc
    versioned = []
    for path in VERSIONED_PATHS.get(kind, ()):
        comparable, values = pop_path(comparable, path)
        if values:
            versioned.append((path, _hash(_without_ids(values))))
    return {
        "exact": _hash(exact),
        "content": _hash(_without_ids(comparable)),
        "versioned": tuple(versioned),
    }


def same_content(a: Asset, b: Asset) -> bool:
    """The same asset in two Supersets, whatever their releases: equal content, and
    equal values of each release-dependent key that both copies have."""
    if a.content != b.content:
        return False
    theirs = dict(b.versioned)
    return all(theirs[path] == value for path, value in a.versioned if path in theirs)


def _hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_ids(v)
            for k, v in value.items()
            if k not in _ENVIRONMENT_KEYS
            and k not in _REFERENCE_KEYS
            and not (k == "datasource" and isinstance(v, str))
            and not (k == "id" and isinstance(v, int))
        }
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


# --- writing ---------------------------------------------------------------------------

Transform = Callable[[str, dict[str, Any]], dict[str, Any]]


def write_bundle(
    source: str | os.PathLike[str] | IO[bytes],
    dest: IO[bytes],
    bundle_type: str,
    paths: Iterable[str],
    transform: Transform,
    limits: Limits = DEFAULT_LIMITS,
    as_is: Callable[[str], bool] | None = None,
) -> None:
    """A bundle of ``bundle_type`` (metadata.yaml ``type``) holding ``paths`` of
    ``source``, each document passed through ``transform(path, document)``; or copied
    as it is, unread, when ``as_is(path)`` says ``transform`` would not change it (the
    source is a bundle that was read whole before, with ``limits``)."""
    wanted = set(paths)
    with (
        open_bundle(source, limits) as archive,
        zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out,
    ):
        root, members = _members(archive)
        metadata = {
            "version": "1.0.0",
            "type": bundle_type,
            "timestamp": datetime.now(UTC).isoformat(),
        }
        out.writestr(f"{root}/metadata.yaml", yaml.safe_dump(metadata))
        for path, info in members:
            if path not in wanted:
                continue
            if as_is is not None and as_is(path):
                copy_member(archive, info, out, f"{root}/{path}")
                continue
            document = transform(path, load_member(archive, info, path, limits))
            out.writestr(f"{root}/{path}", dump_yaml(document))


def rewrite_references(
    kind: str,
    doc: dict[str, Any],
    *,
    databases: dict[str, dict[str, str]],
    datasets: dict[str, str],
    slug: str | None = None,
) -> dict[str, Any]:
    """Point ``doc`` at the target's own assets.

    ``databases`` maps a source connection's uuid to the target connection it uses
    (``{"uuid", "name"}``); ``datasets`` maps a source dataset's uuid to the target
    dataset's uuid. A dashboard gets ``slug`` when given (imported under a new slug).
    """
    if kind == "databases" and doc.get("uuid") in databases:
        chosen = databases[doc["uuid"]]
        # Superset then finds the target's connection by uuid and leaves it untouched.
        doc = {**doc, "uuid": chosen["uuid"], "database_name": chosen["name"]}
    elif kind == "datasets":
        doc = dict(doc)
        if doc.get("database_uuid") in databases:
            doc["database_uuid"] = databases[doc["database_uuid"]]["uuid"]
        if doc.get("uuid") in datasets:
            doc["uuid"] = datasets[doc["uuid"]]
    elif kind == "charts" and doc.get("dataset_uuid") in datasets:
        doc = {**doc, "dataset_uuid": datasets[doc["dataset_uuid"]]}
    elif kind == "dashboards":
        doc = dict(doc)
        if slug is not None:
            doc["slug"] = slug
        for target in _native_filter_targets(doc):
            if target.get("datasetUuid") in datasets:
                target["datasetUuid"] = datasets[target["datasetUuid"]]
    return doc


def merge_bundles(
    sources: Iterable[str | os.PathLike[str] | IO[bytes]],
    dest: IO[bytes],
    root: str,
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """One bundle holding every file of ``sources`` under ``root`` (the first copy of a
    path wins: the same chart in two exports of one Superset is the same document)."""
    seen: set[str] = set()
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for source in sources:
            with open_bundle(source, limits) as archive:
                _, members = _members(archive)
                for path, info in members:
                    if path not in seen:
                        seen.add(path)
                        copy_member(archive, info, out, f"{root}/{path}")
