"""The plan, from a bundle and what the target holds (pure: no Superset, no database)."""

from __future__ import annotations

import io
import zipfile

import pytest
import yaml

from migrator.plan import (
    Choices,
    Inventory,
    PlanError,
    make_plan,
    open_conflicts,
    plan_lines,
    resolve_conflicts,
)
from migrator.superset.assets import rewrite_references, scan, write_bundle

ROOT = "dashboard_export_20261202T000000"
DB, DS, CH, DA = "db-src", "ds-src", "ch-src", "da-src"


def _bundle(**changes) -> bytes:
    members = {
        "databases/analytics.yaml": {
            "database_name": "analytics",
            "sqlalchemy_uri": "postgresql://u:XXXXXXXXXX@dev/analytics",
            "uuid": DB,
        },
        "datasets/analytics/sales_1.yaml": {
            "table_name": "sales",
            "schema": "public",
            "uuid": DS,
            "database_uuid": DB,
            "description": changes.get("description"),
        },
        "charts/Sales_1.yaml": {
            "slice_name": changes.get("chart", "Sales"),
            "params": {"datasource": "1__table"},
            "uuid": CH,
            "dataset_uuid": DS,
        },
        "dashboards/Sales_1.yaml": {
            "dashboard_title": "Sales",
            "slug": "sales",
            "uuid": DA,
            "position": {"CHART-1": {"type": "CHART", "meta": {"chartId": 1, "uuid": CH}}},
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{ROOT}/metadata.yaml", "version: 1.0.0\ntype: Dashboard\n")
        for path, doc in members.items():
            archive.writestr(f"{ROOT}/{path}", yaml.safe_dump(doc))
    return buffer.getvalue()


def _plan(target: Inventory | None = None, **choices) -> dict:
    return make_plan(scan(io.BytesIO(_bundle())), target or Inventory(), Choices(**choices))


def _action(plan: dict, kind: str) -> str:
    (item,) = plan[kind]
    return item["action"]


def _target_with_everything(**copies_from) -> Inventory:
    """A target that already has every asset of the bundle (same uuids)."""
    copy = scan(io.BytesIO(_bundle(**copies_from)))
    return Inventory(
        databases=[{"id": 1, "uuid": DB, "name": "analytics", "backend": "postgresql"}],
        datasets=[{"id": 2, "uuid": DS, "schema": "public", "table": "sales", "database_uuid": DB}],
        charts=[{"id": 3, "uuid": CH, "name": "Sales", "changed_on": "2026-12-01T10:00:00"}],
        dashboards=[{"id": 4, "uuid": DA, "name": "Sales", "slug": "sales"}],
        copies={(a.type, a.uuid): a for a in copy.assets},
    )


def test_a_target_without_the_assets_gets_everything_created():
    plan = _plan()
    assert plan["summary"] == {"create": 4}
    assert plan["databases"][0]["needs_password"] is True


def test_the_targets_own_connection_of_the_same_name_is_used_not_replaced():
    target = Inventory(databases=[{"id": 9, "uuid": "db-own", "name": "analytics", "backend": ""}])
    plan = _plan(target)
    (db,) = plan["databases"]
    assert (db["action"], db["target"]["uuid"]) == ("map", "db-own")
    assert "not changed" in db["reason"]


def test_a_saved_mapping_and_an_explicit_choice_pick_another_connection():
    target = Inventory(databases=[{"id": 9, "uuid": "db-wh", "name": "warehouse", "backend": ""}])
    saved = {"analytics": {"action": "map", "target": "warehouse"}}
    (db,) = _plan(target, saved=saved)["databases"]
    assert (db["action"], db["target"]["name"], db["explicit"]) == ("map", "warehouse", False)
    assert "saved" in db["reason"]
    (db,) = _plan(target, databases={DB: {"action": "create"}})["databases"]
    assert (db["action"], db["explicit"]) == ("create", True)


def test_a_saved_mapping_to_a_deleted_connection_falls_back_to_the_default():
    saved = {"analytics": {"action": "map", "target": "gone"}}
    assert _action(_plan(saved=saved), "databases") == "create"


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ({"analytics": {"action": "map", "target": "nope"}}, "no connection 'nope'"),
        ({"analytics": {"action": "replace"}}, "no connection named 'analytics' to replace"),
        ({"other": {"action": "create"}}, "'other' is not a connection"),
        ({"analytics": {"action": "steal"}}, "must be one of"),
    ],
)
def test_choices_that_cannot_be_planned_say_why(choice, message):
    with pytest.raises(PlanError, match=message):
        _plan(databases=choice)


def test_create_never_takes_over_a_connection_of_the_targets_own():
    target = Inventory(databases=[{"id": 9, "uuid": "db-own", "name": "analytics", "backend": ""}])
    with pytest.raises(PlanError, match="own connection named 'analytics'"):
        _plan(target, databases={"analytics": {"action": "create"}})
    replaced = _plan(target, databases={"analytics": {"action": "replace"}})["databases"][0]
    assert (replaced["action"], replaced["target"]["uuid"]) == ("replace", "db-own")


def test_a_dataset_of_the_targets_own_on_the_same_table_is_used():
    target = Inventory(
        databases=[{"id": 9, "uuid": "db-own", "name": "analytics", "backend": ""}],
        datasets=[
            {
                "id": 5,
                "uuid": "ds-own",
                "schema": "public",
                "table": "sales",
                "database_uuid": "db-own",
            }
        ],
    )
    (ds,) = _plan(target)["datasets"]
    assert (ds["action"], ds["target_uuid"]) == ("map", "ds-own")


def test_identical_assets_are_unchanged_and_different_ones_updated_or_kept():
    assert _plan(_target_with_everything(), overwrite=True)["summary"] == {
        "map": 1,
        "unchanged": 3,
    }
    differs = _target_with_everything(chart="Old name", description="old")
    plan = _plan(differs, overwrite=True)
    assert (_action(plan, "charts"), _action(plan, "datasets")) == ("update", "update")
    assert _action(plan, "dashboards") == "unchanged"  # chart ids differ, not the content
    kept = _plan(differs, overwrite=False)
    assert (_action(kept, "charts"), _action(kept, "datasets")) == ("keep", "keep")


def test_a_record_of_the_last_write_makes_an_asset_unchanged():
    # The target exports it otherwise (its own rendering), but nobody changed it since.
    target = _target_with_everything(chart="As the target exports it")
    source_chart = scan(io.BytesIO(_bundle())).by_uuid("charts")[CH]
    records = {("charts", CH): (source_chart.exact, "2026-12-01T10:00:00")}
    assert _action(_plan(target, overwrite=True, records=records), "charts") == "unchanged"
    assert _action(_plan(target, overwrite=True), "charts") == "update"
    edited_since = {("charts", CH): (source_chart.exact, "2026-11-30T09:00:00")}
    assert _action(_plan(target, overwrite=True, records=edited_since), "charts") == "update"


def test_a_slug_taken_by_another_dashboard_is_a_conflict_until_answered():
    target = Inventory(dashboards=[{"id": 8, "uuid": "other", "name": "Theirs", "slug": "sales"}])
    plan = _plan(target)
    assert _action(plan, "dashboards") == "conflict"
    assert [d["name"] for d in open_conflicts(plan)] == ["Sales"]
    resolve_conflicts(plan, {DA: "rename"}, {"sales", "sales-2"})
    (dash,) = plan["dashboards"]
    # The start of its uuid: the same on every run, whatever else the target holds.
    assert (dash["action"], dash["new_slug"]) == ("rename", "sales-dasrc")
    skipped = _plan(target, conflicts={"sales": "skip"})
    assert skipped["summary"] == {"skip": 4}  # nothing else is imported without it


def test_the_plan_reads_as_lines_by_name():
    lines = "\n".join(plan_lines(_plan()))
    assert "dashboard Sales" in lines and "chart     Sales" in lines
    assert ".yaml" not in lines


def test_a_rewritten_bundle_points_at_the_targets_own_assets():
    out = io.BytesIO()
    databases = {DB: {"uuid": "db-own", "name": "prod analytics"}}
    datasets = {DS: "ds-own"}

    def transform(path, doc):
        return rewrite_references(
            path.split("/")[0], doc, databases=databases, datasets=datasets, slug="sales-2"
        )

    write_bundle(io.BytesIO(_bundle()), out, "Dashboard", list(_paths()), transform)
    rewritten = scan(io.BytesIO(out.getvalue()))
    assert rewritten.by_uuid("databases")["db-own"].name == "prod analytics"
    assert rewritten.by_uuid("datasets")["ds-own"].database_uuid == "db-own"
    assert rewritten.by_uuid("charts")[CH].dataset_uuid == "ds-own"
    assert rewritten.by_uuid("dashboards")[DA].slug == "sales-2"


def test_an_import_bundle_copies_what_the_plan_does_not_change():
    """Files the plan's rewrite and the target's release leave alone are copied as
    exported, unread; a chart pointed at the target's own dataset is rewritten."""
    import zipfile

    from migrator.promote import Imports

    def written(plan):
        out = io.BytesIO()
        imports = Imports(plan)
        write_bundle(
            io.BytesIO(_bundle()),
            out,
            "Dashboard",
            list(_paths()),
            imports.transform,
            as_is=imports.as_is,
        )
        with zipfile.ZipFile(out) as new:
            return {n.split("/", 1)[1]: new.read(n) for n in new.namelist()}

    with zipfile.ZipFile(io.BytesIO(_bundle())) as old:
        exported = {n.split("/", 1)[1]: old.read(n) for n in old.namelist()}
    plan = _plan(overwrite=True) | {"release": "6.1"}
    files = written(plan)
    as_is = {p for p in files if p.startswith(("charts/", "dashboards/"))}
    assert as_is and all(files[p] == exported[p] for p in as_is)
    assert all(
        not Imports(plan).as_is(p) for p in files if p.startswith(("datasets/", "databases/"))
    )
    plan["datasets"][0] |= {"action": "map", "target_uuid": "ds-own"}
    (chart,) = [p for p in files if p.startswith("charts/")]
    assert written(plan)[chart] != exported[chart]
    assert b"ds-own" in written(plan)[chart]
    assert not Imports(plan | {"release": "4.1"}).as_is(chart)  # 4.1 refuses chart keys


def _paths():
    return [a.path for a in scan(io.BytesIO(_bundle())).assets]


def test_a_new_slug_is_never_one_already_taken():
    target = Inventory(dashboards=[{"id": 8, "uuid": "other", "name": "Theirs", "slug": "sales"}])
    plan = _plan(target)
    resolve_conflicts(plan, {"sales": "rename"}, {"sales", "sales-dasrc"})
    assert plan["dashboards"][0]["new_slug"] not in {"sales", "sales-dasrc"}


def test_a_renamed_dashboard_keeps_its_slug_on_the_next_run():
    target = Inventory(
        dashboards=[
            {"id": 8, "uuid": "other", "name": "Theirs", "slug": "sales"},
            {"id": 9, "uuid": DA, "name": "Sales", "slug": "sales-dasrc"},
        ]
    )
    (dash,) = _plan(target, overwrite=True)["dashboards"]
    assert (dash["action"], dash["new_slug"]) == ("update", "sales-dasrc")


def test_answering_a_conflict_brings_back_what_the_dashboard_needs():
    target = Inventory(dashboards=[{"id": 8, "uuid": "other", "name": "Theirs", "slug": "sales"}])
    plan = _plan(target)
    assert plan["summary"] == {"conflict": 1, "skip": 3}
    resolve_conflicts(plan, {"sales": "take_over"}, {"sales"})
    assert plan["summary"] == {"create": 3, "take_over": 1}


def test_a_dataset_on_another_connection_of_the_target_is_kept_even_with_overwrite():
    target = _target_with_everything(description="differs")
    target.databases.append({"id": 7, "uuid": "db-other", "name": "other", "backend": ""})
    target.datasets[0]["database_uuid"] = "db-other"
    (ds,) = _plan(target, overwrite=True)["datasets"]
    assert ds["action"] == "keep" and "cannot be moved" in ds["reason"]


@pytest.mark.django_db
def test_what_a_migration_wrote_is_recorded_in_one_statement(envs, django_assert_num_queries):
    from migrator.models import PromotedAsset
    from migrator.promote import remember_writes

    plan = _plan(overwrite=True)
    changed_on = {
        (kind, item["uuid"]): f"2026-12-0{n}T10:00:00"
        for n, kind in enumerate(("datasets", "charts", "dashboards"), 1)
        for item in plan[kind]
    }
    with django_assert_num_queries(1):
        remember_writes(envs[1], plan, changed_on, None)
    changed_on[("charts", CH)] = "2026-12-05T10:00:00"  # written again: updated in place
    with django_assert_num_queries(1):
        remember_writes(envs[1], plan, changed_on, None)
    assert dict(PromotedAsset.objects.values_list("asset_type", "target_changed_on")) == {
        "datasets": "2026-12-01T10:00:00",
        "charts": "2026-12-05T10:00:00",
        "dashboards": "2026-12-03T10:00:00",
    }
