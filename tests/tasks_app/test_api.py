from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app.models import Status
from tests.tasks_app.conftest import make_tasks

pytestmark = pytest.mark.django_db


def test_anonymous_requests_get_401(client):
    for url in ["/api/tasks", "/api/tasks/1", "/api/environments"]:
        response = client.get(url)
        assert response.status_code == 401
        assert response.json()["detail"].startswith("Log in")


def test_it_lists_tasks_newest_first_with_paging(owner_client):
    tasks = make_tasks(5)
    body = owner_client.get("/api/tasks?limit=2&offset=1").json()
    assert body["total"] == 5
    assert (body["limit"], body["offset"]) == (2, 1)
    assert [t["id"] for t in body["items"]] == [tasks[3].pk, tasks[2].pk]
    item = body["items"][0]
    # A kind's own keys (a migration's source…): tests/migrator/test_migration_tasks.py
    assert item["input_request"] is None


def test_it_filters_by_status(owner_client):
    make_tasks(2)
    failed = make_tasks(1, status=Status.FAILED)
    body = owner_client.get("/api/tasks?status=FAILED").json()
    assert [t["id"] for t in body["items"]] == [failed[0].pk]
    assert body["total"] == 1


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=100000", "offset=-1", "status=NOPE", "limit=abc"]
)
def test_bad_query_parameters_get_400_with_field_errors(owner_client, query):
    response = owner_client.get(f"/api/tasks?{query}")
    assert response.status_code == 400
    assert response.json()["errors"]


def test_one_task_and_unknown_ids(owner_client):
    (task,) = make_tasks(1)
    body = owner_client.get(f"/api/tasks/{task.pk}").json()
    assert body["id"] == task.pk
    assert body["status"] == "PENDING"
    assert set(body) >= {
        "id",
        "kind",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "error",
        "input_request",
    }
    assert owner_client.get("/api/tasks/999999").status_code == 404


def test_list_queries_do_not_grow_with_rows(owner_client):
    make_tasks(3)
    with CaptureQueriesContext(connection) as few:
        owner_client.get("/api/tasks?limit=50")
    make_tasks(40)
    with CaptureQueriesContext(connection) as many:
        owner_client.get("/api/tasks?limit=50")
    assert len(many) == len(few)


def test_cancel_and_retry(owner_client, owner):
    (task,) = make_tasks(1, owner=owner)
    assert owner_client.post(f"/api/tasks/{task.pk}/cancel").json()["status"] == "CANCELLED"
    assert owner_client.post(f"/api/tasks/{task.pk}/cancel").status_code == 409
    response = owner_client.post(f"/api/tasks/{task.pk}/retry")
    assert response.status_code == 202
    assert response.json()["status"] == "PENDING"


def test_only_the_owner_or_staff_may_change_a_task(other_client, owner):
    (task,) = make_tasks(1, owner=owner)
    assert other_client.post(f"/api/tasks/{task.pk}/cancel").status_code == 403


def test_writes_need_the_csrf_token(owner):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    (task,) = make_tasks(1, owner=owner)
    assert client.post(f"/api/tasks/{task.pk}/cancel").status_code == 403
