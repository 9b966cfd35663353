"""`kill -9` of a worker mid-task: within the heartbeat timeout the task moves on.

The tests run with TASK_HEARTBEAT_INTERVAL=0.5 and TASK_HEARTBEAT_TIMEOUT=3
(tests/scale/conftest.py); the time from the kill to the task leaving
RUNNING is measured and bounded.
"""

from __future__ import annotations

import time

import pytest

from tasks_app import engine
from tasks_app.models import Status, Task
from tests.e2e.superset_servers import SupersetAdmin
from tests.scale.conftest import FAST_HEARTBEAT, add_environments, start_migration
from tests.scale.helpers import TcpProxy, wait_until

pytestmark = pytest.mark.scale

TIMEOUT = float(FAST_HEARTBEAT["TASK_HEARTBEAT_TIMEOUT"])
INTERVAL = float(FAST_HEARTBEAT["TASK_HEARTBEAT_INTERVAL"])


def _running_on(task_id: int, worker_ids: set[str]) -> Task | None:
    task = Task.objects.get(pk=task_id)
    return task if task.status == Status.RUNNING and task.worker_id in worker_ids else None


def test_a_repeatable_step_is_requeued_and_run_by_the_other_worker(cluster):
    workers = {w.name: w for w in (cluster.worker("a"), cluster.worker("b"))}
    for worker in workers.values():
        worker.wait_ready()
    task = engine.submit("probe", owner=None, params={"seconds": 30})
    first = wait_until(lambda: _running_on(task.pk, set(workers)), 10, "the probe to start")
    wait_until(lambda: task.log_entries.filter(message="Probe ran").exists(), 5, "the step")
    victim = workers[first.worker_id]
    survivor = next(w for name, w in workers.items() if name != first.worker_id)

    victim.kill()
    killed = time.monotonic()
    wait_until(
        lambda: _running_on(task.pk, {victim.name}) is None,
        TIMEOUT + 5,
        "the task to leave the dead worker",
        step=0.02,
    )
    detected = time.monotonic() - killed
    again = wait_until(lambda: _running_on(task.pk, {survivor.name}), 5, "the second run")
    print(f"\nkill -9 -> requeued and started again in {detected:.2f} s")
    # Not before the timeout (a heartbeat lost, not a guess) and not much after.
    assert TIMEOUT - INTERVAL - 0.5 <= detected <= TIMEOUT + 2 * INTERVAL + 1.5
    assert again.attempts == 2
    # RUNNING is recorded a moment before the step's first log entry.
    wait_until(
        lambda: task.log_entries.filter(message="Probe ran").count() == 2,
        5,
        "the second run's entry",
    )
    entries = list(task.log_entries.values_list("message", "context"))
    assert [c["worker"] for m, c in entries if m == "Probe ran"] == [victim.name, survivor.name]
    lost = [m for m, c in entries if m.startswith("Worker lost")]
    assert lost == [
        "Worker lost during step 'probe'; it is safe to repeat, so the task was queued again."
    ]

    again.cancel()  # the probe checks every 0.2 s
    wait_until(
        lambda: Task.objects.get(pk=task.pk).status == Status.CANCELLED, 5, "the cancellation"
    )


def test_a_step_not_safe_to_repeat_fails_with_worker_lost(cluster, superset):
    # A target that answers the plan's reads and then hangs on the import.
    port = int(superset["target"].rsplit(":", 1)[1])
    hanging = TcpProxy(upstream=("127.0.0.1", port), mode="stall")
    hanging.cut_on = b"POST /api/v1/dashboard/import/"
    target = SupersetAdmin(superset["target"])
    for existing in target.dashboards_by_title("Sales Overview"):
        target.delete_dashboard(existing["id"])  # so that there is something to import
    try:
        web = cluster.web("web1")
        workers = {w.name: w for w in (cluster.worker("a"), cluster.worker("b"))}
        for proc in [web, *workers.values()]:
            proc.wait_ready()
        api = web.session()
        add_environments(api, superset, stuck=hanging.url)
        (dashboard,) = SupersetAdmin(superset["source"]).dashboards_by_title("Sales Overview")
        task_id = start_migration(api, dashboard["id"], target="stuck")

        def importing() -> Task | None:
            task = _running_on(task_id, set(workers))
            return task if task and task.step == "import" and hanging.stalled else None

        first = wait_until(importing, 30, "the import to hang on the target")
        victim = workers[first.worker_id]
        victim.kill()
        killed = time.monotonic()
        wait_until(
            lambda: Task.objects.get(pk=task_id).status != Status.RUNNING,
            TIMEOUT + 5,
            "the task to leave RUNNING",
            step=0.02,
        )
        detected = time.monotonic() - killed
        print(f"\nkill -9 -> FAILED (worker lost) in {detected:.2f} s")
        assert detected <= TIMEOUT + 2 * INTERVAL + 1.5
        task = Task.objects.get(pk=task_id)
        assert task.status == Status.FAILED
        assert task.error == "Worker lost during step 'import'"
        assert task.attempts == 1  # not run again by the other worker
        last = task.log_entries.order_by("-id").first()
        assert last.level == 40 and "worker lost" in last.message.lower()
        assert last.context == {"worker": victim.name}
        # The table and the API say the same.
        assert api.get(f"/api/tasks/{task_id}").json()["status"] == "FAILED"
    finally:
        hanging.close()
