"""Task triage in the Django admin: the list, the task page, the actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tasks_app.models import InputRequest, Status, Task, TaskLogEntry
from tests.tasks_app.conftest import KIND, make_task

pytestmark = pytest.mark.django_db

LIST = "/admin/tasks_app/task/"


def _task(status: str = Status.FAILED, **fields) -> Task:
    return make_task(status, **fields)


def _ids(response) -> list[int]:
    return [t.pk for t in response.context["cl"].result_list]


# --- who gets in -----------------------------------------------------------


def test_staff_see_the_task_list(staff_client, owner):
    started = timezone.now() - timedelta(minutes=2, seconds=5)
    _task(
        Status.FAILED,
        items=("Sales", "Stock"),
        owner=owner,
        started_at=started,
        finished_at=started + timedelta(minutes=2, seconds=5),
        error="Target prod refused the bundle",
    )
    page = staff_client.get(LIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="task-status task-status-failed"' in html and "Failed" in html
    assert "dev → prod" in html
    assert "Sales, Stock" in html
    assert "2 min 5 s" in html
    assert ">owner<" in html


def test_people_who_are_not_staff_are_refused(client, owner):
    task = _task()
    assert client.get(LIST).status_code == 302  # anonymous: to the admin login
    client.force_login(owner)
    for url in (LIST, f"{LIST}{task.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_nobody_adds_or_deletes_tasks_by_hand(staff_client):
    task = _task()
    assert staff_client.get(f"{LIST}add/").status_code == 403
    assert staff_client.get(f"{LIST}{task.pk}/delete/").status_code == 403


# --- filters and search ----------------------------------------------------


def test_it_filters_by_status_kind_and_date(staff_client):
    # By environment: a migration's filter (tests/migrator/test_migration_tasks.py).
    failed = _task(Status.FAILED, route=("dev", "prod"))
    done = _task(Status.SUCCESS, route=("stage", "prod"))
    old = _task(Status.SUCCESS, route=("dev", "stage"))
    Task.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    assert _ids(staff_client.get(LIST, {"status__exact": "FAILED"})) == [failed.pk]
    assert _ids(staff_client.get(LIST, {"kind": KIND})) == [old.pk, done.pk, failed.pk]
    since = str(timezone.now() - timedelta(days=7))
    assert _ids(staff_client.get(LIST, {"created_at__gte": since})) == [done.pk, failed.pk]


def test_it_searches_by_id_dashboard_title_and_error(staff_client):
    sales = _task(items=("Sales Overview",))
    cafe = _task(items=("Café Stats",))
    broken = _task(items=("Stock",), error="Target prod refused the bundle: CSRF token missing")
    assert _ids(staff_client.get(LIST, {"q": str(sales.pk)})) == [sales.pk]
    assert _ids(staff_client.get(LIST, {"q": f"#{cafe.pk}"})) == [cafe.pk]
    assert _ids(staff_client.get(LIST, {"q": "sales over"})) == [sales.pk]
    assert _ids(staff_client.get(LIST, {"q": "café"})) == [cafe.pk]
    assert _ids(staff_client.get(LIST, {"q": "csrf"})) == [broken.pk]
    assert _ids(staff_client.get(LIST, {"q": "nothing like it"})) == []


# --- the task page ---------------------------------------------------------


def test_the_task_page_shows_the_log_newest_page_first_newest_last(staff_client):
    task = _task()
    TaskLogEntry.objects.bulk_create(
        TaskLogEntry(task=task, level=40 if n == 149 else 20, message=f"entry {n:03}")
        for n in range(150)
    )
    html = staff_client.get(f"{LIST}{task.pk}/change/").content.decode()
    assert "150 entries" in html
    assert "entry 100" in html and "entry 149" in html and "entry 099" not in html
    assert html.index("entry 148") < html.index("entry 149")
    assert '?log_page=1#task-log"' in html
    assert "ERROR" in html
    first = staff_client.get(f"{LIST}{task.pk}/change/", {"log_page": "1"}).content.decode()
    assert "entry 000" in first and "entry 100" not in first


def test_the_task_page_shows_the_pending_input_request_and_no_secret(staff_client):
    task = _task(Status.AWAITING_INPUT, step="import")
    InputRequest.objects.create(
        task=task,
        message="prod needs input",
        fields=[
            {
                "key": "databases/analytics.yaml",
                "type": "password",
                "label": "Database password",
                "about": "analytics",
                "detail": "postgresql://u:XXXXXXXXXX@db/analytics",
                "error": "Wrong: password authentication failed",
            }
        ],
        expires_at=timezone.now() + timedelta(days=7),
    )
    html = staff_client.get(f"{LIST}{task.pk}/change/").content.decode()
    assert "prod needs input" in html
    assert "databases/analytics.yaml" in html
    assert "postgresql://u:XXXXXXXXXX@db/analytics" in html
    assert "Wrong: password authentication failed" in html
    assert "<input" not in html.split('id="input-request"')[1].split("</fieldset>")[0]
    assert 'name="_save"' not in html  # read-only: changes go through the actions


# --- actions ---------------------------------------------------------------


def _act(client, action: str, *tasks: Task):
    return client.post(
        LIST, {"action": action, "_selected_action": [t.pk for t in tasks]}, follow=True
    )


def test_cancel_cancels_what_is_active_and_says_what_it_refused(staff_client):
    pending, waiting, running = (
        _task(Status.PENDING),
        _task(Status.AWAITING_INPUT),
        _task(Status.RUNNING),
    )
    done = _task(Status.SUCCESS)
    page = _act(staff_client, "cancel_tasks", pending, waiting, running, done)
    for task in (pending, waiting, running, done):
        task.refresh_from_db()
    assert (pending.status, waiting.status) == (Status.CANCELLED, Status.CANCELLED)
    assert running.status == Status.RUNNING and running.cancel_requested
    assert done.status == Status.SUCCESS
    text = page.content.decode()
    assert f"#{done.pk}: it is succeeded" in text
    assert pending.log_entries.filter(message__contains="staff (admin)").exists()


def test_retry_resumes_at_the_checkpoint(staff_client):
    task = _task(Status.FAILED, step="import", checkpoint={"bundle": "bundles/x.zip"})
    _act(staff_client, "retry_tasks", task)
    task.refresh_from_db()
    assert task.status == Status.PENDING
    assert (task.step, task.checkpoint) == ("import", {"bundle": "bundles/x.zip"})
    assert DBTaskResult.objects.count() == 1
    assert task.log_entries.filter(message__contains="resuming at step 'import'").exists()


def test_retry_starts_over_when_a_worker_died_inside_an_unrepeatable_step(staff_client):
    bundle = default_storage.save("bundles/old.zip", ContentFile(b"zip"))
    task = _task(
        Status.FAILED,
        step="import",
        checkpoint={"bundle": bundle},
        error="Worker lost during step 'import'",
    )
    _act(staff_client, "retry_tasks", task)
    task.refresh_from_db()
    assert task.status == Status.PENDING
    assert (task.step, task.checkpoint) == ("", {})
    assert not default_storage.exists(bundle)  # the abandoned attempt's files
    assert task.log_entries.filter(message__contains="from the start").exists()


def test_retry_refuses_active_tasks_and_unknown_kinds(staff_client):
    running = _task(Status.RUNNING)
    alien = Task.objects.create(kind="alien", status=Status.FAILED)
    text = _act(staff_client, "retry_tasks", running, alien).content.decode()
    assert "only failed or cancelled tasks can be retried" in text
    assert "does not know how to run" in text
    assert not DBTaskResult.objects.exists()


def test_expire_fails_a_waiting_task_and_removes_its_files(staff_client):
    bundle = default_storage.save("bundles/wait.zip", ContentFile(b"zip"))
    task = _task(Status.AWAITING_INPUT, step="import", checkpoint={"bundle": bundle})
    request = InputRequest.objects.create(
        task=task, fields=[], expires_at=timezone.now() + timedelta(days=7)
    )
    other = _task(Status.SUCCESS)
    text = _act(staff_client, "expire_input_requests", task, other).content.decode()
    task.refresh_from_db()
    request.refresh_from_db()
    assert task.status == Status.FAILED and "staff closed the input request" in task.error
    assert request.state == "EXPIRED"
    assert not default_storage.exists(bundle)
    assert f"#{other.pk}: it is not waiting for input" in text


def test_actions_need_the_change_permission(client, db):
    from django.contrib.auth.models import Permission, User

    viewer = User.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_task"))
    client.force_login(viewer)
    task = _task(Status.PENDING)
    assert client.get(LIST).status_code == 200
    _act(client, "cancel_tasks", task)
    task.refresh_from_db()
    assert task.status == Status.PENDING


# --- query counts ----------------------------------------------------------


def _count_queries(client, url: str, **params) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, params).status_code == 200
    return len(queries)


def test_the_list_uses_the_same_number_of_queries_however_many_tasks(staff_client, owner):
    # Filtered by environment too: tests/migrator/test_migration_tasks.py.
    for _ in range(3):
        _task(owner=owner)
    few = _count_queries(staff_client, LIST)
    searched_few = _count_queries(staff_client, LIST, q="Sales")
    for n in range(60):
        _task(Status.SUCCESS if n % 2 else Status.FAILED, owner=owner, items=("A", "B", "C", "D"))
    assert _count_queries(staff_client, LIST) == few
    assert _count_queries(staff_client, LIST, q="Sales") == searched_few


def test_the_task_page_uses_the_same_number_of_queries_however_long_the_log(staff_client):
    task = _task(Status.AWAITING_INPUT)
    InputRequest.objects.create(task=task, fields=[], expires_at=timezone.now())
    TaskLogEntry.objects.bulk_create(TaskLogEntry(task=task, message="x") for _ in range(5))
    url = f"{LIST}{task.pk}/change/"
    short = _count_queries(staff_client, url)
    TaskLogEntry.objects.bulk_create(
        TaskLogEntry(task=task, message="y", context={"n": n}) for n in range(500)
    )
    assert _count_queries(staff_client, url) == short
