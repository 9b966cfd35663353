"""NUL characters, which PostgreSQL text cannot hold, never reach the database as such:
refused in URLs, cleaned where text from Superset, a person or a script is stored. Run
on PostgreSQL too (scripts/test.sh's postgres stage), where a NUL would be an error."""

from __future__ import annotations

import pytest

from tasks_app import engine
from tasks_app.models import Status, Task, storable
from tasks_app.tasklog import TaskLog

pytestmark = [pytest.mark.django_db, pytest.mark.postgres_too]


def test_storable_replaces_nul_in_text_and_json():
    assert storable("a\x00b") == "a\u2400b"
    assert storable({"k\x00": ["x\x00", 1, None]}) == {"k\u2400": ["x\u2400", 1, None]}


def test_a_nul_in_a_url_is_a_400_not_a_database_error(staff_client, owner_client):
    assert staff_client.get("/admin/tasks_app/task/?status__exact=%00").status_code == 400
    assert owner_client.get("/?status=%00").status_code == 400
    assert owner_client.get("/api/tasks?status=a%00").status_code == 400


def test_nul_from_superset_or_a_person_is_stored_cleaned(owner):
    task = engine.submit(
        "migration",
        owner=owner,
        params={
            "source": {"id": 1, "name": "dev"},
            "target": {"id": 2, "name": "prod"},
            "dashboards": [{"id": 1, "title": "Sales\x00"}],
            "overwrite": False,
        },
    )
    TaskLog(task).error("Superset said \x00 boom", detail={"title": "T\x00"})
    Task.objects.filter(pk=task.pk).update(params={**task.params, "extra": "x\x00"})
    task.refresh_from_db()
    assert task.params["dashboards"][0]["title"] == "Sales\u2400"
    assert task.params["extra"] == "x\u2400"
    entry = task.log_entries.get()
    assert entry.message == "Superset said \u2400 boom"
    assert entry.context == {"detail": {"title": "T\u2400"}}


def test_the_last_resort_handler_fails_the_task_even_with_nul_in_the_error(owner):
    def crash(ctx):
        raise RuntimeError("Superset answered \x00\x00")

    engine.register(
        engine.TaskKind(name="nul-crash", label="Crash", steps=(engine.Step("s", crash),))
    )
    task = engine.submit("nul-crash", owner=owner, params={})
    assert engine.run(task.pk, "w") == Status.FAILED
    task.refresh_from_db()
    assert task.status == Status.FAILED
    assert "Superset answered \u2400\u2400" in task.error
    assert task.log_entries.filter(message__contains="Unexpected error").exists()
