"""End to end against a real Superset 4.1.4 (an older release teams still run), next to
the 6.1 pair: 6.1 → 4.1 (fields 4.1 does not know are stripped), passwords checked by a
4.1 target (it refuses a wrong one on import), and 4.1 → 6.1.

The 4.1.4 server ("target41", port 8192) is installed, started and seeded by the
version_env fixture (superset_servers.VERSION_SERVERS["4.1"]; venv <SUPERSET_HOME>/venv-4.1.4).
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

SALES = "Sales Overview"
DONE = {"SUCCESS", "FAILED", "AWAITING_INPUT"}


@pytest.fixture(scope="module")
def superset41(version_env) -> str:
    """A running Superset 4.1.4, registered in the app as environment "target41"."""
    return version_env("4.1").url


@pytest.fixture
def admin41(superset41) -> SupersetAdmin:
    return SupersetAdmin(superset41)


def _migrate(api, source: str, target: str, dashboard_id: int) -> dict:
    return api.migrate(source, target, [dashboard_id], timeout=180, overwrite=True)


def test_a_61_dashboard_goes_into_41_without_the_fields_41_does_not_know(
    api, source_admin, admin41
):
    admin41.remove_dashboards_and_databases([SALES], [])
    assert admin41.dashboards_by_title(SALES) == []
    (dashboard,) = source_admin.dashboards_by_title(SALES)

    task = _migrate(api, "source", "target41", dashboard["id"])

    assert task["status"] == "SUCCESS", task
    assert (task["plan"]["target_release"], task["plan"]["release"]) == ("4.1.4", "4.1")
    messages = api.log_messages(task["id"])
    # Adapted before the first import: no refusal, no second attempt.
    assert not any("older Superset" in m or "trying once more" in m for m in messages), messages
    (migrated,) = admin41.dashboards_by_title(SALES)
    assert migrated["uuid"] == dashboard["uuid"]
    assert admin41.dashboard_charts(migrated["id"])  # charts and dataset came along
    assert admin41.dashboard_datasets(migrated["id"])


def test_a_41_target_refuses_a_wrong_password_and_takes_the_right_one(api, source_admin, admin41):
    admin41.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    (dashboard,) = source_admin.dashboards_by_title(SECURE_SALES_TITLE)

    task = _migrate(api, "source", "target41", dashboard["id"])

    assert task["status"] == "AWAITING_INPUT", task
    fields = task["input_request"]["fields"]
    assert [(f["key"], f["type"]) for f in fields] == [(SECURE_ANALYTICS_KEY, "password")]
    resume = f"/api/tasks/{task['id']}/resume"
    wrong = api.post(resume, json={"passwords": {SECURE_ANALYTICS_KEY: "wrong-Pass-41"}})
    assert wrong.status_code == 400, wrong.text
    (message,) = wrong.json()["errors"][f"passwords.{SECURE_ANALYTICS_KEY}"]
    assert "refused" in message  # 4.1 connects on import and refuses it (a bare 500)
    assert admin41.database_by_name(SECURE_ANALYTICS_DB) is None  # 4.1 created nothing

    right = api.post(resume, json={"passwords": {SECURE_ANALYTICS_KEY: SECURE_PASSWORD}})
    assert right.status_code == 202, right.text
    task = api.wait_for_status(task["id"], DONE, timeout=180)
    assert task["status"] == "SUCCESS", task
    assert admin41.dashboards_by_title(SECURE_SALES_TITLE)
    assert admin41.database_connection_ok(SECURE_ANALYTICS_DB)
    # Stored as a password, never shown back (4.1.4 keeps a password written into an
    # imported YAML's URI in clear: /connection and its exports then show it).
    db = admin41.database_by_name(SECURE_ANALYTICS_DB)
    shown = SECURE_PASSWORD in json.dumps(admin41.database_connection(db["id"]))
    assert not shown, "the target shows the stored password back in /connection (in clear)"


def test_a_41_dashboard_goes_into_61(api, superset41, admin41, target_admin):
    seed_source(superset41)  # "Sales Overview", built by seed.py (it strips what 4.1 refuses)
    (dashboard,) = admin41.dashboards_by_title(SALES)
    for existing in target_admin.dashboards_by_title(SALES):
        target_admin.delete_dashboard(existing["id"])

    task = _migrate(api, "target41", "target", dashboard["id"])

    assert task["status"] == "SUCCESS", task
    (migrated,) = target_admin.dashboards_by_title(SALES)
    assert migrated["uuid"] == dashboard["uuid"]
    assert target_admin.dashboard_charts(migrated["id"])
