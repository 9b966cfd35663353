from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app.models import Status
from tests.tasks_app.conftest import make_tasks

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_users_to_the_login_page(client):
    for url in ["/", "/tasks/rows/", "/tasks/1/", "/environments/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_the_migration_page_lists_the_ten_newest_tasks(owner_client):
    tasks = make_tasks(12)
    response = owner_client.get("/")
    html = response.content.decode()
    for task in tasks[2:]:
        assert f'id="task-{task.pk}"' in html
    for task in tasks[:2]:
        assert f'id="task-{task.pk}"' not in html
    assert "dev → prod" in html
    assert f"?before={tasks[2].pk}" in html  # "Load more" continues below the last row


def test_load_more_returns_the_next_older_rows_only(owner_client):
    tasks = make_tasks(25)
    response = owner_client.get(f"/tasks/rows/?before={tasks[15].pk}", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    shown = [t.pk for t in tasks if f'id="task-{t.pk}"' in html]
    assert shown == [t.pk for t in tasks[5:15]]
    assert f"before={tasks[5].pk}" in html
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_load_more_without_javascript_is_a_full_page(owner_client):
    make_tasks(12)
    response = owner_client.get("/tasks/rows/?before=3")
    assert b"<html" in response.content


def test_the_status_filter_shows_only_matching_rows(owner_client):
    failed = make_tasks(2, status=Status.FAILED, error="Target unreachable")
    ok = make_tasks(2, status=Status.SUCCESS)
    html = owner_client.get("/tasks/table/?status=FAILED", HTTP_HX_REQUEST="true").content.decode()
    assert all(f'id="task-{t.pk}"' in html for t in failed)
    assert not any(f'id="task-{t.pk}"' in html for t in ok)
    assert "Target unreachable" in html
    assert "ws/tasks/?status=FAILED" in html


def test_the_page_size_is_configurable(owner_client, settings):
    settings.TASK_PAGE_SIZE = 3
    make_tasks(5)
    html = owner_client.get("/").content.decode()
    assert html.count('class="task-row') == 3


@pytest.mark.parametrize("url", ["/", "/tasks/rows/?before=10000", "/tasks/table/?status=FAILED"])
def test_history_queries_do_not_grow_with_rows(owner_client, url):
    make_tasks(3, status=Status.FAILED)
    with CaptureQueriesContext(connection) as few:
        owner_client.get(url, HTTP_HX_REQUEST="true")
    make_tasks(40, status=Status.FAILED)
    with CaptureQueriesContext(connection) as many:
        owner_client.get(url, HTTP_HX_REQUEST="true")
    assert len(many) == len(few)


def test_a_running_task_is_visibly_running(owner_client):
    (task,) = make_tasks(1)
    task.start("w1")
    html = owner_client.get("/").content.decode()
    assert 'class="spinner"' in html
    assert "Running" in html


def test_the_owner_can_cancel_a_pending_task(owner_client, owner):
    (task,) = make_tasks(1, owner=owner)
    response = owner_client.post(f"/tasks/{task.pk}/cancel/", HTTP_HX_REQUEST="true")
    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert 'data-status="CANCELLED"' in response.content.decode()


def test_another_user_cannot_cancel(other_client, owner):
    (task,) = make_tasks(1, owner=owner)
    response = other_client.post(f"/tasks/{task.pk}/cancel/")
    # The history shows every task to everyone: refused (403), as in the API.
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.status == Status.PENDING


def test_the_task_page_shows_its_log(owner_client, owner):
    (task,) = make_tasks(1, owner=owner)
    task.log_entries.create(message="Exported a bundle", context={"bytes": 5194})
    html = owner_client.get(f"/tasks/{task.pk}/").content.decode()
    assert "Exported a bundle" in html
    assert "5194" in html
    assert owner_client.get("/tasks/999999/").status_code == 404
