"""A migration's backup lives as long as the migration: purge_tasks lists its size in a
dry run and removes it with the task."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from migrator.models import Promotion
from tasks_app.models import Status, Task

pytestmark = pytest.mark.django_db


def _old_migration_with_a_backup() -> tuple[Task, str]:
    name = default_storage.save("bundles/task-1-backup.zip", ContentFile(b"z" * 12345))
    when = timezone.now() - timedelta(days=90)
    task = Task.objects.create(
        kind="migration",
        status=Status.SUCCESS,
        created_at=when,
        finished_at=when,
        params={"source": {"id": 1, "name": "dev"}, "target": {"id": 2, "name": "prod"}},
        checkpoint={"backup": name},
    )
    Promotion.objects.create(task=task, plan={}, backup={"file": name, "bytes": 12345})
    return task, name


def _purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_tasks", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_a_dry_run_lists_the_backup_with_its_size():
    task, name = _old_migration_with_a_backup()
    out = _purge("--dry-run")
    assert f"task #{task.pk} migration SUCCESS" in out
    assert "backup 12,345 bytes" in out
    assert default_storage.exists(name)


def test_the_backup_goes_with_its_task():
    task, name = _old_migration_with_a_backup()
    _purge()
    assert not Task.objects.filter(pk=task.pk).exists()
    assert not default_storage.exists(name)


def test_a_rolled_back_migration_does_not_run_again(owner_client, owner):
    """Its rollback undid it; a retry would rewrite the target with no backup to undo it."""
    task = Task.objects.create(
        kind="migration",
        owner=owner,
        status=Status.FAILED,
        params={
            "source": {"id": 1, "name": "dev"},
            "target": {"id": 2, "name": "prod"},
            "dashboards": [],
            "rolled_back_by": 99,
        },
    )
    answer = owner_client.post(f"/api/tasks/{task.pk}/retry")
    assert answer.status_code == 409
    assert "rolled back by task #99" in answer.json()["detail"]
    task.refresh_from_db()
    assert task.status == Status.FAILED
