from __future__ import annotations

import threading

import pytest
from django_tasks_db.models import DBTaskResult

from tasks_app import engine, wakeup, worker
from tasks_app.engine import Step, TaskKind
from tasks_app.models import Status, Task

pytestmark = pytest.mark.django_db(transaction=True)

seen: list[str] = []

engine.register(
    TaskKind(
        name="record",
        label="Record",
        steps=(Step("only", lambda ctx: seen.append(wakeup.current_worker_id())),),
    )
)


def test_a_worker_runs_each_queued_task_once():
    seen.clear()
    tasks = [engine.submit("record", owner=None, params={}) for _ in range(3)]
    w = worker.TaskWorker("test-worker", poll_interval=0.05)
    w.run_once()
    w.run_once()
    assert [t.status for t in Task.objects.filter(pk__in=[t.pk for t in tasks])] == [
        Status.SUCCESS
    ] * 3
    assert seen == ["test-worker"] * 3
    assert DBTaskResult.objects.filter(status="SUCCESSFUL").count() == 3


def test_a_queued_task_wakes_an_idle_worker_at_once():
    seen.clear()
    w = worker.TaskWorker("waker", poll_interval=30)
    thread = threading.Thread(target=w.run_forever, daemon=True)
    thread.start()
    try:
        task = engine.submit("record", owner=None, params={})
        for _ in range(200):
            task.refresh_from_db()
            if task.status == Status.SUCCESS:
                break
            threading.Event().wait(0.05)
        # Far sooner than the 30 s poll interval: the commit woke the worker.
        assert task.status == Status.SUCCESS
    finally:
        w.stop()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_the_worker_reaps_lost_tasks(settings):
    settings.TASK_HEARTBEAT_TIMEOUT = 0.01
    task = engine.submit("record", owner=None, params={})
    DBTaskResult.objects.all().delete()
    task.start("dead")
    threading.Event().wait(0.05)
    worker.TaskWorker("reaper", poll_interval=0.05).run_once()
    task.refresh_from_db()
    # "only" is repeatable: requeued, then run by the same pass.
    assert task.status == Status.SUCCESS
    assert task.log_entries.filter(message__contains="Worker lost").exists()


def test_reaping_closes_the_dead_workers_queue_message():
    task = engine.submit("record", owner=None, params={})
    message = DBTaskResult.objects.get()
    message.claim("dead")
    task.start("dead")
    Task.objects.filter(pk=task.pk).update(
        step="only", heartbeat_at=None, started_at="2000-01-01T00:00:00Z"
    )
    engine.reap_lost_tasks(timeout=1)
    message.refresh_from_db()
    assert message.status == "FAILED"
    assert "reaped" in message.traceback


def test_check_workers_reports_a_running_worker():
    from io import StringIO

    from django.core.management import call_command

    w = worker.TaskWorker("checker", poll_interval=0.05)
    thread = threading.Thread(target=w.run_forever, daemon=True)
    thread.start()
    try:
        out = StringIO()
        call_command("check_workers", "--timeout", "10", stdout=out)
        assert "OK: probe task" in out.getvalue() and "checker" in out.getvalue()
    finally:
        w.stop()
        thread.join(timeout=5)


def test_check_workers_fails_clearly_without_workers():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="No worker ran probe task"):
        call_command("check_workers", "--timeout", "0.3")
