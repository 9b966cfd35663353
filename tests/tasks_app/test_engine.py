from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tasks_app import engine
from tasks_app.engine import NeedsInput, Step, Summary, TaskFailed, TaskKind
from tasks_app.models import Status, Task

pytestmark = pytest.mark.django_db

calls: list[str] = []


def _first(ctx):
    calls.append("first")
    ctx.checkpoint["first"] = ctx.checkpoint.get("first", 0) + 1
    ctx.log.info("first done", n=ctx.checkpoint["first"])


def _second(ctx):
    calls.append("second")
    mode = ctx.task.params.get("mode")
    if mode == "fail":
        raise TaskFailed("Target said no")
    if mode == "ask" and not ctx.checkpoint.get("answered"):
        ctx.checkpoint["answered"] = True
        raise NeedsInput(
            "Needs a password",
            {"fields": [{"key": "databases/a.yaml", "type": "password", "label": "Password"}]},
        )
    if mode == "crash":
        raise ValueError("kaboom")


engine.register(
    TaskKind(
        name="demo",
        label="Demo",
        steps=(Step("first", _first), Step("second", _second, repeatable=False)),
        summary=lambda task: Summary(title="Demo", items=["x"]),
    )
)


@pytest.fixture(autouse=True)
def _reset_calls():
    calls.clear()


def _submit(**params) -> Task:
    return engine.submit("demo", owner=None, params=params)


def test_it_queues_one_message_per_submission():
    task = _submit()
    assert task.status == Status.PENDING
    assert DBTaskResult.objects.count() == 1


def test_it_runs_all_steps_and_succeeds():
    task = _submit()
    assert engine.run(task.pk, "w1") == Status.SUCCESS
    task.refresh_from_db()
    assert task.status == Status.SUCCESS
    assert calls == ["first", "second"]
    assert task.checkpoint == {"first": 1}
    messages = list(task.log_entries.values_list("message", flat=True))
    assert messages == ["first done", "Task finished successfully."]


def test_it_fails_with_the_reason():
    task = _submit(mode="fail")
    engine.run(task.pk, "w1")
    task.refresh_from_db()
    assert task.status == Status.FAILED
    assert task.error == "Target said no"
    assert task.log_entries.last().get_level_display() == "ERROR"


def test_it_never_leaves_a_crashed_task_running():
    task = _submit(mode="crash")
    engine.run(task.pk, "w1")
    task.refresh_from_db()
    assert task.status == Status.FAILED
    assert "ValueError: kaboom" in task.error


def test_it_waits_for_input_then_resumes_at_the_same_step():
    task = _submit(mode="ask")
    engine.run(task.pk, "w1")
    task.refresh_from_db()
    assert task.status == Status.AWAITING_INPUT
    assert task.step == "second"
    task.resume()
    engine.run(task.pk, "w1")
    task.refresh_from_db()
    assert task.status == Status.SUCCESS
    # The first step ran once: the resume started from the saved checkpoint.
    assert calls == ["first", "second", "second"]


def test_a_duplicate_run_does_nothing():
    task = _submit()
    engine.run(task.pk, "w1")
    assert engine.run(task.pk, "w2") == Status.SUCCESS
    assert calls == ["first", "second"]


def test_it_stops_at_a_step_boundary_when_cancelled():
    task = _submit()
    Task.objects.filter(pk=task.pk).update(cancel_requested=True)
    engine.run(task.pk, "w1")
    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert calls == []


def test_retry_resumes_from_the_failed_step():
    task = _submit(mode="fail")
    engine.run(task.pk, "w1")
    task.refresh_from_db()
    Task.objects.filter(pk=task.pk).update(params={})
    task.refresh_from_db()
    engine.retry(task)
    assert DBTaskResult.objects.count() == 2
    engine.run(task.pk, "w1")
    task.refresh_from_db()
    assert task.status == Status.SUCCESS
    assert calls == ["first", "second", "second"]


def _stale(task: Task, step: str) -> None:
    task.start("dead-worker")
    Task.objects.filter(pk=task.pk).update(
        step=step, heartbeat_at=timezone.now() - timedelta(minutes=10)
    )


def test_reaping_requeues_a_task_lost_in_a_repeatable_step():
    task = _submit()
    _stale(task, "first")
    assert engine.reap_lost_tasks(timeout=60) == [task.pk]
    task.refresh_from_db()
    assert task.status == Status.PENDING
    assert DBTaskResult.objects.count() == 2
    assert "safe to repeat" in task.log_entries.last().message


def test_reaping_fails_a_task_lost_in_an_unsafe_step():
    task = _submit()
    _stale(task, "second")
    engine.reap_lost_tasks(timeout=60)
    task.refresh_from_db()
    assert task.status == Status.FAILED
    assert "Worker lost" in task.error
    assert "worker lost" in task.log_entries.last().message.lower()


def test_reaping_leaves_live_tasks_alone():
    task = _submit()
    task.start("alive")
    assert engine.reap_lost_tasks(timeout=60) == []
    task.refresh_from_db()
    assert task.status == Status.RUNNING


def test_a_cancel_requested_while_a_step_runs_wins_over_asking():
    def ask_after_cancel(ctx):
        Task.objects.filter(pk=ctx.task.pk).update(cancel_requested=True)
        raise NeedsInput("Needs a password", {"fields": []})

    engine.register(
        TaskKind(name="cancel-then-ask", label="x", steps=(Step("s", ask_after_cancel),))
    )
    task = engine.submit("cancel-then-ask", owner=None, params={})
    engine.run(task.pk, "w1")
    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert not task.input_requests.exists()


def test_a_task_whose_worker_keeps_dying_is_not_requeued_forever(settings):
    settings.TASK_MAX_ATTEMPTS = 2
    task = _submit()
    for expected in (Status.PENDING, Status.FAILED):
        _stale(task, "first")
        engine.reap_lost_tasks(timeout=60)
        task.refresh_from_db()
        assert task.status == expected
    assert "already ran 2 times" in task.log_entries.last().message


def test_retry_starts_over_after_a_worker_died_in_an_unsafe_step():
    task = _submit()
    _stale(task, "second")  # "second" is not repeatable
    Task.objects.filter(pk=task.pk).update(checkpoint={"first": 1})
    engine.reap_lost_tasks(timeout=60)
    task.refresh_from_db()
    engine.retry(task)
    task.refresh_from_db()
    assert (task.status, task.step, task.checkpoint) == (Status.PENDING, "", {})
    assert task.log_entries.last().message == "Retry from the start requested."
    engine.run(task.pk, "w1")
    assert calls == ["first", "second"]  # the first step ran again
