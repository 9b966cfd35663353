from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tasks_app import engine, retention
from tasks_app.models import InputRequest, Status, Task, TaskLogEntry
from tests.tasks_app.conftest import KIND, PARAMS

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


def _task(status: str, age_days: float, *, bundle: bool = False, **fields) -> Task:
    when = timezone.now() - timedelta(days=age_days)
    checkpoint = {}
    if bundle:
        checkpoint["bundle"] = default_storage.save("bundles/task.zip", ContentFile(b"zip"))
    finished = when if status in ("SUCCESS", "FAILED", "CANCELLED") else None
    task = Task.objects.create(
        kind=KIND,
        status=status,
        created_at=when,
        finished_at=finished,
        checkpoint=checkpoint,
        params=PARAMS,
        **fields,
    )
    TaskLogEntry.objects.bulk_create(TaskLogEntry(task=task, message=f"line {n}") for n in range(3))
    return task


def _purge(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("purge_tasks", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_it_deletes_old_tasks_with_their_log_input_requests_and_bundles():
    old = _task(Status.FAILED, 40, bundle=True)
    InputRequest.objects.create(
        task=old, state="CLOSED", fields=[], expires_at=timezone.now() - timedelta(days=30)
    )
    recent = _task(Status.SUCCESS, 2)
    bundle = old.checkpoint["bundle"]

    out = _purge()

    assert list(Task.objects.values_list("id", flat=True)) == [recent.pk]
    assert not TaskLogEntry.objects.filter(task_id=old.pk).exists()
    assert TaskLogEntry.objects.filter(task_id=recent.pk).count() == 3
    assert not InputRequest.objects.exists()
    assert not default_storage.exists(bundle)
    assert "Deleted 1 task(s), 3 log entries and 1 input request(s)" in out


def test_it_keeps_at_most_the_newest_tasks():
    tasks = [_task(Status.SUCCESS, 1) for _ in range(5)]
    _purge("--keep", "2")
    assert sorted(Task.objects.values_list("id", flat=True)) == [t.pk for t in tasks[-2:]]


def test_it_never_deletes_active_tasks():
    active = [
        _task(Status.PENDING, 90),
        _task(Status.RUNNING, 90),
        _task(Status.AWAITING_INPUT, 90),
    ]
    InputRequest.objects.create(
        task=active[2], fields=[], expires_at=timezone.now() + timedelta(days=1)
    )
    newer = [_task(Status.SUCCESS, 0) for _ in range(3)]
    _purge("--keep", "1", "--days", "1")
    assert set(Task.objects.values_list("id", flat=True)) == {t.pk for t in active} | {newer[-1].pk}


def test_an_expired_waiting_task_is_failed_then_follows_the_rules():
    waiting = _task(Status.AWAITING_INPUT, 90, bundle=True)
    InputRequest.objects.create(
        task=waiting, fields=[], expires_at=timezone.now() - timedelta(days=1)
    )
    _task(Status.SUCCESS, 0)

    dry = _purge("--keep", "1", "--dry-run")
    assert f"#{waiting.pk}" in dry and "would be failed first" in dry
    assert f"Would delete task #{waiting.pk}" in dry
    waiting.refresh_from_db()
    assert waiting.status == Status.AWAITING_INPUT

    out = _purge("--keep", "1")
    assert f"Failed 1 task(s) whose input request expired: #{waiting.pk}" in out
    assert not Task.objects.filter(pk=waiting.pk).exists()


def test_an_expired_task_is_kept_for_the_days_rule():
    waiting = _task(Status.AWAITING_INPUT, 90)
    InputRequest.objects.create(
        task=waiting, fields=[], expires_at=timezone.now() - timedelta(days=1)
    )
    _purge("--keep", "0")
    waiting.refresh_from_db()
    # Failed just now: staff still get TASK_RETENTION_DAYS to see why.
    assert waiting.status == Status.FAILED


def test_a_dry_run_lists_what_it_would_delete_and_deletes_nothing():
    old = _task(Status.FAILED, 40, bundle=True)
    _task(Status.SUCCESS, 1)
    out = _purge("--dry-run")
    assert f"Would delete task #{old.pk} chore FAILED" in out
    assert "dev → prod (1 item(s))" in out
    assert "would delete 1 task(s) with 3 log entries" in out
    assert Task.objects.count() == 2
    assert default_storage.exists(old.checkpoint["bundle"])


def test_settings_give_the_defaults_and_options_override_them(settings):
    settings.TASK_RETENTION_DAYS = 10
    settings.TASK_RETENTION_LIMIT = 0
    eleven, nine = _task(Status.SUCCESS, 11), _task(Status.SUCCESS, 9)
    _purge()
    assert list(Task.objects.values_list("id", flat=True)) == [nine.pk]
    assert not Task.objects.filter(pk=eleven.pk).exists()
    _purge("--days", "5")  # the option overrides the setting: nine days is now too old
    assert not Task.objects.exists()


def test_zero_turns_both_rules_off():
    _task(Status.SUCCESS, 400)
    assert "nothing to do" in _purge("--days", "0", "--keep", "0")
    assert Task.objects.count() == 1


def test_it_prunes_finished_queue_messages():
    task = engine.submit(KIND, owner=None, params={})
    DBTaskResult.objects.update(status="SUCCESSFUL", finished_at=timezone.now() - timedelta(days=2))
    _purge()
    assert not DBTaskResult.objects.exists()
    assert Task.objects.filter(pk=task.pk).exists()


def test_a_broken_cleanup_hook_is_reported_and_the_purge_goes_on(monkeypatch):
    tasks = [_task(Status.FAILED, 40) for _ in range(2)]

    def broken(task):
        raise OSError("disk on fire")

    monkeypatch.setattr(
        "tasks_app.management.commands.purge_tasks._cleanup", lambda task: broken(task)
    )
    out = _purge()
    assert not Task.objects.filter(pk__in=[t.pk for t in tasks]).exists()
    assert "OSError: disk on fire" in out


def test_it_deletes_in_batches_with_a_bounded_number_of_queries(
    django_assert_max_num_queries, monkeypatch
):
    monkeypatch.setattr(retention, "BATCH_SIZE", 50)
    old = timezone.now() - timedelta(days=60)
    tasks = Task.objects.bulk_create(
        Task(kind=KIND, status=Status.SUCCESS, created_at=old, finished_at=old) for _ in range(500)
    )
    TaskLogEntry.objects.bulk_create(TaskLogEntry(task=t, message="x") for t in tasks)
    # 10 batches of about 9 queries each (the rows that refer to a task, a
    # migration's plan and fingerprints included), plus a few: not one per task.
    with django_assert_max_num_queries(110):
        out = _purge()
    assert "Deleted 500 task(s), 500 log entries" in out
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "-1"], "negative"),
        (["--keep", "ten"], "not a whole number"),
        (["--days"], "expected one argument"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("purge_tasks", *args)


@pytest.mark.django_db(transaction=True)
def test_from_cron_it_needs_no_terminal_and_exits_non_zero_on_bad_arguments(manage):
    # As cron runs it: its own process, no terminal, a fresh database.
    assert manage("migrate", "-v0").returncode == 0
    ok = manage("purge_tasks", "--dry-run")
    assert ok.returncode == 0, ok.stderr
    assert "would delete 0 task(s)" in ok.stdout
    done = manage("purge_tasks")
    assert done.returncode == 0 and "Deleted 0 task(s)" in done.stdout
    bad = manage("purge_tasks", "--keep", "-5")
    assert bad.returncode == 2
    assert "--keep: -5 is negative" in bad.stderr
