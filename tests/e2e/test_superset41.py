"""End to end against a real Superset 4.1.4 (an older release teams still run), next to
the 6.1 pair: 6.1 → 4.1 (fields 4.1 does not know are stripped) and 4.1 → 6.1. How a
4.1 target checks a password is in test_versions.py (its 6.1 → 4.1 direction).

The 4.1.4 server ("target41", port 8192) is installed, started, seeded and registered
in the app by the version_env fixture (superset_servers.VERSION_SERVERS["4.1"]; venv
<SUPERSET_HOME>/venv-4.1.4).
"""

from __future__ import annotations

import pytest

from tests.e2e.superset_servers import seed_source

pytestmark = pytest.mark.e2e

SALES = "Sales Overview"


def _migrate(api, source: str, target: str, dashboard_id: int) -> dict:
    return api.migrate(source, target, [dashboard_id], timeout=180, overwrite=True)


def test_a_61_dashboard_goes_into_41_without_the_fields_41_does_not_know(
    api, source_admin, version_env
):
    old = version_env("4.1")
    old.admin.remove_dashboards_and_databases([SALES], [])
    (dashboard,) = source_admin.dashboards_by_title(SALES)

    task = _migrate(api, "source", old.name, dashboard["id"])

    assert task["status"] == "SUCCESS", task
    assert (task["plan"]["target_release"], task["plan"]["release"]) == ("4.1.4", "4.1")
    messages = api.log_messages(task["id"])
    # Adapted before the first import: no refusal, no second attempt.
    assert not any("older Superset" in m or "trying once more" in m for m in messages), messages
    (migrated,) = old.admin.dashboards_by_title(SALES)
    assert migrated["uuid"] == dashboard["uuid"]
    assert old.admin.dashboard_charts(migrated["id"])  # charts and dataset came along
    assert old.admin.dashboard_datasets(migrated["id"])


def test_a_41_dashboard_goes_into_61(api, version_env, target_admin):
    old = version_env("4.1")
    if not old.admin.dashboards_by_title(SALES):  # removed by a test before
        seed_source(old.url)  # "Sales Overview", built by seed.py (it strips what 4.1 refuses)
    (dashboard,) = old.admin.dashboards_by_title(SALES)
    for existing in target_admin.dashboards_by_title(SALES):
        target_admin.delete_dashboard(existing["id"])

    task = _migrate(api, old.name, "target", dashboard["id"])

    assert task["status"] == "SUCCESS", task
    (migrated,) = target_admin.dashboards_by_title(SALES)
    assert migrated["uuid"] == dashboard["uuid"]
    assert target_admin.dashboard_charts(migrated["id"])
