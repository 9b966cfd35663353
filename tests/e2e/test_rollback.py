"""End to end: a migration rolled back against the real Supersets.

What the migration replaced comes back from its backup, what it created is deleted
(a connection only when nothing else uses it), what someone changed on the target
since is kept and named, and a migration is rolled back once.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.e2e.superset_servers import (
    SECURE_ANALYTICS_DB,
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    SECURE_SALES_TITLE,
)
from tests.e2e.test_promotion import SALES, SALES_DB, _body, _dashboard_id, _own_connection, _run

pytestmark = pytest.mark.e2e

DONE = {"SUCCESS", "FAILED", "AWAITING_INPUT"}
# Fields of an export that change without anyone changing the asset: the export's own
# timestamp (metadata.yaml) and the version of the export format.
VOLATILE = {"timestamp", "version"}


def _rollback(api, task_id: int, timeout: float = 120) -> dict:
    answer = api.post(f"/api/tasks/{task_id}/rollback")
    assert answer.status_code == 201, answer.text
    return api.wait_for_status(answer.json()["id"], DONE, timeout)


def _outcomes(task: dict) -> dict[tuple[str, str], str]:
    return {(a["type"], a["name"]): a["outcome"] for a in task["report"]["assets"]}


def _normalised_export(admin, dashboard_id: int) -> dict[str, dict]:
    """The target's export of a dashboard (with its charts, datasets, connections),
    document by document, without the fields every export changes."""
    with zipfile.ZipFile(io.BytesIO(admin.export_dashboards([dashboard_id]))) as archive:
        documents = {}
        for name in archive.namelist():
            path = name.split("/", 1)[1]
            if path == "metadata.yaml":
                continue
            document = yaml.safe_load(archive.read(name))
            documents[path] = {k: v for k, v in document.items() if k not in VOLATILE}
        return documents


@pytest.fixture
def empty_target(target_admin):
    target_admin.delete_everything()
    return target_admin


def test_a_rollback_after_an_overwrite_leaves_the_target_as_it_was(api, source_admin, empty_target):
    dashboard_id = _dashboard_id(source_admin, SALES)
    chart = source_admin.dashboard_charts(dashboard_id)[0]
    dataset = source_admin.dashboard_datasets(dashboard_id)[0]
    first = _run(api, _body(source_admin, overwrite=True))
    assert first["status"] == "SUCCESS", first["error"]
    (on_target,) = empty_target.dashboards_by_title(SALES)
    before = _normalised_export(empty_target, on_target["id"])
    try:
        source_admin.request("PUT", f"/api/v1/chart/{chart['id']}", json={"slice_name": "Renamed"})
        source_admin.request(
            "PUT", f"/api/v1/dataset/{dataset['id']}", json={"description": "Changed"}
        )
        source_admin.request(
            "PUT", f"/api/v1/dashboard/{dashboard_id}", json={"dashboard_title": "Sales v2"}
        )
        second = _run(api, _body(source_admin, "Sales v2", overwrite=True))
        assert second["status"] == "SUCCESS", second["error"]
        assert second["backup"]["bytes"] > 0
        assert {k: len(v) for k, v in second["backup"]["assets"].items()} == {
            "dashboards": 1,
            "charts": 1,
            "datasets": 1,
        }
        assert [c["slice_name"] for c in empty_target.charts()] == ["Renamed"]

        plan = api.post(f"/api/tasks/{second['id']}/rollback/plan")
        assert plan.status_code == 200, plan.text
        assert plan.json()["plan"]["summary"] == {"restore": 3}
        assert [c["slice_name"] for c in empty_target.charts()] == ["Renamed"]  # plan only

        undone = _rollback(api, second["id"])
        assert undone["status"] == "SUCCESS", undone["error"]
        assert undone["migration"] == second["id"]
        assert _outcomes(undone) == {
            ("dashboards", "Sales v2"): "restored",
            ("charts", "Renamed"): "restored",
            ("datasets", "public.sales"): "restored",
        }
        assert _normalised_export(empty_target, on_target["id"]) == before
        assert [c["slice_name"] for c in empty_target.charts()] == [chart["slice_name"]]
        # The migration links to its rollback.
        assert api.get(f"/api/tasks/{second['id']}").json()["rolled_back_by"] == undone["id"]

        again = api.post(f"/api/tasks/{second['id']}/rollback")
        assert again.status_code == 409
        assert f"#{undone['id']}" in again.json()["detail"]
        assert api.post(f"/api/tasks/{undone['id']}/rollback").status_code == 409
    finally:
        source_admin.request(
            "PUT", f"/api/v1/chart/{chart['id']}", json={"slice_name": chart["slice_name"]}
        )
        source_admin.request("PUT", f"/api/v1/dataset/{dataset['id']}", json={"description": ""})
        source_admin.request(
            "PUT", f"/api/v1/dashboard/{dashboard_id}", json={"dashboard_title": SALES}
        )


def test_what_the_migration_created_is_deleted_and_a_mapped_connection_untouched(
    api, source_admin, empty_target
):
    own = _own_connection(empty_target, SECURE_ANALYTICS_DB)
    body = _body(source_admin)
    body["dashboards"].append(_dashboard_id(source_admin, SECURE_SALES_TITLE))
    task = _run(api, body)
    assert task["status"] == "SUCCESS", task["error"]
    assert task["backup"] is None  # it created everything: nothing of the target's to keep
    assert {d["database_name"] for d in empty_target.databases()} == {
        SALES_DB,
        own["database_name"],
    }

    undone = _rollback(api, task["id"])

    assert undone["status"] == "SUCCESS", undone["error"]
    assert empty_target.dashboards() == []
    assert empty_target.charts() == []
    assert empty_target.datasets() == []
    (left,) = empty_target.databases()  # the created connection went, the mapped one stays
    assert (left["uuid"], left["database_name"]) == (own["uuid"], SECURE_ANALYTICS_DB)
    outcomes = _outcomes(undone)
    assert outcomes[("databases", SALES_DB)] == "deleted"
    assert ("databases", SECURE_ANALYTICS_DB) not in outcomes  # mapped: not the rollback's
    assert undone["report"]["warnings"] == []


def test_a_chart_edited_on_the_target_after_the_migration_survives_and_is_named(
    api, source_admin, empty_target
):
    task = _run(api, _body(source_admin))
    assert task["status"] == "SUCCESS", task["error"]
    (chart,) = empty_target.charts()
    empty_target.request("PUT", f"/api/v1/chart/{chart['id']}", json={"slice_name": "Mine now"})

    undone = _rollback(api, task["id"])

    assert undone["status"] == "SUCCESS", undone["error"]
    assert [c["slice_name"] for c in empty_target.charts()] == ["Mine now"]
    assert empty_target.dashboards() == []
    outcomes = _outcomes(undone)
    assert outcomes[("charts", chart["slice_name"])] == "kept"
    assert any(
        chart["slice_name"] in w and "changed on the target" in w
        for w in undone["report"]["warnings"]
    )
    # The dataset the kept chart still uses stays, and so does its connection.
    assert [d["table_name"] for d in empty_target.datasets()] == ["sales"]


def test_the_backup_holds_no_secret_of_the_flow(api, app_server, source_admin, target_admin):
    """The connection's password was typed in the flow: the backup (an export of the
    target) holds masked passwords only, as any Superset export does."""
    target_admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    dashboard_id = _dashboard_id(source_admin, SECURE_SALES_TITLE)
    task = _run(
        api,
        _body(
            source_admin, SECURE_SALES_TITLE, databases={SECURE_ANALYTICS_DB: {"action": "create"}}
        ),
    )
    assert task["status"] == "AWAITING_INPUT", task
    answer = api.post(
        f"/api/tasks/{task['id']}/resume",
        json={"passwords": {f["key"]: SECURE_PASSWORD for f in task["input_request"]["fields"]}},
    )
    assert answer.status_code == 202, answer.text
    task = api.wait_for_status(task["id"], {"SUCCESS", "FAILED"})
    assert task["status"] == "SUCCESS", task["error"]
    try:
        source_admin.request(
            "PUT", f"/api/v1/dashboard/{dashboard_id}", json={"dashboard_title": "Secure v2"}
        )
        second = _run(api, _body(source_admin, "Secure v2", overwrite=True))
        assert second["status"] == "SUCCESS", second["error"]
        assert second["backup"]["assets"]["dashboards"][0]["name"] == "Secure v2"
        (path,) = (Path(app_server.data_dir) / "files" / "bundles").glob(
            f"task-{second['id']}-backup*.zip"
        )
        with zipfile.ZipFile(path) as archive:
            contents = b"".join(archive.read(name) for name in archive.namelist())
        assert b"databases/" in b"".join(n.encode() for n in zipfile.ZipFile(path).namelist())
        assert SECURE_PASSWORD.encode() not in contents
        assert b"XXXXXXXXXX" in contents  # the export's mask, as Superset writes it
    finally:
        source_admin.request(
            "PUT", f"/api/v1/dashboard/{dashboard_id}", json={"dashboard_title": SECURE_SALES_TITLE}
        )


def test_rollback_migration_from_the_terminal(api, app_server, source_admin, empty_target):
    """`manage.py rollback_migration --plan`, then `rollback_migration`, as cron or CI runs
    them (no terminal), while the app's server runs too."""
    from tests.e2e.test_commands import _manage

    task = _run(api, _body(source_admin))
    assert task["status"] == "SUCCESS", task["error"]
    assert empty_target.dashboards_by_title(SALES)
    tasks_before = api.get("/api/tasks").json()["total"]

    plan = _manage(app_server, "rollback_migration", str(task["id"]), "--plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"Rollback plan of migration #{task['id']} on target (no backup)." in plan.stdout
    assert "Nothing was started." in plan.stdout
    lines = plan.stdout.splitlines()
    assert any(SALES in line and " delete " in line for line in lines), plan.stdout
    assert any(line.split()[:3] == ["database", SALES_DB, "delete"] for line in lines)
    summary = api.post(f"/api/tasks/{task['id']}/rollback/plan").json()["plan"]["summary"]
    counts = ", ".join(f"{n} {action}" for action, n in summary.items())
    assert f"Summary: {counts}." in lines
    assert api.get("/api/tasks").json()["total"] == tasks_before  # nothing started
    assert empty_target.dashboards_by_title(SALES)  # nothing written

    done = _manage(app_server, "rollback_migration", str(task["id"]))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    rollback_id = int(done.stdout.split("Task #", 1)[1].split(":", 1)[0])
    assert f"rolling back migration #{task['id']} on target" in done.stdout
    assert "Status: Succeeded" in done.stdout and "Report:" in done.stdout
    report = done.stdout.split("Report:", 1)[1]
    assert any(SALES in line and "deleted" in line for line in report.splitlines())
    assert f"Task #{rollback_id} succeeded." in done.stdout
    undone = api.get(f"/api/tasks/{rollback_id}").json()  # in the history, like a web one
    assert (undone["kind"], undone["status"], undone["owner"]) == ("rollback", "SUCCESS", "admin")
    assert undone["migration"] == task["id"]
    assert api.get(f"/api/tasks/{task['id']}").json()["rolled_back_by"] == rollback_id
    assert empty_target.dashboards() == []
    assert empty_target.charts() == []
    assert empty_target.datasets() == []
    assert empty_target.databases() == []

    again = _manage(app_server, "rollback_migration", str(task["id"]))
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"already rolled back by task #{rollback_id}" in again.stderr
    itself = _manage(app_server, "rollback_migration", str(rollback_id), "--plan")
    assert itself.returncode == 2 and "not a migration" in itself.stderr


def test_a_take_over_rolled_back_gives_the_target_its_own_dashboard_back(
    api, source_admin, empty_target
):
    answer = empty_target.post(
        "/api/v1/dashboard/", json={"dashboard_title": "Target's own", "slug": "sales-overview"}
    )
    assert answer.status_code == 201, answer.text
    (theirs,) = empty_target.dashboards_by_title("Target's own")
    sales_uuid = source_admin.dashboards_by_title(SALES)[0]["uuid"]
    try:
        task = _run(api, _body(source_admin, conflicts={sales_uuid: "take_over"}))
        assert task["status"] == "SUCCESS", task["error"]
        assert task["backup"]["assets"]["dashboards"][0]["uuid"] == theirs["uuid"]
        (taken,) = empty_target.dashboards()
        assert taken["uuid"] == sales_uuid  # the target's row, under the source's uuid

        undone = _rollback(api, task["id"])

        assert undone["status"] == "SUCCESS", undone["error"]
        (back,) = empty_target.dashboards()
        assert (back["uuid"], back["dashboard_title"], back["slug"]) == (
            theirs["uuid"],
            "Target's own",
            "sales-overview",
        )
        assert _outcomes(undone)[("dashboards", SALES)] == "restored"
        assert undone["report"]["warnings"] == []
    finally:
        for dashboard in empty_target.dashboards():
            empty_target.delete_dashboard(dashboard["id"])


def test_a_created_dataset_that_a_chart_of_the_targets_own_uses_is_kept(
    api, source_admin, empty_target
):
    task = _run(api, _body(source_admin))
    assert task["status"] == "SUCCESS", task["error"]
    (dataset,) = empty_target.datasets()
    answer = empty_target.post(
        "/api/v1/chart/",
        json={
            "slice_name": "Made on the target",
            "viz_type": "table",
            "datasource_id": dataset["id"],
            "datasource_type": "table",
        },
    )
    assert answer.status_code == 201, answer.text

    undone = _rollback(api, task["id"])

    assert undone["status"] == "SUCCESS", undone["error"]
    assert [c["slice_name"] for c in empty_target.charts()] == ["Made on the target"]
    assert [d["table_name"] for d in empty_target.datasets()] == ["sales"]
    assert empty_target.dashboards() == []
    assert _outcomes(undone)[("datasets", "public.sales")] == "kept"
    assert any("public.sales" in w for w in undone["report"]["warnings"])
