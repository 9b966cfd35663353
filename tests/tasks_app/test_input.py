"""Asking a person for input and resuming, exactly once (tasks_app.engine.answer)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tasks_app import engine
from tasks_app.engine import (
    AlreadyAnswered,
    AnswerRejected,
    NeedsInput,
    NotAwaitingInput,
    Step,
    TaskKind,
)
from tasks_app.models import InputRequest, Status, Task

FIELDS = [
    {
        "key": "databases/a.yaml",
        "type": "password",
        "label": "Password",
        "input": "secret",
        "max_length": 20,
    },
    {
        "key": "databases/b.yaml",
        "type": "password",
        "label": "Password",
        "input": "secret",
        "max_length": 20,
    },
    {"key": "dash/x.yaml", "type": "overwrite", "label": "Overwrite?", "input": "confirm"},
]
RIGHT = {"password:databases/a.yaml": "right-a", "password:databases/b.yaml": "right-b"}
checked: list[dict] = []


def _ask(ctx):
    if not ctx.checkpoint.get("asked"):
        ctx.checkpoint["asked"] = True
        raise NeedsInput("Target needs passwords", {"fields": FIELDS})


def _answer(task, request, given):
    checked.append(dict(given))
    return {
        fid: "Wrong password"
        for fid, value in given.items()
        if isinstance(value, str) and not value.startswith("right")
    }


engine.register(TaskKind(name="asker", label="Asker", steps=(Step("ask", _ask),), answer=_answer))


@pytest.fixture
def waiting(db):
    checked.clear()
    task = engine.submit("asker", owner=None, params={})
    engine.run(task.pk, "w1")
    task.refresh_from_db()
    return task


def test_it_waits_with_an_open_request_and_holds_no_worker(waiting):
    assert waiting.status == Status.AWAITING_INPUT
    request = waiting.pending_input
    assert [f["key"] for f in request.fields] == [f["key"] for f in FIELDS]
    assert request.expires_at > timezone.now() + timedelta(days=6)
    assert waiting.worker_id == ""


def test_the_right_answers_resume_the_task_once(waiting, owner):
    answers = {**RIGHT, "overwrite:dash/x.yaml": True}
    engine.answer(waiting, answers, user=owner)
    assert answers == {}  # wiped
    waiting.refresh_from_db()
    assert waiting.status == Status.PENDING
    assert waiting.input_requests.get().state == "ANSWERED"
    assert DBTaskResult.objects.count() == 2
    engine.run(waiting.pk, "w1")
    waiting.refresh_from_db()
    assert waiting.status == Status.SUCCESS
    with pytest.raises(NotAwaitingInput):
        engine.answer(waiting, dict(RIGHT), user=owner)


def test_a_wrong_answer_comes_back_and_right_ones_are_not_asked_again(waiting, owner):
    with pytest.raises(AnswerRejected) as rejected:
        engine.answer(
            waiting,
            {"password:databases/a.yaml": "right-a", "password:databases/b.yaml": "nope"},
            user=owner,
        )
    assert rejected.value.errors == {
        "password:databases/b.yaml": "Wrong password",
        "overwrite:dash/x.yaml": "Confirm, or cancel the task.",
    }
    request = InputRequest.objects.get(task=waiting, state="OPEN")
    assert [(f["key"], f["error"]) for f in request.fields] == [
        ("databases/b.yaml", "Wrong password"),
        ("dash/x.yaml", "Confirm, or cancel the task."),
    ]
    waiting.refresh_from_db()
    assert waiting.status == Status.AWAITING_INPUT
    engine.answer(
        waiting, {"password:databases/b.yaml": "right-b", "overwrite:dash/x.yaml": True}, user=owner
    )
    waiting.refresh_from_db()
    assert waiting.status == Status.PENDING


def test_missing_unknown_and_too_long_answers_are_refused(waiting, owner):
    with pytest.raises(AnswerRejected) as rejected:
        engine.answer(waiting, {"password:databases/zzz.yaml": "x"}, user=owner)
    assert rejected.value.errors == {"password:databases/zzz.yaml": "Not asked for."}
    with pytest.raises(AnswerRejected) as rejected:
        engine.answer(waiting, {"password:databases/a.yaml": "right-" + "x" * 30}, user=owner)
    assert rejected.value.errors["password:databases/a.yaml"] == "At most 20 characters."
    assert rejected.value.errors["password:databases/b.yaml"] == "Required."
    assert checked == []  # nothing was checked: nothing valid was given


def test_no_answer_value_is_stored_or_logged(waiting, owner):
    secret = "right-very-secret-42"
    with pytest.raises(AnswerRejected):
        engine.answer(waiting, {"password:databases/a.yaml": secret}, user=owner)
    for request in InputRequest.objects.all():
        assert secret not in str(request.fields)
    for entry in waiting.log_entries.all():
        assert secret not in entry.message and secret not in str(entry.context)


def test_a_submission_while_another_is_being_checked_is_told_so(waiting, owner):
    waiting.pending_input.claim()  # another tab's submission is in flight
    with pytest.raises(AlreadyAnswered):
        engine.answer(waiting, {**RIGHT, "overwrite:dash/x.yaml": True}, user=owner)
    assert checked == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_resume_exactly_once(owner):
    checked.clear()
    task = engine.submit("asker", owner=None, params={})
    engine.run(task.pk, "w1")
    outcomes: list[str] = []
    barrier = threading.Barrier(5)

    def submit():
        barrier.wait()
        try:
            engine.answer(
                Task.objects.get(pk=task.pk), {**RIGHT, "overwrite:dash/x.yaml": True}, user=owner
            )
            outcomes.append("resumed")
        except (AlreadyAnswered, NotAwaitingInput):
            outcomes.append("already")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already"] * 4 + ["resumed"]
    assert DBTaskResult.objects.count() == 2  # the first run + exactly one resume
    assert len(checked) == 1


def test_an_unanswered_request_expires(waiting, settings):
    InputRequest.objects.filter(task=waiting).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert engine.expire_input_requests() == [waiting.pk]
    waiting.refresh_from_db()
    assert waiting.status == Status.FAILED
    assert waiting.error.startswith("Expired")
    assert waiting.input_requests.get().state == "EXPIRED"
    assert "Expired after waiting" in waiting.log_entries.last().message
