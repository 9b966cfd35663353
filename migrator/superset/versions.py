"""What each Superset release knows of an export bundle, and a bundle adapted to a target.

Pure functions: no HTTP, no Django. The table is what real servers of each release
answered (shared SUPERSET_API.md, "Across versions"; pinned by
tests/migrator/test_versions.py against the captures in
tests/fixtures/superset/versions/). To support a release, add it to ``FAMILIES`` and
say in ``KEYS`` which keys it is the first to know.

A bundle written by a newer Superset carries keys an older importer refuses with
"Unknown field."; the keys are removed before the first import, and each removal is said
(``Adaptation``). An older bundle needs nothing on a newer target, but a metric's
currency, a JSON string up to 5.0, is written as the object 6.x stores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Oldest first. A release of a family behaves as the family (4.1.x as 4.1.4, ...).
FAMILIES = ("4.1", "5.0", "6.0", "6.1")


@dataclass(frozen=True)
class Key:
    """A key of one asset type's YAML that releases before ``since`` refuse."""

    kind: str
    """Bundle folder: databases, datasets, charts, dashboards."""
    path: str
    """``folders``, or ``columns[].datetime_format`` for a key of each list item."""
    since: str
    """The first family whose importer knows it."""
    lost: str = ""
    """What the target loses when it is removed (said in the plan and the report)."""


KEYS = (
    Key(
        "databases",
        "impersonate_user",
        "5.0",
        "the connection's 'impersonate user' setting is not carried",
    ),
    Key("databases", "configuration_method", "6.1"),
    Key("databases", "encrypted_extra", "6.0", "the connection's encrypted extra is not carried"),
    Key(
        "databases",
        "masked_encrypted_extra",
        "6.1",
        "the connection's encrypted extra is not carried",
    ),
    Key(
        "dashboards",
        "theme_uuid",
        "6.0",
        "{release} has no themes: the dashboard will use the default theme",
    ),
    Key("dashboards", "tags", "6.0", "their tags are not carried"),
    Key("charts", "tags", "6.0", "their tags are not carried"),
    Key("datasets", "folders", "6.0", "their folders are not carried"),
    Key("datasets", "currency_code_column", "6.1", "their currency code column is not carried"),
    Key(
        "datasets",
        "columns[].datetime_format",
        "6.1",
        "their columns' datetime formats are not carried",
    ),
)
# metrics[].currency: a JSON string up to 5.0 ('{"symbol": "USD", ...}'), an object since.
CURRENCY_OBJECT_SINCE = "6.0"
# Releases up to this one connect to a new database while importing it and answer a bare
# 500 when they cannot (a wrong password); later ones store what they are given.
CONNECTS_ON_IMPORT_UNTIL = "5.0"
# Releases since this one move a password written into an imported URI to their password
# store and mask the URI. 4.1 keeps such a URI as it is: the password stays in clear in
# it, /connection and every export show it (and 4.1 keeps connecting with the password it
# had stored).
MASKS_URI_PASSWORD_SINCE = "5.0"
# Bundle folders of files a release before ``since`` ignores (6.0 added themes).
FOLDERS_SINCE = {"themes": "6.0"}

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?")


def family(version: str | None) -> str | None:
    """``"6.1.0"`` → ``"6.1"``; None for a release this table does not know."""
    match = _VERSION.match(version or "")
    if not match:
        return None
    name = f"{match[1]}.{match[2]}"
    return name if name in FAMILIES else None


def at_least(name: str, since: str) -> bool:
    """Whether family ``name`` is ``since`` or newer."""
    return FAMILIES.index(name) >= FAMILIES.index(since)


def connects_on_import(name: str | None) -> bool:
    """Whether a target of family ``name`` (None: unknown, so maybe) refuses a new
    connection it cannot connect to with a bare 500."""
    return name is None or at_least(CONNECTS_ON_IMPORT_UNTIL, name)


def masks_uri_password(name: str | None) -> bool:
    """Whether a target of family ``name`` stores a password written into an imported URI
    as a password (masked in the URI). None (unknown): maybe not, so never rely on it."""
    return name is not None and at_least(name, MASKS_URI_PASSWORD_SINCE)


def unknown_keys(name: str) -> list[Key]:
    """The keys a target of family ``name`` refuses."""
    return [key for key in KEYS if not at_least(name, key.since)]


# {kind: key paths} of every key some release does not know: two Supersets of different
# releases hold the same asset with and without them.
VERSIONED_PATHS: dict[str, tuple[str, ...]] = {
    kind: tuple(k.path for k in KEYS if k.kind == kind) for kind in {k.kind for k in KEYS}
}


def pop_path(document: dict[str, Any], path: str) -> tuple[dict[str, Any], list[Any]]:
    """``document`` without ``path`` (a copy) and the values removed (one per list item
    for ``columns[].x``); the values list is empty when the key was not there."""
    if "[]." not in path:
        if path not in document:
            return document, []
        copy = dict(document)
        return copy, [copy.pop(path)]
    outer, inner = path.split("[].", 1)
    items = document.get(outer)
    if not isinstance(items, list):
        return document, []
    removed: list[Any] = []
    kept: list[Any] = []
    for item in items:
        if isinstance(item, dict) and inner in item:
            item = dict(item)
            removed.append(item.pop(inner))
        kept.append(item)
    if not removed:
        return document, []
    return {**document, outer: kept}, removed


def currency_as_object(value: Any) -> Any:
    """A metric's currency as 6.x stores it (5.0 and 4.1 write a JSON string)."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, dict) else value
    return value


def currency_as_string(value: Any) -> Any:
    """A metric's currency as 5.0 and 4.1 take it: a JSON string."""
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _metrics_currency(document: dict[str, Any], convert: Any) -> tuple[dict[str, Any], int]:
    metrics = document.get("metrics")
    if not isinstance(metrics, list):
        return document, 0
    changed = 0
    out = []
    for metric in metrics:
        if isinstance(metric, dict) and metric.get("currency") not in (None, ""):
            converted = convert(metric["currency"])
            if converted != metric["currency"]:
                metric = {**metric, "currency": converted}
                changed += 1
        out.append(metric)
    return ({**document, "metrics": out}, changed) if changed else (document, 0)


def normalise_currency(document: dict[str, Any]) -> dict[str, Any]:
    """For comparing two releases' copies of a dataset: currencies as objects."""
    return _metrics_currency(document, currency_as_object)[0]


@dataclass
class Adaptation:
    """What adapting a bundle to a target release changed, per key and asset type."""

    release: str
    removed: dict[tuple[str, str], list[str]]
    """(kind, key path) → names of the assets that had it."""
    currencies: list[str]
    """Datasets whose metric currencies were converted."""
    ignored: dict[str, int]
    """Bundle folders the target ignores (``themes``) → files."""

    def lines(self) -> list[str]:
        """One sentence per change, for the log, the plan and the report."""
        out = []
        for (kind, path), names in self.removed.items():
            key = next(k for k in KEYS if k.kind == kind and k.path == path)
            noun = kind if len(names) != 1 else kind[:-1]
            line = (
                f"removed `{path}` from {len(names)} {noun} ({_names(names)}): "
                f"Superset {self.release} does not know it"
            )
            if key.lost:
                line += f"; {key.lost.format(release=self.release)}"
            out.append(line)
        if self.currencies:
            how = (
                "a JSON string"
                if not at_least(self.release, CURRENCY_OBJECT_SINCE)
                else "an object"
            )
            out.append(
                f"wrote the metric currencies of {len(self.currencies)} dataset(s) "
                f"({_names(self.currencies)}) as {how}, as Superset {self.release} takes them"
            )
        for folder, count in self.ignored.items():
            out.append(
                f"left out {count} file(s) of `{folder}/`: Superset {self.release} has no {folder}"
            )
        return out

    def __bool__(self) -> bool:
        return bool(self.removed or self.currencies or self.ignored)


def _names(names: list[str], shown: int = 3) -> str:
    listed = ", ".join(names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def changes(kind: str, release: str) -> bool:
    """May ``adapt`` change a file of ``kind`` for a target of family ``release``? (When
    not, its files are written as exported, without being read.)"""
    return kind == "datasets" or any(key.kind == kind for key in unknown_keys(release))


def adapt(kind: str, document: dict[str, Any], release: str) -> dict[str, Any]:
    """``document`` (a file of ``kind``) as a target of family ``release`` takes it."""
    return _adapt(kind, document, release)[0]


def _adapt(
    kind: str, document: dict[str, Any], release: str
) -> tuple[dict[str, Any], list[str], bool]:
    removed = []
    for key in unknown_keys(release):
        if key.kind == kind:
            document, values = pop_path(document, key.path)
            if any(v not in (None, "", False, [], {}) for v in values):
                removed.append(key.path)  # unset values carry nothing: not worth a line
    converted = False
    if kind == "datasets":
        convert = (
            currency_as_object if at_least(release, CURRENCY_OBJECT_SINCE) else currency_as_string
        )
        document, changed = _metrics_currency(document, convert)
        converted = changed > 0
    return document, removed, converted


def adaptation(documents: Iterable[tuple[str, str, dict[str, Any]]], release: str) -> Adaptation:
    """What ``adapt`` changes in these ``(path, name, document)`` files of a bundle."""
    result = Adaptation(release=release, removed={}, currencies=[], ignored={})
    for path, name, document in documents:
        kind = path.split("/", 1)[0]
        if not keeps_folder(kind, release):
            result.ignored[kind] = result.ignored.get(kind, 0) + 1
            continue
        _, removed, converted = _adapt(kind, document, release)
        for path_removed in removed:
            result.removed.setdefault((kind, path_removed), []).append(name)
        if converted:
            result.currencies.append(name)
    return result


def keeps_folder(folder: str, release: str | None) -> bool:
    """Whether a target of ``release`` (None: unknown) takes the files of ``folder``."""
    if release is None:
        return True
    return at_least(release, FOLDERS_SINCE.get(folder, FAMILIES[0]))
