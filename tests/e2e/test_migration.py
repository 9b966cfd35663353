"""End to end: the app, served as `make run` serves it, against two real Supersets."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

TITLE = "Sales Overview"


def _sales_id(source_admin) -> int:
    (dashboard,) = source_admin.dashboards_by_title(TITLE)
    return dashboard["id"]


def _env(api, name: str, url: str, password: str = "admin") -> int:
    """The id of environment ``name``, registering it first if needed."""
    envs = {e["name"]: e["id"] for e in api.get("/api/environments").json()}
    if name not in envs:
        answer = api.post(
            "/api/environments",
            json={"name": name, "url": url, "username": "admin", "password": password},
        )
        assert answer.status_code == 201, answer.text
        envs[name] = answer.json()["id"]
    return envs[name]


def test_it_migrates_a_dashboard_to_the_target(api, source_admin, target_admin):
    for existing in target_admin.dashboards_by_title(TITLE):
        target_admin.delete_dashboard(existing["id"])
    answer = api.post(
        "/api/migrations",
        json={
            "source": "source",
            "target": "target",
            "dashboards": [_sales_id(source_admin)],
            "overwrite": False,
        },
    )
    assert answer.status_code == 201, answer.text
    task = api.wait_for_status(answer.json()["id"], {"SUCCESS", "FAILED", "AWAITING_INPUT"})
    assert task["status"] == "SUCCESS", task["error"]
    assert task["dashboards"][0]["title"] == TITLE  # filled in from the source
    (migrated,) = target_admin.dashboards_by_title(TITLE)
    source_uuid = source_admin.dashboards_by_title(TITLE)[0]["uuid"]
    assert migrated["uuid"] == source_uuid
    assert target_admin.dashboard_charts(migrated["id"])  # charts came along


def test_without_overwrite_what_differs_on_the_target_is_kept(api, source_admin, target_admin):
    body = {
        "source": "source",
        "target": "target",
        "dashboards": [_sales_id(source_admin)],
        "overwrite": True,
    }
    done = {"SUCCESS", "FAILED", "AWAITING_INPUT"}
    first = api.wait_for_status(api.post("/api/migrations", json=body).json()["id"], done)
    assert first["status"] == "SUCCESS", first["error"]
    (ours,) = target_admin.dashboards_by_title(TITLE)
    edited = target_admin.request(
        "PUT", f"/api/v1/dashboard/{ours['id']}", json={"dashboard_title": "Edited on target"}
    )
    assert edited.status_code == 200, edited.text
    body["overwrite"] = False
    second = api.wait_for_status(api.post("/api/migrations", json=body).json()["id"], done)
    assert second["status"] == "SUCCESS", second["error"]  # nothing to ask: it is kept
    outcomes = {a["name"]: a["outcome"] for a in second["report"]["assets"]}
    assert outcomes[TITLE] == "kept"
    assert target_admin.dashboards_by_title("Edited on target")  # left as it was


def test_a_wrong_target_password_fails_with_a_clear_reason(api, superset, source_admin, app_server):
    _env(api, "target-wrong-password", superset["target"], "not-the-password")
    created = api.post(
        "/api/migrations",
        json={
            "source": "source",
            "target": "target-wrong-password",
            "dashboards": [_sales_id(source_admin)],
        },
    ).json()
    task = api.wait_for_status(created["id"], {"SUCCESS", "FAILED", "AWAITING_INPUT"})
    assert task["status"] == "FAILED"
    assert "target-wrong-password" in task["error"]
    assert "username or password" in task["error"].lower()
    page = api.get(f"/tasks/{created['id']}/").text
    assert "Reading the target failed" in page and "level-error" in page
    assert "not-the-password" not in page
    assert "not-the-password" not in app_server.log()


def test_an_unreachable_target_fails_with_a_clear_reason(api, source_admin):
    _env(api, "nowhere", "http://127.0.0.1:9")
    created = api.post(
        "/api/migrations",
        json={"source": "source", "target": "nowhere", "dashboards": [_sales_id(source_admin)]},
    ).json()
    task = api.wait_for_status(created["id"], {"SUCCESS", "FAILED", "AWAITING_INPUT"})
    assert task["status"] == "FAILED"
    assert "nowhere" in task["error"] and "127.0.0.1:9" in task["error"]


def test_an_unknown_dashboard_fails_naming_it(api):
    created = api.post(
        "/api/migrations", json={"source": "source", "target": "target", "dashboards": [987654]}
    ).json()
    task = api.wait_for_status(created["id"], {"SUCCESS", "FAILED", "AWAITING_INPUT"})
    assert task["status"] == "FAILED"
    assert "987654" in task["error"]


def test_it_lists_all_dashboards_beyond_supersets_page_cap(api):
    envs = {e["name"]: e["id"] for e in api.get("/api/environments").json()}
    everything = api.get(f"/api/environments/{envs['source']}/dashboards").json()
    assert len(everything) >= 106
    assert len({d["id"] for d in everything}) == len(everything)
    found = api.get(f"/api/environments/{envs['source']}/dashboards?search=sales-over").json()
    assert [d["title"] for d in found] == [TITLE]  # matched on the slug, case-insensitively


def test_the_connection_test_says_what_is_wrong(api, app_server, superset):
    cases = {
        "source": (superset["source"], "admin", "ok"),
        "target-wrong-password": (superset["target"], "not-the-password", "credentials"),
        "nowhere": ("http://127.0.0.1:9", "admin", "unreachable"),
        "not-superset": (app_server.url, "admin", "not_superset"),
    }
    for name, (url, password, reason) in cases.items():
        result = api.post(f"/api/environments/{_env(api, name, url, password)}/test").json()
        assert result["reason"] == reason, (name, result)
        assert result["ok"] is (reason == "ok")
