from __future__ import annotations

import pytest

from migrator.models import Environment
from tasks_app.models import Task

pytestmark = pytest.mark.django_db


def test_the_migration_page_offers_the_environments(owner_client, envs):
    html = owner_client.get("/").content.decode()
    assert "New migration" in html and "Recent tasks" in html
    assert ">dev</option>" in html and ">prod</option>" in html


def test_without_environments_it_says_what_to_do(manager_client):
    assert "Register one" in manager_client.get("/").content.decode()


def test_starting_from_the_form_creates_a_task(owner_client, envs):
    response = owner_client.post(
        "/migrations/start/",
        {
            "source": envs[0].pk,
            "target": envs[1].pk,
            "dashboards": ["5"],
            "title_5": "Sales",
            "title_6": "Other",
            "overwrite": "on",
        },
    )
    assert response.status_code == 302
    task = Task.objects.get()
    assert task.params["dashboards"] == [{"id": 5, "title": "Sales"}]
    assert task.params["overwrite"] is True


def test_an_htmx_start_answers_with_the_form_and_an_event(owner_client, envs):
    response = owner_client.post(
        "/migrations/start/",
        {"source": envs[0].pk, "target": envs[1].pk, "dashboards": ["5"]},
        HTTP_HX_REQUEST="true",
    )
    task = Task.objects.get()
    assert f"task #{task.pk} started" in response.content.decode()
    assert "task-started" in response["HX-Trigger"]


def test_a_bad_form_shows_its_errors(owner_client, envs):
    response = owner_client.post("/migrations/start/", {"source": envs[0].pk, "target": envs[0].pk})
    html = response.content.decode()
    assert response.status_code == 400
    assert "Pick a target different from the source." in html
    assert "Pick at least one dashboard." in html
    assert not Task.objects.exists()


def test_the_environment_form_never_shows_the_password(manager_client, envs):
    html = manager_client.get(f"/environments/{envs[0].pk}/").content.decode()
    assert "hunter2-secret" not in html
    assert "http://dev.example" in html


def test_editing_without_a_password_keeps_it(manager_client, envs):
    response = manager_client.post(
        f"/environments/{envs[0].pk}/",
        {
            "name": "dev2",
            "url": "http://dev.example",
            "username": "u",
            "provider": "db",
            "verify_tls": "on",
        },
    )
    assert response.status_code == 302
    env = Environment.objects.get(pk=envs[0].pk)
    assert (env.name, env.password) == ("dev2", "hunter2-secret")


def test_a_new_environment_needs_a_password(manager_client):
    response = manager_client.post(
        "/environments/add/",
        {"name": "x", "url": "http://x.example", "username": "u", "provider": "db"},
    )
    assert response.status_code == 200
    assert "Enter the Superset user" in response.content.decode()
    assert not Environment.objects.exists()


def test_an_unreachable_environment_test_says_so(owner_client):
    env = Environment.objects.create(
        name="off", url="http://127.0.0.1:9", username="u", password="p"
    )
    html = owner_client.post(
        f"/environments/{env.pk}/test/", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'data-reason="unreachable"' in html


def test_the_picker_reports_an_unreachable_source(owner_client):
    env = Environment.objects.create(
        name="off", url="http://127.0.0.1:9", username="u", password="p"
    )
    html = owner_client.get(f"/migrations/dashboards/?source={env.pk}").content.decode()
    assert "off:" in html and 'class="error"' in html


def test_the_preview_turns_the_forms_choices_into_the_plans(owner_client, envs, monkeypatch):
    seen = {}

    def preview(source, target, dashboards, params):
        seen.update(params)
        return {
            "summary": {"map": 1},
            "overwrite": False,
            "databases": [],
            "datasets": [],
            "charts": [],
            "dashboards": [],
            "target_connections": [],
        }

    monkeypatch.setattr("migrator.promote.preview", preview)
    response = owner_client.post(
        "/migrations/preview/",
        {
            "source": envs[0].pk,
            "target": envs[1].pk,
            "dashboards": [12],
            "database__analytics": "map:7",
            "database__warehouse": "replace",
            "confirm__warehouse": "warehouse",
            "conflict__d-1": "skip",
            "conflict__d-2": "nonsense",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert "1 map" in response.content.decode()
    assert seen["databases"] == {
        "analytics": {"action": "map", "target": "7"},
        "warehouse": {"action": "replace"},
    }
    assert seen["conflicts"] == {"d-1": "skip"}


def test_replacing_a_connection_needs_its_name_typed(owner_client, envs):
    response = owner_client.post(
        "/migrations/start/",
        {
            "source": envs[0].pk,
            "target": envs[1].pk,
            "dashboards": [12],
            "database__warehouse": "replace",
            "confirm__warehouse": "yes",
        },
    )
    assert response.status_code == 400
    assert "type its name" in response.content.decode()
    assert not Task.objects.exists()


def test_saved_mappings_are_listed_and_can_be_forgotten(owner_client, envs):
    from migrator.models import DatabaseMapping

    DatabaseMapping.remember(
        envs[0], envs[1], {"analytics": {"action": "map", "target": "prod_analytics"}}
    )
    html = owner_client.get("/environments/").content.decode()
    assert "dev → prod" in html and "prod_analytics" in html
    mapping = DatabaseMapping.objects.get()
    assert owner_client.post(f"/environments/mappings/{mapping.pk}/delete/").status_code == 302
    assert not DatabaseMapping.objects.exists()


def test_the_environment_list_shows_each_servers_release(owner_client, envs):
    envs[0].saw_release("5.0.0")
    html = owner_client.get("/environments/").content.decode()
    assert '<th scope="col">Superset</th>' in html
    row = html.split(f'id="env-{envs[0].pk}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>5.0.0</td>" in row
    other = html.split(f'id="env-{envs[1].pk}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>—</td>" in other  # not tested yet
