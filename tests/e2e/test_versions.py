"""End to end between Superset releases, in every direction people promote: "Secure
Sales" (one chart on one password-protected database) from a server of one version to a
server of another, through the app's API, with one wrong password and then the right one.

A direction is one line of DIRECTIONS; a version is one line of
superset_servers.VERSION_SERVERS. The servers are started once per run (scripts/test.sh
starts them all early) and seeded with seed.py --secure by the version_env fixture.

How a wrong password is found differs by target: 4.1 and 5.0 connect while importing and
refuse it (a bare 500 from Superset, which the product then tells from an unreachable
database); 6.x take it and the product's check afterwards (test_connection) finds it
wrong. Either way the resume answers 400 with the error on the password's field, saying
it is wrong (WRONG_PASSWORD_SAID), nothing is left on the target, and the task waits
again.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.superset_servers import (
    SECURE_ANALYTICS_DB,
    SECURE_ANALYTICS_KEY,
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    SECURE_SALES_TITLE,
    SupersetAdmin,
    seed_source,
)

pytestmark = pytest.mark.e2e

# (source family, target family): one line per direction.
DIRECTIONS = [
    ("6.1", "5.0"),
    ("5.0", "6.1"),
    ("6.1", "6.0"),
    ("6.0", "6.1"),
    ("6.0", "5.0"),
    ("4.1", "5.0"),
    ("6.1", "4.1"),
]

DONE = {"SUCCESS", "FAILED", "AWAITING_INPUT"}
WRONG = "wrong-Pass-versions"
# How the resume's error on the password's field starts, by target family
# (migrator/passwords.py: _why_not_connected for 4.1 and 5.0, _check_database for 6.x).
WRONG_PASSWORD_SAID = {
    "4.1": "The password is wrong. Superset 4.1 refused to create the connection with a bare HTTP 500",
    "5.0": "The password is wrong. Superset 5.0 refused to create the connection with a bare HTTP 500",
    "6.0": "Wrong: ",
    "6.1": "Wrong: ",
}


def _source_dashboard(admin: SupersetAdmin, url: str) -> dict:
    """The source's "Secure Sales", seeded again when an earlier test (that used this
    server as a target) removed it, or left its database without a working password or
    with the password stored in clear (then its export carries it and nothing is asked)."""
    rows = admin.dashboards_by_title(SECURE_SALES_TITLE)
    db = admin.database_by_name(SECURE_ANALYTICS_DB)
    if (
        len(rows) != 1
        or db is None
        or SECURE_PASSWORD in json.dumps(admin.database_connection(db["id"]))
        or not admin.database_connection_ok(SECURE_ANALYTICS_DB)
    ):
        seed_source(url, secure=True)
        rows = admin.dashboards_by_title(SECURE_SALES_TITLE)
    (row,) = rows
    return row


def _uuids_by_name(rows: list[dict], name_key: str, ids: set[int]) -> dict[str, str]:
    return {r[name_key]: r["uuid"] for r in rows if r["id"] in ids}


def _content(admin: SupersetAdmin, dashboard: dict) -> dict:
    """{"charts": {slice name: uuid}, "datasets": {table name: uuid}} of a dashboard."""
    chart_ids = {c["id"] for c in admin.dashboard_charts(dashboard["id"])}
    dataset_ids = {d["id"] for d in admin.dashboard_datasets(dashboard["id"])}
    return {
        "charts": _uuids_by_name(admin.charts(), "slice_name", chart_ids),
        "datasets": _uuids_by_name(admin.datasets(), "table_name", dataset_ids),
    }


def _says_wrong_password(message: str) -> bool:
    text = message.lower()
    return "password" in text and any(w in text for w in ("wrong", "incorrect", "invalid"))


@pytest.mark.parametrize(
    ("source_family", "target_family"), DIRECTIONS, ids=[f"{s}->{t}" for s, t in DIRECTIONS]
)
def test_secure_sales_migrates_with_a_wrong_then_the_right_password(
    api, version_env, source_family, target_family
):
    source = version_env(source_family, "source")
    target = version_env(target_family, "target")
    dashboard = _source_dashboard(source.admin, source.url)
    want = _content(source.admin, dashboard)
    target.admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)

    task = api.migrate(source.name, target.name, [dashboard["id"]], overwrite=True)
    assert task["status"] == "AWAITING_INPUT", task
    fields = task["input_request"]["fields"]
    assert [(f["key"], f["type"]) for f in fields] == [(SECURE_ANALYTICS_KEY, "password")]

    resume = f"/api/tasks/{task['id']}/resume"
    wrong = api.post(resume, json={"passwords": {SECURE_ANALYTICS_KEY: WRONG}})
    assert wrong.status_code == 400, wrong.text
    (wrong_message,) = wrong.json()["errors"][f"passwords.{SECURE_ANALYTICS_KEY}"]
    waiting = api.get(f"/api/tasks/{task['id']}").json()
    assert waiting["status"] == "AWAITING_INPUT", waiting
    assert target.admin.database_by_name(SECURE_ANALYTICS_DB) is None  # nothing left behind

    right = api.post(resume, json={"passwords": {SECURE_ANALYTICS_KEY: SECURE_PASSWORD}})
    assert right.status_code == 202, right.text
    task = api.wait_for_status(task["id"], DONE, timeout=240)
    assert task["status"] == "SUCCESS", task

    (migrated,) = target.admin.dashboards_by_title(SECURE_SALES_TITLE)
    assert migrated["uuid"] == dashboard["uuid"]
    assert _content(target.admin, migrated) == want
    db = target.admin.database_by_name(SECURE_ANALYTICS_DB)
    assert db is not None
    assert db["uuid"] == source.admin.database_by_name(SECURE_ANALYTICS_DB)["uuid"]
    assert target.admin.database_connection_ok(SECURE_ANALYTICS_DB)
    # The password is stored as a password: the target never shows it back (4.1.4 keeps a
    # password written into an imported YAML's URI in clear, and exports it so).
    shown = SECURE_PASSWORD in json.dumps(target.admin.database_connection(db["id"]))
    assert not shown, "the target shows the stored password back in /connection (in clear)"
    # Last, so that a direction still shows whether it migrates: the wrong password is
    # told as a wrong password on every target (4.1/5.0 only answer a bare 500), never as
    # "cannot tell" (the database may be unreachable, or the password wrong).
    assert wrong_message.startswith(WRONG_PASSWORD_SAID[target_family]), wrong_message
    assert "unreachable" not in wrong_message, wrong_message
    assert _says_wrong_password(wrong_message), wrong_message
