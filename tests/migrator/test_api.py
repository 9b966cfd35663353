from __future__ import annotations

import pytest
from django_tasks_db.models import DBTaskResult

from migrator.models import Environment
from tasks_app.models import Task

pytestmark = pytest.mark.django_db


def test_environments_are_listed_without_passwords(owner_client, envs):
    body = owner_client.get("/api/environments").json()
    assert [e["name"] for e in body] == ["dev", "prod"]
    assert all(
        set(e) == {"id", "name", "url", "username", "provider", "superset_version"} for e in body
    )


def test_it_registers_an_environment(manager_client):
    answer = manager_client.post(
        "/api/environments",
        {
            "name": "stage",
            "url": "https://stage.example/",
            "username": "svc",
            "password": "pw",
            "provider": "ldap",
        },
        content_type="application/json",
    )
    assert answer.status_code == 201
    assert answer.json()["url"] == "https://stage.example"
    assert "password" not in answer.json()
    assert Environment.objects.get(name="stage").password == "pw"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "url": "ftp://x", "username": "u", "password": "p"}, "url"),
        (
            {"name": "x", "url": "http://x", "username": "u", "password": "p", "provider": "oauth"},
            "provider",
        ),
        ({"name": "dev", "url": "http://x", "username": "u", "password": "p"}, "name"),
        ({"name": "x", "url": "http://x", "username": "u"}, "password"),
        ({"name": "x" * 101, "url": "http://x", "username": "u", "password": "p"}, "name"),
    ],
)
def test_bad_environments_get_400_naming_the_field(manager_client, envs, body, field):
    answer = manager_client.post("/api/environments", body, content_type="application/json")
    assert answer.status_code == 400
    assert field in answer.json()["errors"]


def test_it_starts_a_migration_and_returns_at_once(owner_client, owner, envs):
    answer = owner_client.post(
        "/api/migrations",
        {"source": "dev", "target": envs[1].pk, "dashboards": [3, 4], "overwrite": True},
        content_type="application/json",
    )
    assert answer.status_code == 201
    task = Task.objects.get(pk=answer.json()["id"])
    assert (task.status, task.owner, task.kind) == ("PENDING", owner, "migration")
    assert task.params["source"] == {"id": envs[0].pk, "name": "dev", "url": "http://dev.example"}
    assert task.params["dashboards"] == [{"id": 3, "title": ""}, {"id": 4, "title": ""}]
    assert task.params["overwrite"] is True
    assert DBTaskResult.objects.count() == 1
    assert answer.json()["status"] == "PENDING"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "dev", "target": "dev", "dashboards": [1]}, "target"),
        ({"source": "nope", "target": "prod", "dashboards": [1]}, "source"),
        ({"source": "dev", "target": "prod", "dashboards": []}, "dashboards"),
        ({"source": "dev", "target": "prod", "dashboards": ["x"]}, "dashboards.0"),
        ({"source": "dev", "target": "prod", "dashboards": [-1]}, "dashboards"),
        ({"source": "dev", "dashboards": [1]}, "target"),
        ({"source": "de\x00v", "target": "prod", "dashboards": [1]}, "source"),
    ],
)
def test_bad_migrations_get_400_naming_the_field(owner_client, envs, body, field):
    answer = owner_client.post("/api/migrations", body, content_type="application/json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["errors"]
    assert not Task.objects.exists()


def test_malformed_json_is_a_400(owner_client):
    answer = owner_client.post("/api/migrations", "{nope", content_type="application/json")
    assert answer.status_code == 400


def test_unknown_environment_ids_are_404(owner_client):
    assert owner_client.get("/api/environments/999/dashboards").status_code == 404
    assert owner_client.post("/api/environments/999/test").status_code == 404


def test_the_openapi_document_is_served(owner_client):
    doc = owner_client.get("/api/openapi.json").json()
    assert {"/api/tasks", "/api/tasks/{task_id}", "/api/migrations", "/api/environments"} <= set(
        doc["paths"]
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://superset:8088",
        "https://bi.example.com/superset",
        "http://10.1.2.3:8088",
        "http://[::1]:8088",
    ],
)
def test_intranet_and_ip_urls_are_accepted(manager_client, url):
    answer = manager_client.post(
        "/api/environments",
        {"name": url[-12:], "url": url, "username": "u", "password": "p"},
        content_type="application/json",
    )
    assert answer.status_code == 201, answer.content


@pytest.mark.parametrize(
    "url",
    [
        "superset:8088",
        "http://",
        "http://u:p@host",
        "http://host?x=1",
        "http://host:99999",
        "http://ho st",
    ],
)
def test_bad_urls_are_refused(manager_client, url):
    answer = manager_client.post(
        "/api/environments",
        {"name": "x", "url": url, "username": "u", "password": "p"},
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert "url" in answer.json()["errors"]


def test_saved_mappings_are_read_and_replaced(owner_client, envs):
    url = "/api/environments/dev/mappings/prod"
    assert owner_client.get(url).json() == {"mappings": {}}
    body = {"mappings": {"analytics": {"action": "map", "target": "prod_analytics"}}}
    answer = owner_client.put(url, body, content_type="application/json")
    assert answer.status_code == 200
    assert owner_client.get(url).json() == {
        "mappings": {"analytics": {"action": "map", "target": "prod_analytics"}}
    }
    refused = owner_client.put(
        url, {"mappings": {"analytics": {"action": "replace"}}}, content_type="application/json"
    )
    assert refused.status_code == 400
    assert owner_client.get("/api/environments/dev/mappings/nope").status_code == 404


def test_a_map_choice_must_name_its_target_connection(owner_client, envs):
    answer = owner_client.post(
        "/api/migrations",
        {
            "source": "dev",
            "target": "prod",
            "dashboards": [1],
            "databases": {"a": {"action": "map"}},
        },
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert "map needs the target connection" in str(answer.json()["errors"])
