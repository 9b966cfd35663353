from __future__ import annotations

import pytest

from migrator.models import Environment
from tasks_app.models import Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def envs():
    return [
        Environment.objects.create(
            name=n, url=f"http://{n}.example", username="u", password="hunter2-secret"
        )
        for n in ("dev", "prod")
    ]


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
