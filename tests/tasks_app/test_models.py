from __future__ import annotations

import itertools

import pytest

from tasks_app.models import TRANSITIONS, IllegalTransition, Status, Task

pytestmark = pytest.mark.django_db

ALLOWED = {(src, dst) for dst, sources in TRANSITIONS.items() for src in sources}


def _move(task: Task, to: str) -> None:
    moves = {
        Status.RUNNING: lambda: task.start("w1"),
        Status.SUCCESS: task.succeed,
        Status.FAILED: lambda: task.fail("boom"),
        Status.AWAITING_INPUT: task.await_input,
        Status.CANCELLED: task.cancel,
    }
    if to == Status.PENDING:
        {
            Status.AWAITING_INPUT: task.resume,
            Status.RUNNING: task.requeue,
            Status.FAILED: task.retry,
            Status.CANCELLED: task.retry,
        }.get(task.status, task.resume)()
    else:
        moves[to]()


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(Status.values, Status.values)))
def test_it_allows_exactly_the_documented_transitions(src, dst):
    task = Task.objects.create(kind="demo", status=src)
    if (src, dst) in ALLOWED and not (src == Status.RUNNING and dst == Status.CANCELLED):
        _move(task, dst)
        task.refresh_from_db()
        assert task.status == dst
    elif src == Status.RUNNING and dst == Status.CANCELLED:
        # A running task is asked to stop; its worker records CANCELLED.
        task.cancel()
        task.refresh_from_db()
        assert task.status == Status.RUNNING and task.cancel_requested
        task.mark_cancelled()
        task.refresh_from_db()
        assert task.status == Status.CANCELLED
    else:
        with pytest.raises(IllegalTransition):
            _move(task, dst)
        task.refresh_from_db()
        assert task.status == src


def test_it_refuses_a_move_another_process_already_made():
    task = Task.objects.create(kind="demo")
    stale_copy = Task.objects.get(pk=task.pk)
    task.start("w1")
    with pytest.raises(IllegalTransition):
        stale_copy.start("w2")
    task.refresh_from_db()
    assert task.worker_id == "w1"
    assert task.attempts == 1


def test_it_records_times_and_attempts():
    task = Task.objects.create(kind="demo")
    task.start("w1")
    assert task.started_at is not None and task.heartbeat_at is not None
    task.fail("Target unreachable")
    task.refresh_from_db()
    assert task.finished_at is not None
    assert task.error == "Target unreachable"
    assert task.duration is not None
    task.retry()
    task.refresh_from_db()
    assert (task.status, task.error, task.finished_at) == (Status.PENDING, "", None)
    task.start("w2")
    task.refresh_from_db()
    assert task.attempts == 2


def test_beat_reports_a_task_that_left_running():
    task = Task.objects.create(kind="demo")
    task.start("w1")
    assert task.beat() is True
    task.succeed()
    assert task.beat() is False


def test_every_change_makes_a_new_version_and_the_object_knows_it():
    task = Task.objects.create(kind="demo")
    assert task.version == 1
    versions = [task.version]
    task.start("w1")
    versions.append(task.version)
    task.save_checkpoint("export", {"bundle": "b.zip"})
    # Whoever changes the row, through the queryset, makes a version too (a
    # kind filling in its params, a cancel requested while running).
    Task.objects.filter(pk=task.pk).update(params={"title": "Sales"})
    task.cancel()
    task.await_input()
    versions.append(task.version)
    task.resume()
    versions.append(task.version)
    assert versions == [1, 2, 6, 7]
    task.refresh_from_db()
    assert task.version == 7


def test_a_heartbeat_is_not_a_new_version():
    task = Task.objects.create(kind="demo")
    task.start("w1")
    assert task.beat() is True
    assert Task.objects.get(pk=task.pk).version == task.version == 2


def test_a_refused_move_makes_no_version():
    task = Task.objects.create(kind="demo")
    stale_copy = Task.objects.get(pk=task.pk)
    task.start("w1")
    with pytest.raises(IllegalTransition):
        stale_copy.start("w2")
    assert Task.objects.get(pk=task.pk).version == 2


def test_a_change_outside_a_transition_is_a_new_version_published_as_it_is(
    monkeypatch, django_capture_on_commit_callbacks
):
    """A kind that saved something about a task (its params, what it shows with
    it) says so; the task gets a new version and listeners get that state."""
    from tasks_app import live

    sent = []
    monkeypatch.setattr(live, "send", lambda group, message: sent.append(message))
    monkeypatch.setattr(live, "listened", lambda group: True)
    task = Task.objects.create(kind="demo")
    task.start("w1")
    Task.objects.filter(pk=task.pk).update(params={"title": "Sales"})  # version 3
    with django_capture_on_commit_callbacks(execute=True):
        live.task_changed(task)
    assert task.version == 4
    (published,) = [m["task"] for m in sent if m["type"] == "task.changed"]
    assert (published["status"], published["version"]) == ("RUNNING", 4)
