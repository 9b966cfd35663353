"""End to end: a task asks for database passwords instead of failing, and resumes.

Against two real Superset servers whose databases really exist behind the
connections (PostgreSQL checks these roles' passwords), so a wrong password
is really wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.appserver import AppServer
from tests.e2e.superset_servers import (
    SECURE_ANALYTICS_DB,
    SECURE_ANALYTICS_KEY,
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    SECURE_SALES_TITLE,
    SECURE_WAREHOUSE_DB,
    SECURE_WAREHOUSE_KEY,
    TWO_DATABASES_TITLE,
    WAREHOUSE_PASSWORD,
    find_secret_everywhere,
    instance_dir,
    metadata_db,
)

pytestmark = pytest.mark.e2e

WRONG = ["wrong-Pass-e2e-1", "wrong-Pass-e2e-2"]
servers_used: list[AppServer] = []


@pytest.fixture
def fresh_target(target_admin):
    """A target that lacks the password-protected databases (so Superset asks)."""
    target_admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    return target_admin


def _start(api, source_admin, title: str) -> int:
    (dashboard,) = source_admin.dashboards_by_title(title)
    answer = api.post(
        "/api/migrations",
        json={
            "source": "source",
            "target": "target",
            "dashboards": [dashboard["id"]],
            "overwrite": True,
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _resume(api, task_id: int, passwords: dict[str, str]):
    return api.post(f"/api/tasks/{task_id}/resume", json={"passwords": passwords})


def test_one_database_asks_rejects_a_wrong_password_then_succeeds(
    api, app_server, source_admin, fresh_target
):
    servers_used.append(app_server)
    task_id = _start(api, source_admin, SECURE_SALES_TITLE)
    task = api.wait_for_status(task_id, {"AWAITING_INPUT", "FAILED", "SUCCESS"})
    assert task["status"] == "AWAITING_INPUT", task["error"]
    fields = task["input_request"]["fields"]
    assert [(f["key"], f["type"], f["database_name"]) for f in fields] == [
        (SECURE_ANALYTICS_KEY, "password", SECURE_ANALYTICS_DB)
    ]
    assert "XXXXXXXXXX" in fields[0]["uri_masked"]

    wrong = _resume(api, task_id, {SECURE_ANALYTICS_KEY: WRONG[0]})
    assert wrong.status_code == 400
    (message,) = wrong.json()["errors"][f"passwords.{SECURE_ANALYTICS_KEY}"]
    assert "password" in message.lower() and "incorrect" in message.lower()
    task = api.get(f"/api/tasks/{task_id}").json()
    assert task["status"] == "AWAITING_INPUT"
    assert task["input_request"]["fields"][0]["error"] == message
    assert fresh_target.database_by_name(SECURE_ANALYTICS_DB) is None  # the wrong one was removed

    right = _resume(api, task_id, {SECURE_ANALYTICS_KEY: SECURE_PASSWORD})
    assert right.status_code == 202, right.text
    task = api.wait_for_status(task_id, {"SUCCESS", "FAILED", "AWAITING_INPUT"})
    assert task["status"] == "SUCCESS", task
    assert fresh_target.dashboards_by_title(SECURE_SALES_TITLE)
    assert fresh_target.database_connection_ok(SECURE_ANALYTICS_DB)
    log = api.get(f"/tasks/{task_id}/").text
    assert log.count("Exporting 1 dashboard") == 1  # resumed at the import: no second export


def test_two_databases_keep_asking_for_exactly_what_is_missing(api, source_admin, fresh_target):
    task_id = _start(api, source_admin, TWO_DATABASES_TITLE)
    task = api.wait_for_status(task_id, {"AWAITING_INPUT", "FAILED", "SUCCESS"})
    assert task["status"] == "AWAITING_INPUT", task["error"]
    assert sorted(f["key"] for f in task["input_request"]["fields"]) == [
        SECURE_ANALYTICS_KEY,
        SECURE_WAREHOUSE_KEY,
    ]

    partly = _resume(
        api, task_id, {SECURE_ANALYTICS_KEY: SECURE_PASSWORD, SECURE_WAREHOUSE_KEY: WRONG[1]}
    )
    assert partly.status_code == 400
    assert set(partly.json()["errors"]) == {f"passwords.{SECURE_WAREHOUSE_KEY}"}
    fields = api.get(f"/api/tasks/{task_id}").json()["input_request"]["fields"]
    assert [f["key"] for f in fields] == [SECURE_WAREHOUSE_KEY]  # the right one is not asked again
    assert fields[0]["error"]

    assert _resume(api, task_id, {SECURE_WAREHOUSE_KEY: WAREHOUSE_PASSWORD}).status_code == 202
    task = api.wait_for_status(task_id, {"SUCCESS", "FAILED", "AWAITING_INPUT"})
    assert task["status"] == "SUCCESS", task
    assert fresh_target.database_connection_ok(SECURE_ANALYTICS_DB)
    assert fresh_target.database_connection_ok(SECURE_WAREHOUSE_DB)
    assert _resume(api, task_id, {SECURE_WAREHOUSE_KEY: WAREHOUSE_PASSWORD}).status_code == 409


def test_a_waiting_task_survives_a_restart_of_every_process(superset, source_admin, fresh_target):
    first = AppServer()
    servers_used.append(first)
    first.prepare()
    first.start()
    api = first.session()
    for name in ("source", "target"):
        api.post(
            "/api/environments",
            json={"name": name, "url": superset[name], "username": "admin", "password": "admin"},
        )
    task_id = _start(api, source_admin, TWO_DATABASES_TITLE)
    assert api.wait_for_status(task_id, {"AWAITING_INPUT", "FAILED"})["status"] == "AWAITING_INPUT"
    first.stop()

    second = AppServer(data_dir=first.data_dir)  # same database and saved bundle, new process
    second.start()
    try:
        api = second.session()
        task = api.get(f"/api/tasks/{task_id}").json()
        assert task["status"] == "AWAITING_INPUT"
        assert len(task["input_request"]["fields"]) == 2
        assert "Check and resume" in api.get(f"/tasks/{task_id}/input/").text
        answer = _resume(
            api,
            task_id,
            {SECURE_ANALYTICS_KEY: SECURE_PASSWORD, SECURE_WAREHOUSE_KEY: WAREHOUSE_PASSWORD},
        )
        assert answer.status_code == 202, answer.text
        assert api.wait_for_status(task_id, {"SUCCESS", "FAILED"})["status"] == "SUCCESS"
    finally:
        second.stop()


def test_no_secret_is_written_anywhere(superset):
    """After the flows above: our tables, files and logs, and the target's own action log."""
    assert servers_used, "run with the tests above"
    places = [Path(s.data_dir) for s in servers_used]
    target = instance_dir("target")
    for secret in [SECURE_PASSWORD, WAREHOUSE_PASSWORD, *WRONG]:
        hits = find_secret_everywhere(
            secret,
            paths=[*places, target / "server.log"],
            sqlite_dbs=[*(p / "db.sqlite3" for p in places), metadata_db("target")],
        )
        assert hits == [], f"{secret!r} leaked: {hits}"
