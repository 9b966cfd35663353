"""End to end: promoting dashboards the way dev → prod needs, against real Supersets.

The plan against the target, connections mapped instead of rewritten, overwrite
that really updates charts and datasets, slug conflicts asked about, and a report
checked against the target afterwards.
"""

from __future__ import annotations

import pytest

from tests.e2e.superset_servers import (
    SECURE_ANALYTICS_DB,
    SECURE_ANALYTICS_KEY,
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    SECURE_SALES_TITLE,
)

pytestmark = pytest.mark.e2e

SALES = "Sales Overview"
SALES_SLUG = "sales-overview"
SALES_DB = "mig_public"
# The target's own database behind its own connections (another database than the
# source's: the same PostgreSQL here, but what matters is the URI Superset stores).
TARGET_OWN_URI = "postgresql://mig_reader@127.0.0.1:5432/postgres"
DONE = {"SUCCESS", "FAILED", "AWAITING_INPUT"}


def _dashboard_id(admin, title: str) -> int:
    (dashboard,) = admin.dashboards_by_title(title)
    return dashboard["id"]


def _body(source_admin, title: str = SALES, **extra) -> dict:
    return {
        "source": "source",
        "target": "target",
        "dashboards": [_dashboard_id(source_admin, title)],
        **extra,
    }


def _run(api, body: dict) -> dict:
    answer = api.post("/api/migrations", json=body)
    assert answer.status_code == 201, answer.text
    return api.wait_for_status(answer.json()["id"], DONE)


def _task(api, task_id: int) -> dict:
    return api.get(f"/api/tasks/{task_id}").json()


def _outcomes(task: dict) -> dict[tuple[str, str], str]:
    return {(a["type"], a["name"]): a["outcome"] for a in task["report"]["assets"]}


def _actions(plan: dict) -> dict[tuple[str, str], str]:
    return {
        (kind, item["name"]): item["action"]
        for kind in ("databases", "datasets", "charts", "dashboards")
        for item in plan[kind]
    }


def _own_connection(target_admin, name: str, uri: str = TARGET_OWN_URI) -> dict:
    answer = target_admin.post(
        "/api/v1/database/", json={"database_name": name, "sqlalchemy_uri": uri}
    )
    assert answer.status_code == 201, answer.text
    return target_admin.database_by_name(name)


def _uri(target_admin, name: str) -> str:
    return target_admin.database_connection(target_admin.database_by_name(name)["id"])[
        "sqlalchemy_uri"
    ]


def _datasets_on(target_admin) -> dict[str, str]:
    rows = target_admin.get_json(
        "/api/v1/dataset/?q=(columns:!(table_name,database.database_name),page_size:100)"
    )["result"]
    return {r["table_name"]: r["database"]["database_name"] for r in rows}


@pytest.fixture
def empty_target(target_admin):
    target_admin.delete_everything()
    return target_admin


def test_the_targets_own_connection_is_used_and_never_rewritten(
    api, source_admin, target_admin, superset
):
    target_admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    own = _own_connection(target_admin, SECURE_ANALYTICS_DB)

    task = _run(api, _body(source_admin, SECURE_SALES_TITLE))

    assert task["status"] == "SUCCESS", task  # no password asked: nothing was created
    after = target_admin.database_by_name(SECURE_ANALYTICS_DB)
    assert after["uuid"] == own["uuid"]
    assert _uri(target_admin, SECURE_ANALYTICS_DB) == TARGET_OWN_URI
    assert _datasets_on(target_admin)["secure_sales"] == SECURE_ANALYTICS_DB
    assert _actions(task["plan"])[("databases", SECURE_ANALYTICS_DB)] == "map"
    assert _outcomes(task)[("databases", SECURE_ANALYTICS_DB)] == "mapped"
    assert task["report"]["warnings"] == []


def test_overwrite_updates_charts_datasets_and_dashboards_and_skips_what_is_identical(
    api, source_admin, empty_target
):
    dashboard_id = _dashboard_id(source_admin, SALES)
    chart = source_admin.dashboard_charts(dashboard_id)[0]
    dataset = source_admin.dashboard_datasets(dashboard_id)[0]
    first = _run(api, _body(source_admin, overwrite=True))
    assert first["status"] == "SUCCESS", first["error"]
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
        assert [c["slice_name"] for c in empty_target.charts()] == ["Renamed"]
        assert [d["dashboard_title"] for d in empty_target.dashboards()] == ["Sales v2"]
        descriptions = empty_target.get_json("/api/v1/dataset/?q=(columns:!(description))")
        assert [r["description"] for r in descriptions["result"]] == ["Changed"]
        assert {k: v for k, v in _outcomes(second).items() if k[0] != "databases"} == {
            ("dashboards", "Sales v2"): "updated",
            ("charts", "Renamed"): "updated",
            ("datasets", "public.sales"): "updated",
        }

        before = _changed_on(empty_target)
        third = _run(api, _body(source_admin, "Sales v2", overwrite=True))
        assert third["status"] == "SUCCESS", third["error"]
        assert set(_outcomes(third).values()) == {"unchanged", "mapped"}
        assert _changed_on(empty_target) == before  # nothing was imported again
        log = api.get(f"/api/tasks/{third['id']}/logs").json()["entries"]
        assert any("Nothing to write" in e["message"] for e in log)
    finally:
        source_admin.request(
            "PUT", f"/api/v1/chart/{chart['id']}", json={"slice_name": chart["slice_name"]}
        )
        source_admin.request("PUT", f"/api/v1/dataset/{dataset['id']}", json={"description": ""})
        source_admin.request(
            "PUT", f"/api/v1/dashboard/{dashboard_id}", json={"dashboard_title": SALES}
        )


def _changed_on(admin) -> list:
    return [
        sorted(
            r["changed_on_utc"]
            for r in admin.get_json(f"/api/v1/{resource}/?q=(columns:!(changed_on_utc))")["result"]
        )
        for resource in ("dashboard", "chart", "dataset")
    ]


@pytest.fixture
def slug_taken(empty_target):
    answer = empty_target.post(
        "/api/v1/dashboard/", json={"dashboard_title": "Target's own", "slug": SALES_SLUG}
    )
    assert answer.status_code == 201, answer.text
    yield empty_target.dashboards_by_title("Target's own")[0]
    # The other tests' Sales Overview needs its slug back.
    for dashboard in empty_target.dashboards():
        if dashboard["slug"] and dashboard["slug"].startswith(SALES_SLUG):
            empty_target.delete_dashboard(dashboard["id"])


def test_a_script_must_answer_a_slug_conflict(api, source_admin, slug_taken):
    answer = api.post("/api/migrations", json=_body(source_admin))
    assert answer.status_code == 400
    (message,) = answer.json()["errors"]["conflicts"]
    assert SALES in message and SALES_SLUG in message and "Target's own" in message


@pytest.mark.parametrize("choice", ["rename", "take_over", "skip"])
def test_a_slug_conflict_is_asked_and_each_answer_does_what_it_says(
    api, source_admin, target_admin, slug_taken, choice, app_server
):
    # As a person starts it (the page): the task asks instead of taking over.
    page = app_server.session()
    page.get("/")
    envs = {e["name"]: e["id"] for e in api.get("/api/environments").json()}
    page.post(
        "/migrations/start/",
        data={
            "source": envs["source"],
            "target": envs["target"],
            "dashboards": _dashboard_id(source_admin, SALES),
            "csrfmiddlewaretoken": page.cookies["csrftoken"],
        },
    )
    task_id = api.get("/api/tasks?limit=1").json()["items"][0]["id"]
    asked = api.wait_for_status(task_id, DONE)
    assert asked["status"] == "AWAITING_INPUT", asked
    (field,) = asked["input_request"]["fields"]
    assert (field["type"], field["dashboard"], field["slug"]) == ("conflict", SALES, SALES_SLUG)
    assert field["target_dashboard"]["name"] == "Target's own"
    resumed = api.post(f"/api/tasks/{task_id}/resume", json={"conflicts": {field["key"]: choice}})
    assert resumed.status_code == 202, resumed.text
    task = api.wait_for_status(task_id, DONE)
    assert task["status"] == "SUCCESS", task["error"]

    target = {d["uuid"]: d for d in target_admin.dashboards()}
    theirs = target.get(slug_taken["uuid"])
    sales_uuid = source_admin.dashboards_by_title(SALES)[0]["uuid"]
    if choice == "rename":
        assert theirs["dashboard_title"] == "Target's own" and theirs["slug"] == SALES_SLUG
        # Its own uuid's start: the same slug on every later run.
        assert target[sales_uuid]["slug"] == f"{SALES_SLUG}-{sales_uuid[:8]}"
    elif choice == "skip":
        assert theirs["dashboard_title"] == "Target's own"
        assert sales_uuid not in target
    else:
        (taken,) = target.values()
        assert taken["id"] == slug_taken["id"] and taken["uuid"] == sales_uuid
        assert taken["dashboard_title"] == SALES


def test_mapping_to_another_connection_is_remembered_for_the_next_migration(
    api, source_admin, empty_target
):
    _own_connection(empty_target, "prod_warehouse")
    body = _body(source_admin, databases={SALES_DB: {"action": "map", "target": "prod_warehouse"}})
    task = _run(api, body)
    assert task["status"] == "SUCCESS", task["error"]
    assert _datasets_on(empty_target) == {"sales": "prod_warehouse"}
    assert [d["database_name"] for d in empty_target.databases()] == ["prod_warehouse"]

    envs = {e["name"]: e["id"] for e in api.get("/api/environments").json()}
    saved = api.get(f"/api/environments/{envs['source']}/mappings/{envs['target']}").json()
    assert saved["mappings"][SALES_DB] == {"action": "map", "target": "prod_warehouse"}
    plan = api.post("/api/migrations/plan", json=_body(source_admin)).json()["plan"]
    (database,) = plan["databases"]
    assert database["action"] == "map" and database["target"]["name"] == "prod_warehouse"
    assert "saved" in database["reason"]
    # Forget it again for the other tests.
    api.put(f"/api/environments/{envs['source']}/mappings/{envs['target']}", json={"mappings": {}})


def test_create_and_replace_are_explicit(api, source_admin, empty_target):
    own = _own_connection(empty_target, SALES_DB)
    refused = api.post(
        "/api/migrations/plan", json=_body(source_admin, databases={SALES_DB: {"action": "create"}})
    )
    assert refused.status_code == 400
    assert "own connection named" in str(refused.json()["errors"])

    task = _run(api, _body(source_admin, databases={SALES_DB: {"action": "replace"}}))
    assert task["status"] == "SUCCESS", task["error"]
    (replaced,) = empty_target.databases()
    assert replaced["id"] == own["id"]
    assert _uri(empty_target, SALES_DB) != TARGET_OWN_URI  # the source's URI now
    assert _outcomes(task)[("databases", SALES_DB)] == "replaced"

    empty_target.delete_everything()
    task = _run(api, _body(source_admin, databases={SALES_DB: {"action": "create"}}))
    assert task["status"] == "SUCCESS", task["error"]
    assert _outcomes(task)[("databases", SALES_DB)] == "created"


def test_the_plan_changes_nothing_anywhere(api, source_admin, target_admin):
    before = (_inventory(source_admin), _inventory(target_admin), api.get("/api/tasks").json())
    answer = api.post("/api/migrations/plan", json=_body(source_admin, overwrite=True))
    assert answer.status_code == 200, answer.text
    plan = answer.json()["plan"]
    assert {kind for kind in ("databases", "datasets", "charts", "dashboards") if plan[kind]} == {
        "databases",
        "datasets",
        "charts",
        "dashboards",
    }
    assert (
        _inventory(source_admin),
        _inventory(target_admin),
        api.get("/api/tasks").json(),
    ) == before


def _inventory(admin) -> list:
    return [
        admin.get_json(f"/api/v1/{resource}/?q=(columns:!(id,uuid,changed_on_utc),page_size:100)")[
            "result"
        ]
        for resource in ("dashboard", "chart", "dataset", "database")
    ]


def test_replacing_a_connection_with_a_wrong_password_leaves_it_as_it_was(
    api, source_admin, target_admin
):
    target_admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    own = _own_connection(target_admin, SECURE_ANALYTICS_DB)
    body = _body(
        source_admin, SECURE_SALES_TITLE, databases={SECURE_ANALYTICS_DB: {"action": "replace"}}
    )
    asked = _run(api, body)
    assert asked["status"] == "AWAITING_INPUT", asked
    (field,) = asked["input_request"]["fields"]
    assert (field["key"], field["type"]) == (SECURE_ANALYTICS_KEY, "password")

    wrong = api.post(
        f"/api/tasks/{asked['id']}/resume",
        json={"passwords": {SECURE_ANALYTICS_KEY: "not-the-password-1"}},
    )
    assert wrong.status_code == 400, wrong.text
    # Tested on a copy: the target's own connection is as it was, and no copy is left.
    assert _uri(target_admin, SECURE_ANALYTICS_DB) == TARGET_OWN_URI
    assert [d["database_name"] for d in target_admin.databases()].count(SECURE_ANALYTICS_DB) == 1
    assert not [d for d in target_admin.databases() if "checking" in d["database_name"]]

    right = api.post(
        f"/api/tasks/{asked['id']}/resume",
        json={"passwords": {SECURE_ANALYTICS_KEY: SECURE_PASSWORD}},
    )
    assert right.status_code == 202, right.text
    task = api.wait_for_status(asked["id"], DONE)
    assert task["status"] == "SUCCESS", task["error"]
    replaced = target_admin.database_by_name(SECURE_ANALYTICS_DB)
    assert replaced["id"] == own["id"]
    assert _uri(target_admin, SECURE_ANALYTICS_DB) != TARGET_OWN_URI
    assert target_admin.database_connection_ok(SECURE_ANALYTICS_DB)
    assert _outcomes(task)[("databases", SECURE_ANALYTICS_DB)] == "replaced"
