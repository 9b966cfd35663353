"""Restarts: web processes, Redis, a target Superset that hangs or goes away mid-import."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tasks_app import engine
from tasks_app.models import Status, Task
from tests.cluster import PrivateRedis
from tests.e2e.superset_servers import SupersetAdmin
from tests.scale.conftest import add_environments, start_migration
from tests.scale.helpers import Listeners, TcpProxy, wait_until

pytestmark = pytest.mark.scale

# A migration's log: export, plan, then an import or nothing to write, report, end.
MIGRATION_LOGS = [
    [
        "Exporting 1 dashboard(s) from source",
        "Exported a bundle of",
        "Plan against target",
        *middle,
        "Report:",
        "Task finished successfully.",
    ]
    for middle in (["target: importing", "Imported into target"], ["Nothing to write"])
]
PROBE_LOG = ["Probe ran", "Task finished successfully."]
# htmx's ws extension reconnects after these close codes (abnormal, service restart, try later).
RECONNECTING_CODES = {1006, 1012, 1013}


def _messages(task_id: int) -> list[str]:
    return list(
        Task.objects.get(pk=task_id).log_entries.order_by("id").values_list("message", flat=True)
    )


def _all_done(ids: list[int]) -> bool:
    return Task.objects.filter(pk__in=ids, status=Status.SUCCESS).count() == len(ids)


def test_restarting_the_web_processes_loses_no_task_and_no_log_entry(cluster, superset):
    web1, web2 = cluster.web("web1"), cluster.web("web2")
    for proc in (web1, web2, cluster.worker("w1"), cluster.worker("w2")):
        proc.wait_ready()
    api1, api2 = web1.session(), web2.session()
    add_environments(api2, superset)
    (dashboard,) = SupersetAdmin(superset["source"]).dashboards_by_title("Sales Overview")
    listeners = Listeners(web1.url, dict(api1.cookies))
    listeners2 = Listeners(web2.url, dict(api2.cookies))
    try:
        before = listeners.one("/ws/tasks/?format=json")
        before2 = listeners2.one("/ws/tasks/?format=json")
        probes = [engine.submit("probe", owner=None, params={"seconds": 1}).pk for _ in range(6)]
        migrations = [start_migration(api2, dashboard["id"]) for _ in range(2)]
        wait_until(lambda: before.received, 10, "live events before the restart")

        web1.kill()  # a crash
        web2.stop()  # a deploy
        for web in (web1, web2):
            web.start()
        for web in (web1, web2):
            web.wait_ready()
        # Browsers were told in a way that makes htmx reconnect.
        wait_until(before.closed.is_set, 5, "the old socket to close")
        wait_until(before2.closed.is_set, 5, "the old socket to close")
        assert before.close_code in RECONNECTING_CODES, before.close_code
        assert before2.close_code in RECONNECTING_CODES, before2.close_code
        after = listeners.one("/ws/tasks/?format=json")  # the same session cookie still works
        migrations.append(start_migration(web2.session(), dashboard["id"]))
        wait_until(lambda: _all_done(probes + migrations), 90, "every task to succeed", step=0.2)
        wait_until(lambda: "SUCCESS" in after.statuses(migrations[-1]), 10, "live events after")
    finally:
        listeners.close()
        listeners2.close()

    for task_id in probes:
        assert _messages(task_id) == PROBE_LOG
    for task_id in migrations:
        messages = _messages(task_id)
        assert any(
            len(messages) == len(log) and all(map(str.startswith, messages, log))
            for log in MIGRATION_LOGS
        ), messages
    # The restarted processes serve all of it.
    api = web1.session()
    for task_id in probes + migrations:
        logs = api.get(f"/api/tasks/{task_id}/logs").json()
        assert [e["message"] for e in logs["entries"]] == _messages(task_id)
        assert api.get(f"/api/tasks/{task_id}").json()["status"] == "SUCCESS"


@pytest.fixture
def private_redis():
    redis = PrivateRedis().start()
    yield redis
    if redis.popen and redis.popen.poll() is None:
        os.kill(redis.popen.pid, signal.SIGCONT)
    redis.stop()


def test_redis_going_away_neither_blocks_workers_nor_leaves_browsers_behind(
    cluster_factory, private_redis
):
    cluster = cluster_factory(redis_url=private_redis.url)
    web, worker = cluster.web("web1"), cluster.worker("w1")
    web.wait_ready()
    worker.wait_ready()
    api = web.session()
    listeners = Listeners(web.url, dict(api.cookies))
    try:
        first = listeners.one("/ws/tasks/?format=json")
        p1 = engine.submit("probe", owner=None, params={"seconds": 0}).pk
        wait_until(lambda: "SUCCESS" in first.statuses(p1), 10, "live events")

        # Redis down: the web process closes its sockets so browsers reconnect
        # (and meanwhile poll); the worker carries on at full speed.
        private_redis.stop()
        wait_until(first.closed.is_set, 5, "the socket to close when Redis goes")
        assert first.close_code == 4503  # static/js/app.js reconnects
        while_down = engine.submit("probe", owner=None, params={"seconds": 0})
        submitted = time.monotonic()
        wait_until(lambda: Task.objects.get(pk=while_down.pk).status == Status.SUCCESS, 10, "p2")
        assert time.monotonic() - submitted < 3
        (refused,) = listeners.open("/ws/tasks/?format=json")
        assert not refused.opened.is_set()  # refused, the browser retries later

        # Redis back: sockets open again, events flow, the table catches up.
        private_redis.start()
        second = wait_until(
            lambda: next(
                iter(s for s in listeners.open("/ws/tasks/?format=json") if s.opened.is_set()), None
            ),
            10,
            "a socket to open again",
            step=0.5,
        )
        p3 = engine.submit("probe", owner=None, params={"seconds": 0}).pk
        wait_until(lambda: "SUCCESS" in second.statuses(p3), 10, "live events after Redis is back")
        # What a reconnecting page fetches (static/js/app.js: the rows endpoint):
        # the task that finished while Redis was away, as it is now.
        rows = api.get("/tasks/rows/", headers={"HX-Request": "true"}).text
        row = re.search(rf'<tr id="task-{while_down.pk}"[^>]*>', rows).group(0)
        assert 'data-status="SUCCESS"' in row

        # Redis hung (accepts, never answers): publishing times out in the
        # background, never in the task.
        os.kill(private_redis.popen.pid, signal.SIGSTOP)
        while_hung = engine.submit("probe", owner=None, params={"seconds": 0})
        submitted = time.monotonic()
        wait_until(lambda: Task.objects.get(pk=while_hung.pk).status == Status.SUCCESS, 10, "p4")
        assert time.monotonic() - submitted < 3
        wait_until(second.closed.is_set, 8, "the socket to close when Redis hangs")
        os.kill(private_redis.popen.pid, signal.SIGCONT)
        third = wait_until(
            lambda: next(
                iter(s for s in listeners.open("/ws/tasks/?format=json") if s.opened.is_set()), None
            ),
            10,
            "a socket to open after the hang",
            step=0.5,
        )
        p5 = engine.submit("probe", owner=None, params={"seconds": 0}).pk
        wait_until(lambda: "SUCCESS" in third.statuses(p5), 15, "live events after the hang")
    finally:
        listeners.close()
    # One warning per outage in the worker's log, not one per event.
    assert worker.log().count("Could not publish a live update") <= 2
    assert "Live updates flow again" in worker.log()
    assert "Traceback" not in worker.log()


def test_a_target_that_never_answers_fails_the_task_with_a_timeout(cluster_factory, superset):
    hanging = TcpProxy(mode="hang")
    try:
        cluster = cluster_factory({"SUPERSET_TIMEOUT": "2"})
        web, worker = cluster.web("web1"), cluster.worker("w1")
        web.wait_ready()
        worker.wait_ready()
        api = web.session()
        add_environments(api, superset, stuck=hanging.url)
        (dashboard,) = SupersetAdmin(superset["source"]).dashboards_by_title("Sales Overview")
        started = time.monotonic()
        task_id = start_migration(api, dashboard["id"], target="stuck")
        task = api.wait_for_status(task_id, {"FAILED", "SUCCESS"}, timeout=30)
        elapsed = time.monotonic() - started
    finally:
        hanging.close()
    assert task["status"] == "FAILED"
    assert "no answer to POST /api/v1/security/login within 2 s" in task["error"], task["error"]
    assert elapsed < 10
    assert hanging.accepted >= 1


def test_a_target_that_goes_away_mid_import_fails_clearly_and_a_retry_works(cluster, superset):
    port = int(superset["target"].rsplit(":", 1)[1])
    proxy = TcpProxy(upstream=("127.0.0.1", port), mode="cut")
    proxy.cut_on = b"POST /api/v1/dashboard/import/"
    try:
        web, worker = cluster.web("web1"), cluster.worker("w1")
        web.wait_ready()
        worker.wait_ready()
        api = web.session()
        add_environments(api, superset, flaky=proxy.url)
        target = SupersetAdmin(superset["target"])
        for existing in target.dashboards_by_title("Sales Overview"):
            target.delete_dashboard(existing["id"])  # so that there is something to import
        (dashboard,) = SupersetAdmin(superset["source"]).dashboards_by_title("Sales Overview")
        task_id = start_migration(api, dashboard["id"], target="flaky")
        task = api.wait_for_status(task_id, {"FAILED", "SUCCESS"}, timeout=60)
        assert task["status"] == "FAILED"
        assert proxy.cuts == 1
        assert task["error"].startswith(f"Target flaky ({proxy.url}): Superset at {proxy.url}")
        assert "unreachable" in task["error"]

        proxy.mode = "forward"  # the target is back
        answer = api.post(f"/api/tasks/{task_id}/retry")
        assert answer.status_code == 202, answer.text
        task = api.wait_for_status(task_id, {"FAILED", "SUCCESS"}, timeout=60)
        assert task["status"] == "SUCCESS", task
    finally:
        proxy.close()
    messages = _messages(task_id)
    assert sum(m.startswith("Exporting") for m in messages) == 1  # the retry resumed at the import
    assert any(m.startswith("Import failed") for m in messages)
    assert messages[-1] == "Task finished successfully."
