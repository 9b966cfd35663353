"""A run that lost its task (reaped, handed back) can never end the newer run."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from tasks_app import engine, reaper, runner
from tasks_app.engine import Step, TaskKind
from tasks_app.models import IllegalTransition, Status, Task

pytestmark = pytest.mark.django_db(transaction=True)

stopped_at: list[float] = []


# Far longer than any test waits: a step that ends has noticed it must stop.
LONG_STEP = 120


def _long_step(ctx):
    deadline = time.monotonic() + LONG_STEP
    try:
        while time.monotonic() < deadline:
            ctx.check_cancelled()
            time.sleep(0.02)
    finally:
        stopped_at.append(time.monotonic())


engine.register(
    TaskKind(
        name="fencing",
        label="Fencing",
        steps=(Step("safe", _long_step), Step("unsafe", _long_step, repeatable=False)),
    )
)


def _running(step: str, worker: str = "w1") -> Task:
    task = engine.submit("fencing", owner=None, params={})
    task.start(worker)
    Task.objects.filter(pk=task.pk).update(step=step)
    task.step = step
    return task


def test_a_stale_run_cannot_end_the_run_that_replaced_it():
    old = _running("safe")
    Task.objects.filter(pk=old.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert engine.reap_lost_tasks(timeout=60) == [old.pk]
    new = Task.objects.get(pk=old.pk)
    new.start("w2")

    assert old.beat() is False  # the old worker learns it lost the task
    with pytest.raises(IllegalTransition):
        old.succeed()
    with pytest.raises(IllegalTransition):
        old.fail("late failure")
    current = Task.objects.get(pk=old.pk)
    assert (current.status, current.worker_id, current.attempts) == (Status.RUNNING, "w2", 2)
    assert new.beat() is True


def test_a_reaper_holding_a_stale_row_leaves_the_newer_run_alone():
    task = _running("safe")
    Task.objects.filter(pk=task.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    (stale,) = Task.objects.stale(60)  # one reaper read it...
    assert engine.reap_lost_tasks(timeout=60) == [task.pk]  # ...another handled it
    Task.objects.get(pk=task.pk).start("w2")
    assert reaper._hand_back(stale, "Worker lost") is False
    assert Task.objects.get(pk=task.pk).status == Status.RUNNING


def test_a_run_whose_task_was_taken_away_stops_at_its_next_check(settings):
    settings.TASK_HEARTBEAT_INTERVAL = 0.05
    stopped_at.clear()
    task = engine.submit("fencing", owner=None, params={})
    outcome: list[str] = []

    def work() -> None:
        try:
            outcome.append(engine.run(task.pk, "w1"))
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 60
    while not Task.objects.filter(pk=task.pk, status=Status.RUNNING, step="safe").exists():
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)
    Task.objects.get(pk=task.pk).requeue()  # a reaper decided the worker was lost
    thread.join(timeout=LONG_STEP / 2)
    # Stopped at a check inside its step (which would have run LONG_STEP seconds).
    assert not thread.is_alive() and stopped_at
    # The run did not write over what the reaper decided.
    assert outcome == [Status.RUNNING]  # its in-memory view; the database says:
    assert Task.objects.get(pk=task.pk).status == Status.PENDING


def test_a_heartbeat_survives_a_database_blip(monkeypatch):
    task = _running("safe")
    calls: list[int] = []

    def flaky_beat() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return True

    monkeypatch.setattr(task, "beat", flaky_beat)
    lost = threading.Event()
    heartbeat = runner._Heartbeat(task, 0.01, lost)
    heartbeat.start()
    deadline = time.monotonic() + 30
    while len(calls) < 4:  # it kept beating after the failed one
        assert time.monotonic() < deadline and heartbeat.is_alive()
        time.sleep(0.01)
    heartbeat.stop()
    assert not lost.is_set()


def test_a_stopping_worker_hands_back_its_tasks():
    safe = _running("safe", worker="leaving")
    unsafe = _running("unsafe", worker="leaving")
    other = _running("safe", worker="staying")
    assert sorted(engine.release_tasks(["leaving"])) == sorted([safe.pk, unsafe.pk])

    safe.refresh_from_db()
    assert safe.status == Status.PENDING
    assert safe.log_entries.last().message == (
        "Worker stopped during step 'safe'; it is safe to repeat, so the task was queued again."
    )
    unsafe.refresh_from_db()
    assert (unsafe.status, unsafe.error) == (Status.FAILED, "Worker lost during step 'unsafe'")
    assert unsafe.log_entries.last().message.startswith("Worker stopped during step 'unsafe'")
    assert not engine.can_resume(unsafe)  # a retry starts over
    assert Task.objects.get(pk=other.pk).status == Status.RUNNING
