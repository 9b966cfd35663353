"""Working time and waiting time: a task that waited for a person is not "slow"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from tasks_app import presenter
from tasks_app.models import Status, Task

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


@pytest.fixture
def clock():
    c = Clock()
    with mock.patch("django.utils.timezone.now", lambda: c.now):
        yield c


def test_working_and_waiting_time_are_counted_apart(clock):
    task = Task.objects.create(kind="demo")
    task.start("w1")  # 0 s
    clock.at(0.6)
    task.await_input()  # worked 0.6 s
    clock.at(50.6)
    task.resume()  # waited 50 s
    clock.at(51.0)
    task.start("w2")
    clock.at(51.4)
    task.succeed()  # worked 0.4 s more
    task.refresh_from_db()
    assert task.work_time == timedelta(seconds=1.0)
    assert task.wait_time == timedelta(seconds=50)
    assert task.duration == timedelta(seconds=51.4)  # the wall clock, as before
    data = presenter.task_json(task, details=False)
    assert data["worked_seconds"] == 1.0
    assert data["waited_seconds"] == 50.0


def test_the_stretch_under_way_counts_while_running_or_waiting(clock):
    task = Task.objects.create(kind="demo")
    task.start("w1")
    clock.at(2)
    assert task.work_time == timedelta(seconds=2)
    task.await_input()
    clock.at(7)
    task.refresh_from_db()
    assert task.work_time == timedelta(seconds=2)
    assert task.wait_time == timedelta(seconds=5)


def test_a_retry_counts_from_its_own_start_not_the_cancelled_time(clock):
    task = Task.objects.create(kind="demo")
    task.start("w1")
    clock.at(3)
    task.await_input()
    clock.at(10)
    task.cancel()  # waited 7 s, then lay cancelled
    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert (task.work_time, task.wait_time) == (timedelta(seconds=3), timedelta(seconds=7))
    clock.at(600)
    task.retry()
    task.start("w2")
    clock.at(602)
    task.succeed()
    task.refresh_from_db()
    assert task.started_at == T0 + timedelta(seconds=600)
    assert task.work_time == timedelta(seconds=2)
    assert task.wait_time == timedelta(0)
