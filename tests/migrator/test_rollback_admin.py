"""The admin's "Roll back selected migrations": an action the migration kind offers
(TaskKind.admin_actions; tasks_app knows nothing of rollbacks)."""

from __future__ import annotations

import pytest

from migrator import rollback
from migrator.models import Promotion
from migrator.pipeline import KIND as MIGRATION
from tasks_app.models import Status, Task

pytestmark = pytest.mark.django_db

LIST = "/admin/tasks_app/task/"
ACTION = "roll_back_migrations"


def _migration(envs, status: str = Status.SUCCESS) -> Task:
    task = Task.objects.create(
        kind=MIGRATION,
        status=status,
        params={
            "source": envs[0].as_ref(),
            "target": envs[1].as_ref(),
            "dashboards": [{"id": 7, "title": "Sales"}],
        },
    )
    Promotion.objects.create(task=task, plan={"dashboards": []})
    return task


def _act(client, *tasks: Task) -> str:
    page = client.post(
        LIST, {"action": ACTION, "_selected_action": [t.pk for t in tasks]}, follow=True
    )
    assert page.status_code == 200
    return page.content.decode()


def _rollbacks() -> dict[int, Task]:
    """The rollback tasks, by the migration each rolls back."""
    return {t.params["migration"]: t for t in Task.objects.filter(kind=rollback.KIND)}


def test_it_is_offered_with_the_engines_actions(staff_client, envs):
    _migration(envs)  # the list offers actions when it lists a task
    html = staff_client.get(LIST).content.decode()
    assert f'<option value="{ACTION}">Roll back selected migrations</option>' in html
    assert '<option value="cancel_tasks">' in html


def test_it_starts_one_rollback_per_migration_and_refuses_a_second(staff_client, staff, envs):
    first, second = _migration(envs), _migration(envs, Status.FAILED)  # failed half-way too
    running = _migration(envs, Status.RUNNING)

    text = _act(staff_client, first, second, running)

    started = _rollbacks()
    assert sorted(started) == [first.pk, second.pk]
    for migration in (first, second):
        task = started[migration.pk]
        assert (task.status, task.owner) == (Status.PENDING, staff)
        assert Promotion.objects.get(task=migration).rolled_back_by == task
    assert f"Rollback task started for: #{first.pk}, #{second.pk}." in text
    assert f"#{running.pk}: Task #{running.pk} is running" in text

    text = _act(staff_client, first, started[first.pk])

    assert len(_rollbacks()) == 2  # no second rollback, and a rollback is not rolled back
    assert f"already rolled back by task #{started[first.pk].pk}" in text
    assert f"#{started[first.pk].pk}: it is a rollback; this action is for a migration" in text
    assert "Rollback task started" not in text


def test_it_needs_the_change_permission(client, envs):
    from django.contrib.auth.models import Permission, User

    viewer = User.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_task"))
    client.force_login(viewer)
    migration = _migration(envs)
    html = client.get(LIST).content.decode()
    assert ACTION not in html
    assert "Sales" in html  # listed, without the action
    client.post(LIST, {"action": ACTION, "_selected_action": [migration.pk]})
    assert not _rollbacks()
