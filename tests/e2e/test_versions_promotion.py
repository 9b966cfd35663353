"""End to end: promoting between Superset releases (the servers of
tests/e2e/superset_servers.VERSION_SERVERS): the release is known before anything is
written, the bundle is adapted to it up front (one import attempt, each change said),
a metric currency survives 6.1 → 5.0 → 6.1, mapping works on an older target, an
unchanged asset stays unchanged across releases, and a rollback works on one.

Adding a release to a test below is adding it to the list it is parametrized with.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import yaml

from tests.e2e.superset_servers import (
    SECURE_ANALYTICS_DB,
    SECURE_ANALYTICS_KEY,
    SECURE_ANALYTICS_URI,
    SECURE_ANALYTICS_UUID,
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    SECURE_SALES_TITLE,
    VERSION_SERVERS,
    secret_forms,
    superset_action_log_texts,
)
from tests.e2e.test_promotion import (
    DONE,
    SALES,
    TARGET_OWN_URI,
    _actions,
    _changed_on,
    _dashboard_id,
    _datasets_on,
    _outcomes,
    _own_connection,
    _uri,
)
from tests.e2e.test_rollback import _rollback

pytestmark = pytest.mark.e2e

CURRENCY = {"symbol": "USD", "symbolPosition": "prefix"}
THEME = "Migrator Test Theme"
# "Test connection" says the release of each.
RELEASES = {family: servers.source.version for family, servers in VERSION_SERVERS.items()}
# Older targets than the source, for what must hold on them.
MAPPING_TARGETS = ["5.0"]
UNCHANGED_TARGETS = ["5.0", "6.0"]
ROLLBACK_TARGETS = ["6.0"]
# 4.1 keeps a password written into an imported URI in clear; 5.0 masks it.
REPLACE_TARGETS = ["4.1", "5.0"]


def _one_attempt_each(messages: list[str]) -> None:
    """Adapted before the first import: no refusal removed afterwards, no second try."""
    assert not [m for m in messages if "older Superset" in m or "trying once more" in m]


def _sales_dataset(admin) -> dict:
    (dataset,) = admin.dashboard_datasets(_dashboard_id(admin, SALES))
    return admin.get_json(f"/api/v1/dataset/{dataset['id']}")["result"]


def _currencies(admin) -> dict[str, object]:
    """{metric name: currency as an object} of Sales Overview's dataset."""
    found = {}
    for metric in _sales_dataset(admin)["metrics"]:
        value = metric.get("currency")
        found[metric["metric_name"]] = json.loads(value) if isinstance(value, str) else value
    return found


def _set_currency(admin, currency: dict | None) -> str:
    """Give the first metric of Sales Overview's dataset ``currency``; its name."""
    dataset = _sales_dataset(admin)
    metrics = [
        {
            "id": m["id"],
            "metric_name": m["metric_name"],
            "expression": m["expression"],
            "verbose_name": m.get("verbose_name"),
            **({"currency": currency} if i == 0 else {}),
        }
        for i, m in enumerate(dataset["metrics"])
    ]
    answer = admin.request("PUT", f"/api/v1/dataset/{dataset['id']}", json={"metrics": metrics})
    assert answer.status_code == 200, answer.text
    return metrics[0]["metric_name"]


@pytest.mark.parametrize("family", sorted(RELEASES))
def test_test_connection_says_the_release_and_the_environment_keeps_it(api, version_env, family):
    env = version_env(family)
    (row,) = [e for e in api.get("/api/environments").json() if e["name"] == env.name]

    tested = api.post(f"/api/environments/{row['id']}/test").json()

    assert tested["ok"], tested
    assert tested["version"] == RELEASES[family]
    assert f"Superset {RELEASES[family]}" in tested["message"]
    (row,) = [e for e in api.get("/api/environments").json() if e["name"] == env.name]
    assert row["superset_version"] == RELEASES[family]


def test_a_metric_currency_goes_61_to_50_and_back_to_61(
    api, source_admin, target_admin, version_env
):
    older = version_env("5.0")
    _set_currency(older.admin, None)  # a run before may have left it there
    name = _set_currency(source_admin, CURRENCY)
    try:
        down = api.migrate(
            "source", older.name, [_dashboard_id(source_admin, SALES)], overwrite=True
        )
        assert down["status"] == "SUCCESS", down["error"]
        assert down["plan"]["target_release"] == "5.0.0"
        assert any("metric currencies" in line for line in down["plan"]["adapted"]), down["plan"]
        assert any("metric currencies" in line for line in down["report"]["adapted"])
        _one_attempt_each(api.log_messages(down["id"]))
        assert _currencies(older.admin)[name] == CURRENCY

        for existing in target_admin.dashboards_by_title(SALES):
            target_admin.delete_dashboard(existing["id"])
        up = api.migrate(older.name, "target", [_dashboard_id(older.admin, SALES)], overwrite=True)
        assert up["status"] == "SUCCESS", up["error"]
        _one_attempt_each(api.log_messages(up["id"]))
        assert _currencies(target_admin)[name] == CURRENCY
    finally:
        _set_currency(source_admin, None)


@pytest.mark.parametrize("family", UNCHANGED_TARGETS)
def test_what_is_the_same_on_an_older_target_is_not_rewritten(
    api, source_admin, version_env, family
):
    """6.1 writes keys the older release does not keep: its copy is still the same."""
    older = version_env(family, "target")
    dashboard_id = _dashboard_id(source_admin, SALES)
    first = api.migrate("source", older.name, [dashboard_id], overwrite=True)
    assert first["status"] == "SUCCESS", first["error"]
    before = _changed_on(older.admin)

    again = api.migrate("source", older.name, [dashboard_id], overwrite=True)

    assert again["status"] == "SUCCESS", again["error"]
    actions = _actions(again["plan"])
    assert actions[("dashboards", SALES)] == "unchanged", again["plan"]
    assert set(actions.values()) <= {"unchanged", "map"}, again["plan"]
    assert set(_outcomes(again).values()) == {"unchanged", "mapped"}, again["report"]
    assert _changed_on(older.admin) == before  # nothing was imported again


@pytest.mark.parametrize("family", MAPPING_TARGETS)
def test_an_older_targets_own_connection_is_used_and_never_rewritten(
    api, source_admin, version_env, family
):
    older = version_env(family, "target")
    older.admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    own = _own_connection(older.admin, SECURE_ANALYTICS_DB)
    try:
        task = api.migrate("source", older.name, [_dashboard_id(source_admin, SECURE_SALES_TITLE)])

        assert task["status"] == "SUCCESS", task  # no password asked: nothing was created
        assert _actions(task["plan"])[("databases", SECURE_ANALYTICS_DB)] == "map"
        assert _outcomes(task)[("databases", SECURE_ANALYTICS_DB)] == "mapped"
        after = older.admin.database_by_name(SECURE_ANALYTICS_DB)
        assert after["uuid"] == own["uuid"]
        assert _uri(older.admin, SECURE_ANALYTICS_DB) == TARGET_OWN_URI
        assert _datasets_on(older.admin)["secure_sales"] == SECURE_ANALYTICS_DB
        assert task["report"]["warnings"] == []
    finally:
        _remove_secure_assets(older.admin)


@pytest.mark.parametrize("family", ROLLBACK_TARGETS)
def test_a_rollback_on_an_older_target_puts_back_what_it_replaced(
    api, source_admin, version_env, family
):
    older = version_env(family, "target")
    dashboard_id = _dashboard_id(source_admin, SALES)
    (chart,) = source_admin.dashboard_charts(dashboard_id)[:1]
    first = api.migrate("source", older.name, [dashboard_id], overwrite=True)
    assert first["status"] == "SUCCESS", first["error"]
    (on_target,) = older.admin.dashboards_by_title(SALES)
    names = {c["slice_name"] for c in older.admin.dashboard_charts(on_target["id"])}
    assert chart["slice_name"] in names
    renamed = f"{chart['slice_name']} (renamed)"
    source_admin.request("PUT", f"/api/v1/chart/{chart['id']}", json={"slice_name": renamed})
    try:
        second = api.migrate("source", older.name, [dashboard_id], overwrite=True)
        assert second["status"] == "SUCCESS", second["error"]
        assert renamed in {c["slice_name"] for c in older.admin.dashboard_charts(on_target["id"])}

        undone = _rollback(api, second["id"], timeout=240)

        assert undone["status"] == "SUCCESS", undone["error"]
        assert _outcomes(undone)[("charts", renamed)] == "restored"
        after = {c["slice_name"] for c in older.admin.dashboard_charts(on_target["id"])}
        assert after == names
    finally:
        source_admin.request(
            "PUT", f"/api/v1/chart/{chart['id']}", json={"slice_name": chart["slice_name"]}
        )


def test_a_theme_travels_to_60_and_going_to_50_is_said_before_anything_is_written(
    api, source_admin, version_env
):
    made = source_admin.post(
        "/api/v1/theme/",
        json={"theme_name": THEME, "json_data": json.dumps({"token": {"colorPrimary": "#2f6f4e"}})},
    )
    assert made.status_code == 201, made.text
    dashboard_id = _dashboard_id(source_admin, SALES)
    put = source_admin.request(
        "PUT", f"/api/v1/dashboard/{dashboard_id}", json={"theme_id": made.json()["id"]}
    )
    assert put.status_code == 200, put.text
    try:
        newer = version_env("6.0", "target")
        task = api.migrate("source", newer.name, [dashboard_id], overwrite=True)
        assert task["status"] == "SUCCESS", task["error"]
        (on_target,) = newer.admin.dashboards_by_title(SALES)
        detail = newer.admin.get_json(f"/api/v1/dashboard/{on_target['id']}")["result"]
        assert (detail.get("theme") or {}).get("theme_name") == THEME, detail.get("theme")

        older = version_env("5.0", "target")
        for existing in older.admin.dashboards_by_title(SALES):  # so that it is written
            older.admin.delete_dashboard(existing["id"])
        task = api.migrate("source", older.name, [dashboard_id], overwrite=True)
        assert task["status"] == "SUCCESS", task["error"]
        (line,) = [x for x in task["plan"]["adapted"] if "theme_uuid" in x]
        assert "5.0 has no themes: the dashboard will use the default theme" in line
        assert line in task["report"]["adapted"]
        _one_attempt_each(api.log_messages(task["id"]))
    finally:
        source_admin.request("PUT", f"/api/v1/dashboard/{dashboard_id}", json={"theme_id": None})
        source_admin.delete(f"/api/v1/theme/{made.json()['id']}")


def _import_connection(admin, uri: str, password: str | None = None) -> dict:
    """The source's connection (its uuid and name) put on a target by hand, with ``uri``
    and a password inside its YAML (never in a form field: Superset logs those)."""
    document = {
        "database_name": SECURE_ANALYTICS_DB,
        "sqlalchemy_uri": uri,
        "uuid": SECURE_ANALYTICS_UUID,
        "version": "1.0.0",
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_csv_upload": False,
        "extra": {},
        **({"password": password} if password else {}),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "c/metadata.yaml",
            "version: 1.0.0\ntype: Database\ntimestamp: '2024-01-01T00:00:00+00:00'\n",
        )
        archive.writestr("c/databases/secure_analytics.yaml", yaml.safe_dump(document))
    answer = admin.post(
        "/api/v1/database/import/",
        files={"formData": ("c.zip", buffer.getvalue(), "application/zip")},
        data={"overwrite": "false"},
    )
    assert answer.status_code == 200, answer.text
    return admin.database_by_name(SECURE_ANALYTICS_DB)


@pytest.mark.parametrize("before", ["their own", "stale, same uuid", "same"])
@pytest.mark.parametrize("family", REPLACE_TARGETS)
def test_replacing_a_connection_on_an_older_target_never_stores_the_password_in_clear(
    api, source_admin, version_env, family, before
):
    """Replace (the password typed into the app) on 4.1 and 5.0: the target's connection
    ends with the source's URI and uuid, its connection test passes with the stored
    password, and neither /connection, an export nor Superset's action log shows it.
    Before: the target's own connection of that name (no password, another uuid), the
    source's uuid on another URI, or the source's connection with the right password
    already stored (4.1 took a password written into the URI and kept it in clear)."""
    older = version_env(family, "target")
    older.admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    if before == "their own":
        own = _own_connection(older.admin, SECURE_ANALYTICS_DB)
    elif before == "stale, same uuid":
        own = _import_connection(older.admin, TARGET_OWN_URI)
    else:
        own = _import_connection(older.admin, SECURE_ANALYTICS_URI, SECURE_PASSWORD)
    logged_before = len(superset_action_log_texts(older.name))
    try:
        asked = api.migrate(
            "source",
            older.name,
            [_dashboard_id(source_admin, SECURE_SALES_TITLE)],
            databases={SECURE_ANALYTICS_DB: {"action": "replace"}},
        )
        assert asked["status"] == "AWAITING_INPUT", asked
        (field,) = asked["input_request"]["fields"]
        assert (field["key"], field["type"]) == (SECURE_ANALYTICS_KEY, "password")
        resumed = api.post(
            f"/api/tasks/{asked['id']}/resume",
            json={"passwords": {SECURE_ANALYTICS_KEY: SECURE_PASSWORD}},
        )
        assert resumed.status_code == 202, resumed.text
        task = api.wait_for_status(asked["id"], DONE, timeout=240)

        assert task["status"] == "SUCCESS", task["error"]
        assert _outcomes(task)[("databases", SECURE_ANALYTICS_DB)] == "replaced"
        replaced = older.admin.database_by_name(SECURE_ANALYTICS_DB)
        assert (replaced["id"], replaced["uuid"]) == (own["id"], SECURE_ANALYTICS_UUID)
        connection = older.admin.database_connection(replaced["id"])
        assert connection["sqlalchemy_uri"] == SECURE_ANALYTICS_URI  # masked
        exported = older.admin.get(f"/api/v1/database/export/?q=!({replaced['id']})")
        assert exported.status_code == 200, exported.text[:200]
        with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
            files = [archive.read(n).decode() for n in archive.namelist()]
        shown = [
            json.dumps(connection),
            *files,
            *superset_action_log_texts(older.name)[logged_before:],
        ]
        forms = secret_forms(SECURE_PASSWORD).values()
        assert not [text for text in shown if any(form in text for form in forms)]
        # The new password was taken: none worked for the source's URI before ("their
        # own", "stale"), and the test sends the mask, so Superset uses what it stored.
        assert older.admin.database_connection_ok(SECURE_ANALYTICS_DB)
        assert _datasets_on(older.admin)["secure_sales"] == SECURE_ANALYTICS_DB
    finally:
        _remove_secure_assets(older.admin)


def _remove_secure_assets(admin) -> None:
    """The secure dashboards and their connections off this server (with the datasets and
    charts on those connections); a test that needs them as a source seeds them again."""
    admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
