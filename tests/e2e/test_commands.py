"""End to end: `manage.py migrate_dashboards` against the real Superset servers.

A password-protected dashboard, no terminal, the password from --secrets-file;
the app's server runs at the same time (its workers and the command's own
run race for the task; exactly one runs it).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.superset_servers import (
    SECURE_ANALYTICS_DB,
    SECURE_ANALYTICS_KEY,
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    SECURE_SALES_TITLE,
    find_secret_everywhere,
)
from tests.processes import run_manage

pytestmark = pytest.mark.e2e


def _manage(app_server, *args: str) -> subprocess.CompletedProcess:
    # As cron or CI runs it: no terminal.
    return run_manage(app_server.env, *args, timeout=300)


def test_migrate_dashboards_answers_from_a_secrets_file(
    api, app_server, source_admin, target_admin, tmp_path
):
    target_admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    (dashboard,) = source_admin.dashboards_by_title(SECURE_SALES_TITLE)
    args = ["--source", "source", "--target", "target", "--dashboard", str(dashboard["id"])]

    # Without the file there is nobody to ask: exit 3, and the task waits.
    waiting = _manage(app_server, "migrate_dashboards", *args, "--overwrite")
    assert waiting.returncode == 3, waiting.stdout + waiting.stderr
    assert "no terminal to ask" in waiting.stderr
    assert SECURE_ANALYTICS_KEY in waiting.stderr

    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"passwords": {SECURE_ANALYTICS_KEY: SECURE_PASSWORD}}))
    done = _manage(
        app_server, "migrate_dashboards", *args, "--overwrite", "--secrets-file", str(secrets)
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "needs input" in output and "Answers accepted; the task resumes." in output
    assert "succeeded" in output
    assert SECURE_PASSWORD not in output

    task_id = int(done.stdout.split("Task #", 1)[1].split(":", 1)[0])
    task = api.get(f"/api/tasks/{task_id}").json()  # in the history, like a web task
    assert (task["status"], task["owner"], task["kind"]) == ("SUCCESS", "admin", "migration")
    assert [d["title"] for d in task["dashboards"]] == [SECURE_SALES_TITLE]
    assert target_admin.dashboards_by_title(SECURE_SALES_TITLE)
    assert target_admin.database_connection_ok(SECURE_ANALYTICS_DB)
    hits = find_secret_everywhere(SECURE_PASSWORD, paths=[app_server.data_dir])
    assert hits == [], hits


def test_migrate_dashboards_plans_maps_and_answers_conflicts(
    api, app_server, source_admin, target_admin
):
    target_admin.delete_everything()
    target_admin.post(
        "/api/v1/database/",
        json={
            "database_name": "prod_public",
            "sqlalchemy_uri": "postgresql://mig_reader@127.0.0.1:5432/postgres",
        },
    )
    taken = target_admin.post(
        "/api/v1/dashboard/", json={"dashboard_title": "Target's own", "slug": "sales-overview"}
    )
    assert taken.status_code == 201, taken.text
    (dashboard,) = source_admin.dashboards_by_title("Sales Overview")
    args = ["--source", "source", "--target", "target", "--dashboard", str(dashboard["id"])]
    tasks_before = api.get("/api/tasks").json()["total"]

    plan = _manage(
        app_server, "migrate_dashboards", *args, "--plan", "--map", "mig_public=prod_public"
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "mig_public → prod_public" in plan.stdout and "map" in plan.stdout
    assert "Sales Overview" in plan.stdout and "conflict" in plan.stdout
    assert "Nothing was started." in plan.stdout
    assert api.get("/api/tasks").json()["total"] == tasks_before  # no task
    assert [d["slug"] for d in target_admin.dashboards()] == ["sales-overview"]  # nothing written

    unknown = _manage(app_server, "migrate_dashboards", *args, "--map", "mig_public=nope")
    assert unknown.returncode == 2 and "The target has no connection 'nope'" in unknown.stderr

    done = _manage(
        app_server,
        "migrate_dashboards",
        *args,
        "--map",
        "mig_public=prod_public",
        "--on-conflict",
        "rename",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Report:" in done.stdout and "mapped" in done.stdout
    slugs = sorted(d["slug"] for d in target_admin.dashboards() if "sales-overview" in d["slug"])
    assert slugs == ["sales-overview", f"sales-overview-{dashboard['uuid'][:8]}"]
    sales = target_admin.get_json(
        "/api/v1/dataset/?q=(columns:!(table_name,database.database_name))"
    )["result"]
    assert {"table_name": "sales", "database": {"database_name": "prod_public"}} in sales
    assert target_admin.database_by_name("mig_public") is None  # mapped, not created
    target_admin.delete_everything()  # the other tests' Sales Overview needs its slug back


def test_migrate_dashboards_replaces_or_creates_a_connection_when_told(
    app_server, source_admin, target_admin
):
    target_admin.delete_everything()
    own = target_admin.post(
        "/api/v1/database/",
        json={
            "database_name": "mig_public",
            "sqlalchemy_uri": "postgresql://mig_reader@127.0.0.1:5432/postgres",
        },
    )
    assert own.status_code == 201, own.text
    (dashboard,) = source_admin.dashboards_by_title("Sales Overview")
    args = ["--source", "source", "--target", "target", "--dashboard", str(dashboard["id"])]

    refused = _manage(app_server, "migrate_dashboards", *args, "--create", "mig_public", "--plan")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "own connection named 'mig_public'" in refused.stderr

    replaced = _manage(app_server, "migrate_dashboards", *args, "--replace", "mig_public")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert "replaced" in replaced.stdout
    (row,) = target_admin.databases()
    assert row["id"] == own.json()["id"]
    uri = target_admin.database_connection(row["id"])["sqlalchemy_uri"]
    assert uri.endswith("/mig_public")  # the source's database now

    target_admin.delete_everything()
    created = _manage(app_server, "migrate_dashboards", *args, "--create", "mig_public")
    assert created.returncode == 0, created.stdout + created.stderr
    assert "created" in created.stdout
    assert [d["database_name"] for d in target_admin.databases()] == ["mig_public"]
    target_admin.delete_everything()
