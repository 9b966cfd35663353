"""The table of what each Superset release knows (migrator.superset.versions), pinned
against what real servers of each release wrote and refused
(tests/fixtures/superset/versions/<release>/, recorded by
scripts/superset/record_versions.py): a drift fails here, loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from migrator.superset import versions
from migrator.superset.assets import Asset, fingerprints, same_content

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "superset" / "versions"
RELEASES = sorted(p.name for p in CAPTURES.iterdir() if p.is_dir())


def _export(release: str) -> dict[str, dict]:
    """{bundle path: document} of that release's own export."""
    root = CAPTURES / release / "export"
    return {
        str(path.relative_to(root)): yaml.safe_load(path.read_text())
        for path in sorted(root.rglob("*.yaml"))
        if path.name != "metadata.yaml"
    }


def _present(export: dict[str, dict], key: versions.Key | tuple[str, str]) -> bool:
    """Whether a document of the key's kind holds it (a Key, or (kind, key path))."""
    kind, key_path = (key.kind, key.path) if isinstance(key, versions.Key) else key
    return any(
        versions.pop_path(doc, key_path)[1]
        for path, doc in export.items()
        if path.split("/", 1)[0] == kind
    )


def _currency_objects(export: dict[str, dict]) -> bool:
    return any(
        isinstance(metric.get("currency"), dict)
        for path, doc in export.items()
        if path.startswith("datasets/")
        for metric in doc.get("metrics") or []
    )


def _refusals(body: dict) -> tuple[set[tuple[str, str]], bool]:
    """(kind, key path) refused as "Unknown field.", and whether a currency was refused."""
    extra = body["errors"][0]["extra"]
    unknown: set[tuple[str, str]] = set()
    currency = False
    for path, problems in extra.items():
        if path == "issue_codes" or not isinstance(problems, dict):
            continue
        kind = path.split("/", 1)[0]
        for field, value in problems.items():
            if value == ["Unknown field."]:
                unknown.add((kind, field))
            elif field == "columns" and isinstance(value, dict):
                for column in value.values():
                    unknown |= {
                        (kind, f"columns[].{name}")
                        for name, v in column.items()
                        if v == ["Unknown field."]
                    }
            elif field == "metrics" and isinstance(value, dict):
                currency |= any(
                    m.get("currency") == ["Not a valid string."] for m in value.values()
                )
    return unknown, currency


STRIPPED = "unknown_fields_removed"


def _imports(status: int, stripped: bool = False) -> list[tuple[str, str, Path]]:
    """(exported by, imported into, capture) of each recorded cross-release import that
    the target answered with ``status`` (as recorded, whatever the file is named).
    ``stripped``: the import again after a 422, without the keys refused as unknown
    (import_<source>_unknown_fields_removed_<status>.json)."""
    found = []
    for target in RELEASES:
        for source in RELEASES:
            for capture in sorted((CAPTURES / target).glob(f"import_*{source}*.json")):
                if (STRIPPED in capture.name) != stripped:
                    continue
                if json.loads(capture.read_text())["status"] == status:
                    found.append((source, target, capture))
    return found


def _pairs(imports: list[tuple[str, str, Path]]) -> list[tuple[str, str]]:
    return sorted((source, target) for source, target, _ in imports)


def test_every_recorded_release_is_a_family_the_table_knows():
    assert RELEASES == ["4.1.4", "5.0.0", "6.0.0", "6.1.0"]
    assert [versions.family(r) for r in RELEASES] == list(versions.FAMILIES)


@pytest.mark.parametrize("release", RELEASES)
def test_the_version_file_names_the_release_without_logging_in(release):
    probe = json.loads((CAPTURES / release / "version_probe.json").read_text())["calls"]
    answer = probe["GET /static/version_info.json (anonymous)"]
    assert answer["status"] == 200
    assert answer["body"]["version"] == release


@pytest.mark.parametrize("release", RELEASES)
def test_a_release_knows_every_key_its_own_export_writes(release):
    export = _export(release)
    written = [k for k in versions.KEYS if _present(export, k)]
    # 4.1 writes none of them; each later release writes the keys it added.
    assert written or release == RELEASES[0], "the capture holds no release-dependent key"
    assert not set(written) & set(versions.unknown_keys(versions.family(release)))


def test_every_recorded_import_is_read_and_every_refusal_was_tried_again_stripped():
    first = _imports(200) + _imports(422)
    again = _imports(200, stripped=True) + _imports(422, stripped=True)
    recorded = sorted(p for release in RELEASES for p in (CAPTURES / release).glob("import_*"))
    assert sorted(capture for *_, capture in first + again) == recorded
    assert len(set(_pairs(first))) == len(first)  # one first import per direction
    assert _pairs(again) == _pairs(_imports(422))
    # Every older release was given every newer one's export, and refused it.
    older_first = [(s, t) for i, s in enumerate(RELEASES) for t in RELEASES[:i]]
    assert _pairs(_imports(422)) == sorted(older_first)


@pytest.mark.parametrize(
    ("source", "target", "capture"), _imports(422), ids=lambda v: getattr(v, "name", v)
)
def test_a_target_refuses_exactly_the_keys_the_table_says(source, target, capture):
    body = json.loads(capture.read_text())["body"]
    refused, currency_refused = _refusals(body)
    export = _export(source)
    expected = {
        (k.kind, k.path)
        for k in versions.unknown_keys(versions.family(target))
        if _present(export, k)
    }
    assert refused == expected
    takes_objects = versions.at_least(versions.family(target), versions.CURRENCY_OBJECT_SINCE)
    assert currency_refused == (_currency_objects(export) and not takes_objects)


@pytest.mark.parametrize(
    ("source", "target", "capture"), _imports(200), ids=lambda v: getattr(v, "name", v)
)
def test_what_a_target_took_as_it_was_needs_no_adapting(source, target, capture):
    export = _export(source)
    assert not [k for k in versions.unknown_keys(versions.family(target)) if _present(export, k)]


def _currency_left(source: str, target: str) -> bool:
    """Whether the source's export has a metric currency as an object that the target
    takes only as a JSON string (up to 5.0)."""
    takes_objects = versions.at_least(versions.family(target), versions.CURRENCY_OBJECT_SINCE)
    return _currency_objects(_export(source)) and not takes_objects


@pytest.mark.parametrize(
    ("source", "target", "capture"),
    _imports(422, stripped=True),
    ids=lambda v: getattr(v, "name", v),
)
def test_without_the_unknown_keys_a_target_refuses_only_a_currency_object(source, target, capture):
    """The recorder's second import, without what the target refused as unknown."""
    assert _currency_left(source, target)
    assert _refusals(json.loads(capture.read_text())["body"]) == (set(), True)


@pytest.mark.parametrize(
    ("source", "target", "capture"),
    _imports(200, stripped=True),
    ids=lambda v: getattr(v, "name", v),
)
def test_without_the_unknown_keys_a_target_takes_an_export_with_no_currency_object(
    source, target, capture
):
    assert not _currency_left(source, target)


@pytest.mark.parametrize(
    ("source", "target", "capture"), _imports(422), ids=lambda v: getattr(v, "name", v)
)
def test_adapting_removes_every_key_the_target_refused(source, target, capture):
    refused, currency_refused = _refusals(json.loads(capture.read_text())["body"])
    assert refused or currency_refused
    family = versions.family(target)
    adapted = {
        path: versions.adapt(path.split("/", 1)[0], doc, family)
        for path, doc in _export(source).items()
    }
    assert [key for key in sorted(refused) if _present(adapted, key)] == []
    assert not (currency_refused and _currency_objects(adapted))
    assert not [
        k for k in versions.KEYS if _present(adapted, k) and not versions.at_least(family, k.since)
    ]
    if not versions.at_least(family, versions.CURRENCY_OBJECT_SINCE):
        assert not _currency_objects(adapted)


def test_currency_goes_down_as_a_json_string_and_up_as_an_object():
    dataset = {"metrics": [{"metric_name": "m", "currency": {"symbol": "USD"}}]}
    down = versions.adapt("datasets", dataset, "5.0")
    assert json.loads(down["metrics"][0]["currency"]) == {"symbol": "USD"}
    up = versions.adapt("datasets", down, "6.1")
    assert up["metrics"][0]["currency"] == {"symbol": "USD"}
    assert dataset["metrics"][0]["currency"] == {"symbol": "USD"}  # not changed in place


def test_one_line_per_key_naming_the_assets_and_the_release():
    docs = [
        ("datasets/db/a.yaml", "public.a", {"folders": [{"name": "x"}], "uuid": "1"}),
        ("datasets/db/b.yaml", "public.b", {"folders": [{"name": "y"}], "uuid": "2"}),
        ("datasets/db/c.yaml", "public.c", {"folders": None, "uuid": "3"}),
        ("dashboards/d.yaml", "Sales", {"theme_uuid": "t-1"}),
        ("themes/t.yaml", "t", {"uuid": "t-1"}),
    ]
    lines = versions.adaptation(docs, "5.0").lines()
    assert lines == [
        "removed `folders` from 2 datasets (public.a, public.b): Superset 5.0 does not know "
        "it; their folders are not carried",
        "removed `theme_uuid` from 1 dashboard (Sales): Superset 5.0 does not know it; "
        "5.0 has no themes: the dashboard will use the default theme",
        "left out 1 file(s) of `themes/`: Superset 5.0 has no themes",
    ]
    assert not versions.adaptation(docs, "6.1")


def test_the_same_dataset_on_two_releases_has_the_same_content():
    """6.1 writes keys 5.0 does not (and a currency as an object): a 5.0 copy of a 6.1
    dataset is still the same dataset, so an unchanged one is not rewritten."""
    newer = {
        "table_name": "t",
        "uuid": "u",
        "folders": None,
        "currency_code_column": None,
        "metrics": [{"metric_name": "m", "currency": {"symbol": "USD"}}],
        "columns": [{"column_name": "c", "datetime_format": None}],
    }
    older = versions.adapt("datasets", newer, "5.0")

    def asset(doc: dict) -> Asset:
        return Asset(type="datasets", path="p", uuid="u", name="t", **fingerprints(doc, "datasets"))

    assert same_content(asset(newer), asset(older))
    assert same_content(asset(older), asset(newer))
    changed = {**newer, "folders": [{"name": "x"}]}
    assert not same_content(asset(newer), asset(changed))
    renamed = {**older, "metrics": [{"metric_name": "m2", "currency": '{"symbol": "USD"}'}]}
    assert not same_content(asset(newer), asset(renamed))


@pytest.mark.parametrize(
    ("version", "family"),
    [("6.1.0", "6.1"), ("6.1.3", "6.1"), ("5.0.0", "5.0"), ("4.1.4", "4.1"), ("3.1.0", None)],
)
def test_family(version, family):
    assert versions.family(version) == family


def test_family_of_nothing_is_unknown():
    assert versions.family(None) is None and versions.family("") is None
    assert versions.connects_on_import(None) and versions.connects_on_import("5.0")
    assert not versions.connects_on_import("6.0")
