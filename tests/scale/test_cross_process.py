"""Two web processes and two worker processes behave as one application."""

from __future__ import annotations

import pytest
from django_tasks_db.models import DBTaskResult

from tasks_app.models import Task
from tests.e2e.superset_servers import (
    SECURE_ANALYTICS_KEY,
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    SECURE_SALES_TITLE,
    SupersetAdmin,
)
from tests.scale.conftest import add_environments, start_migration
from tests.scale.helpers import Listeners, wait_until

pytestmark = pytest.mark.scale


def _start_all(cluster):
    webs = _start_webs(cluster)
    return webs, _start_workers(cluster)


def _start_webs(cluster):
    webs = [cluster.web("web1"), cluster.web("web2")]
    for web in webs:
        web.wait_ready()
    return webs


def _start_workers(cluster):
    workers = [cluster.worker("w1"), cluster.worker("w2")]
    for worker in workers:
        worker.wait_ready()
    return workers


def test_a_browser_on_web_1_sees_live_what_web_2_queued_and_a_worker_ran(cluster, superset):
    web1, web2 = _start_webs(cluster)
    api1, api2 = web1.session(), web2.session()
    add_environments(api2, superset)
    listeners = Listeners(web1.url, dict(api1.cookies))
    try:
        history = listeners.one("/ws/tasks/?format=json")
        (dashboard,) = SupersetAdmin(superset["source"]).dashboards_by_title("Sales Overview")
        # Queued before any worker exists: the task's own sockets open before it
        # can run, so they must get every change after its creation.
        task_id = start_migration(api2, dashboard["id"])
        status = listeners.one(f"/ws/tasks/{task_id}/status?format=json")
        logs = listeners.one(f"/ws/tasks/{task_id}/logs?format=json")
        _start_workers(cluster)
        wait_until(lambda: "SUCCESS" in history.statuses(task_id), 60, "SUCCESS on web 1")
        entries = Task.objects.get(pk=task_id).log_entries
        wait_until(
            lambda: (
                {e["id"] for e in logs.events(event="log.entry")}
                >= set(entries.values_list("id", flat=True))
            ),
            10,
            "every log entry on web 1",
        )
    finally:
        listeners.close()
    # Created on web 2, run on a worker process, every change seen on web 1
    # (in the order of their versions: PENDING and RUNNING come from two
    # processes, in either order), and the newest is what the browser shows.
    assert history.statuses(task_id) == ["PENDING", "RUNNING", "SUCCESS"]
    assert history.last_status(task_id) == "SUCCESS"
    assert status.statuses(task_id) == ["RUNNING", "SUCCESS"]
    assert status.last_status(task_id) == "SUCCESS"
    # Every entry, none twice; the viewer orders them by id.
    received = {e["id"]: e["message"] for e in logs.events(event="log.entry")}
    assert len(received) == len(logs.events(event="log.entry"))
    assert [received[i] for i in sorted(received)] == [e.message for e in entries.order_by("id")]
    (message,) = DBTaskResult.objects.filter(args_kwargs__args=[task_id])
    assert message.worker_ids[0] in {"w1", "w2"}


def test_a_password_given_through_web_2_resumes_a_task_started_through_web_1(cluster, superset):
    target = SupersetAdmin(superset["target"])
    target.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    (web1, web2), _ = _start_all(cluster)
    api1 = web1.session()
    add_environments(api1, superset)
    listeners = Listeners(web1.url, dict(api1.cookies))
    try:
        history = listeners.one("/ws/tasks/?format=json")
        (dashboard,) = SupersetAdmin(superset["source"]).dashboards_by_title(SECURE_SALES_TITLE)
        task_id = start_migration(api1, dashboard["id"])
        wait_until(lambda: "AWAITING_INPUT" in history.statuses(task_id), 60, "the password prompt")

        api2 = web2.session()  # another colleague, on the other web process
        answer = api2.post(
            f"/api/tasks/{task_id}/resume", json={"passwords": {SECURE_ANALYTICS_KEY: "wrong-1"}}
        )
        assert answer.status_code == 400
        answer = api2.post(
            f"/api/tasks/{task_id}/resume",
            json={"passwords": {SECURE_ANALYTICS_KEY: SECURE_PASSWORD}},
        )
        assert answer.status_code == 202, answer.text
        wait_until(lambda: "SUCCESS" in history.statuses(task_id), 60, "SUCCESS on web 1")
    finally:
        listeners.close()
    # The resume's PENDING (web 2) and the worker's RUNNING may arrive in either
    # order: none is lost, their versions order them, the newest is SUCCESS.
    assert history.statuses(task_id) == [
        "PENDING",
        "RUNNING",
        "AWAITING_INPUT",
        "PENDING",
        "RUNNING",
        "SUCCESS",
    ]
    assert history.last_status(task_id) == "SUCCESS"
    task = Task.objects.get(pk=task_id)
    messages = list(task.log_entries.values_list("message", flat=True))
    assert sum(m.startswith("Exporting") for m in messages) == 1  # resumed at the import
    assert target.database_connection_ok("secure_analytics")
