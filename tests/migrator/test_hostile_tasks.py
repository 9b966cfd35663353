"""Migration tasks against a hostile or broken Superset (issue 13, "Done when").

The source (and target) is tests/superset's ``HostileSuperset`` stand-in. Each case ends
FAILED with a sentence that names the problem, within the configured deadline plus a few
seconds, with the heap's growth under 50 MB for the big ones and nothing written outside
the data dir. Cancel stops a task stuck in a slow call within a few seconds.

Limits are small here (settings), so that the tests stay fast; timing asserts are
generous (a busy 2-core machine): "failed, and within deadline + SLACK s".
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import pytest
from django.db import connections

from migrator import sessions
from migrator.models import Environment
from migrator.pipeline import start_migration
from tasks_app import engine
from tasks_app.models import Status, Task
from tests.superset import test_hostile_client as hostile

MB = 1024 * 1024
SLACK = hostile.SLACK
DEADLINE = 3


@pytest.fixture(autouse=True)
def _small_limits(settings):
    settings.SUPERSET_CALL_DEADLINE = DEADLINE
    settings.SUPERSET_MAX_BUNDLE_BYTES = 8 * MB
    # Pooled clients keep the limits they were made with.
    sessions._idle.clear()
    yield
    sessions._idle.clear()


@pytest.fixture
def superset():
    with hostile.HostileSuperset() as server:
        yield server


@pytest.fixture
def scratch(monkeypatch, settings) -> list[Path]:
    """Where the task made its scratch files (``tempfile.TemporaryFile(dir=…)``)."""
    made: list[Path] = []
    real = tempfile.TemporaryFile

    def recorded(*args, **kwargs):
        made.append(Path(kwargs.get("dir") or tempfile.gettempdir()).resolve())
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", recorded)
    return made


def _migration(superset: hostile.HostileSuperset, owner, *, title: str = "Sales") -> Task:
    dev, prod = (
        Environment.objects.create(name=n, url=superset.url, username="u", password="pw-secret")
        for n in ("dev", "prod")
    )
    return start_migration(
        owner=owner,
        source=dev,
        target=prod,
        dashboards=[{"id": 1, "title": title}],
        overwrite=False,
    )


def _run(task: Task) -> tuple[Task, float]:
    started = time.monotonic()
    engine.run(task.pk, "w1")
    return Task.objects.get(pk=task.pk), time.monotonic() - started


def _assert_inside_data_dir(settings, made: list[Path]) -> None:
    data_dir = Path(settings.DATA_DIR).resolve()
    assert made, "the export went through a scratch file"
    assert all(path.is_relative_to(data_dir) for path in made), made


# --- each hostile answer ends the task FAILED, naming it, in time --------------------------


CASES = {
    "an alias bomb": (
        lambda s: hostile.zip_answer(hostile.alias_bomb()),
        "The bundle exported from dev (http://127.0.0.1:{port}) cannot be used: databases/a.yaml "
        "in the bundle uses YAML anchors or aliases (&a, line 1); Superset's exports never do",
    ),
    "10,000 database files": (
        lambda s: hostile.zip_answer(hostile.many_databases()),
        "cannot be used: The bundle has 10,001 files, more than the 5,000 allowed "
        "(SUPERSET_MAX_BUNDLE_MEMBERS)",
    ),
    "a trickling body": (
        lambda s: hostile.trickle(every=0.5),
        "did not finish answering GET /api/v1/dashboard/export/ within 3 s, the deadline of "
        "one call (SUPERSET_CALL_DEADLINE)",
    ),
    "no headers ever": (
        lambda s: hostile.silent,
        "did not finish answering GET /api/v1/dashboard/export/ within 3 s",
    ),
    "a 500 MB error body": (
        lambda s: hostile.endless(500, "text/html", 500 * MB),
        "Exporting dashboard(s) 1 failed with HTTP 500; Superset answered with text/html",
    ),
    "a 3 GB export": (
        lambda s: hostile.endless(200, "application/zip", 3 * 1024 * MB, start=b"PK\x03\x04"),
        "The export of dashboard(s) 1 from http://127.0.0.1:{port} is larger than 8 MB "
        "(SUPERSET_MAX_BUNDLE_BYTES): it was stopped there and nothing of it is kept.",
    ),
    "a body that is not a ZIP": (
        lambda s: hostile.endless(200, "application/zip", 10_000, start=b"<html>"),
        "with something that is not a ZIP file (it starts with b'<htm'), although it said "
        "application/zip.",
    ),
    "NUL bytes in its errors": (
        lambda s: hostile.json_answer(500, {"message": "Export\x00failed"}),
        "Exporting dashboard(s) 1 failed with HTTP 500: Export\ufffdfailed",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_source_fails_the_task_naming_the_problem_in_time(
    superset, owner, settings, scratch, case
) -> None:
    answer, sentence = CASES[case]
    superset.export = answer(superset)
    task = _migration(superset, owner)

    tracemalloc_peak_mb, (task, elapsed) = _traced(lambda: _run(task))

    assert task.status == Status.FAILED, task.error
    expected = sentence.format(port=superset.url.rsplit(":", 1)[1])
    assert expected in task.error
    assert "Unexpected error" not in task.error
    # The retries of a 500 (0.5 + 1 + 2 s) are inside the deadline too.
    assert elapsed < DEADLINE + SLACK, elapsed
    assert tracemalloc_peak_mb < 50, tracemalloc_peak_mb
    _assert_inside_data_dir(settings, scratch)


@pytest.mark.django_db
def test_nul_bytes_in_titles_end_in_a_named_failure_too(superset, owner) -> None:
    superset.listing = hostile.listing_answer("Sales\x00Report")
    superset.export = hostile.json_answer(500, {"message": "Export\x00failed"})
    task, elapsed = _run(_migration(superset, owner, title=""))
    assert task.status == Status.FAILED
    assert "failed with HTTP 500: Export\ufffdfailed" in task.error
    assert task.params["dashboards"][0]["title"].startswith("Sales")
    assert elapsed < DEADLINE + SLACK


@pytest.mark.django_db
def test_an_alias_bomb_in_a_dashboard_is_named_by_the_plan(superset, owner) -> None:
    superset.export = hostile.zip_answer(hostile.alias_bomb("dashboards"))
    task, _ = _run(_migration(superset, owner))
    assert task.status == Status.FAILED
    assert task.error.startswith("The bundle exported from dev (")
    assert "dashboards/a.yaml in the bundle uses YAML anchors or aliases" in task.error


def _traced(run):
    import tracemalloc

    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - base) / MB, result


# --- Cancel ----------------------------------------------------------------------------------


def _run_in_thread(task: Task) -> threading.Thread:
    def run() -> None:
        try:
            engine.run(task.pk, "w1")
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _cancel_when_stuck(superset, task: Task, thread: threading.Thread) -> float:
    """Cancel once the export is under way (and a second more); the seconds until the run ended."""
    assert superset.export_asked.wait(30), "the task never asked for the export"
    time.sleep(1)
    assert thread.is_alive(), "stuck in the slow call"
    Task.objects.get(pk=task.pk).cancel()
    asked = time.monotonic()
    thread.join(60)
    assert not thread.is_alive()
    return time.monotonic() - asked


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("answer", ["trickle", "silent"])
def test_cancel_ends_a_task_stuck_in_a_slow_call_within_seconds(
    superset, owner, settings, answer
) -> None:
    settings.SUPERSET_CALL_DEADLINE = 300  # only Cancel can end it in time
    superset.export = hostile.trickle(every=0.5) if answer == "trickle" else hostile.silent
    task = _migration(superset, owner)
    thread = _run_in_thread(task)

    took = _cancel_when_stuck(superset, task, thread)

    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert took < SLACK, took


@pytest.mark.django_db(transaction=True)
def test_cancel_also_stops_the_title_lookup_beside_the_export(superset, owner, settings) -> None:
    settings.SUPERSET_CALL_DEADLINE = 300
    superset.export = hostile.trickle(every=0.5)
    superset.listing = hostile.silent  # the titles, read in a thread of their own
    task = _migration(superset, owner, title="")
    thread = _run_in_thread(task)

    took = _cancel_when_stuck(superset, task, thread)

    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert took < SLACK, took
