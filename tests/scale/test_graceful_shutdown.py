"""SIGTERM to a worker: its running task finishes (bounded), nothing is lost on a rolling restart."""

from __future__ import annotations

import signal
import time

import pytest
from django.db.models import Count, Q

from tasks_app import engine
from tasks_app.models import Status, Task
from tests.scale.helpers import wait_until

pytestmark = pytest.mark.scale


def _status(task_id: int) -> str:
    return Task.objects.get(pk=task_id).status


def _running_on(task_id: int, name: str) -> bool:
    return Task.objects.filter(pk=task_id, status=Status.RUNNING, worker_id=name).exists()


def test_sigterm_lets_the_running_task_finish_and_takes_no_new_one(cluster):
    a = cluster.worker("a").wait_ready()
    task = engine.submit("probe", owner=None, params={"seconds": 3})
    wait_until(lambda: _running_on(task.pk, "a"), 10, "the probe to start on a")
    a.signal(signal.SIGTERM)
    stopped = time.monotonic()
    later = engine.submit("probe", owner=None, params={"seconds": 0})

    assert a.popen.wait(timeout=15) == 0
    print(f"\nworker exited {time.monotonic() - stopped:.1f} s after SIGTERM")
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Status.SUCCESS, 1)
    assert _status(later.pk) == Status.PENDING  # a stopping worker takes nothing new
    assert "finishing running tasks" in a.log()

    cluster.worker("b").wait_ready()
    wait_until(lambda: _status(later.pk) == Status.SUCCESS, 10, "b to run the queued probe")


def test_past_the_shutdown_timeout_the_worker_hands_its_task_back(cluster_factory):
    cluster = cluster_factory({"WORKER_SHUTDOWN_TIMEOUT": "1"})
    a = cluster.worker("a").wait_ready()
    task = engine.submit("probe", owner=None, params={"seconds": 30})
    wait_until(lambda: _running_on(task.pk, "a"), 10, "the probe to start on a")
    b = cluster.worker("b").wait_ready()
    a.signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert a.popen.wait(timeout=15) == 1
    exited = time.monotonic() - stopped
    assert 0.9 <= exited < 5
    # Handed back at once (no heartbeat timeout to wait for) and run by b.
    wait_until(lambda: _running_on(task.pk, b.name), 5, "b to run it again")
    messages = list(task.log_entries.values_list("message", flat=True))
    assert (
        "Worker stopped during step 'probe'; it is safe to repeat, so the task was queued again."
        in messages
    )
    assert f"handed back task(s) #{task.pk}" in a.log()
    Task.objects.get(pk=task.pk).cancel()
    wait_until(lambda: _status(task.pk) == Status.CANCELLED, 5, "the cancellation")


def test_a_rolling_restart_loses_no_work(cluster):
    workers = {"a": cluster.worker("a"), "b": cluster.worker("b")}
    for worker in workers.values():
        worker.wait_ready()
    ids = [engine.submit("probe", owner=None, params={"seconds": 1}).pk for _ in range(12)]

    for name in ("a", "b"):
        wait_until(
            lambda name=name: Task.objects.filter(worker_id=workers[name].name).exists(),
            15,
            f"{name} to be busy",
        )
        old = workers[name]
        old.signal(signal.SIGTERM)
        workers[name] = cluster.worker(f"{name}2").wait_ready()  # the new version
        assert old.popen.wait(timeout=20) == 0

    wait_until(
        lambda: Task.objects.filter(pk__in=ids, status=Status.SUCCESS).count() == len(ids),
        60,
        "every probe to succeed",
        step=0.2,
    )
    rows = Task.objects.filter(pk__in=ids).annotate(
        runs=Count("log_entries", filter=Q(log_entries__message="Probe ran"))
    )
    assert {(t.attempts, t.runs) for t in rows} == {(1, 1)}
    ran_on = set(
        Task.objects.filter(pk__in=ids, log_entries__message="Probe ran").values_list(
            "log_entries__context__worker", flat=True
        )
    )
    assert {"a", "b"} & ran_on and {"a2", "b2"} & ran_on  # old and new versions both worked
