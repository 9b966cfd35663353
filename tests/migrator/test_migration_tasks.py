"""A migration as the task machinery shows and handles it: what only this kind means.

The machinery itself (history, API, admin, retries) is tested with a small kind
of its own in tests/tasks_app; these are the parts a migration brings: its keys
in the API, its route and dashboards, the admin's environment filter, its steps
and the files it leaves.
"""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext

from migrator.models import Environment
from migrator.pipeline import KIND
from tasks_app import engine
from tasks_app.models import Status, Task

pytestmark = pytest.mark.django_db

LIST = "/admin/tasks_app/task/"
IDS = {"dev": 1, "stage": 2, "prod": 3}


def _migration(
    status: str = Status.FAILED,
    *,
    source: str = "dev",
    target: str = "prod",
    titles: tuple[str, ...] = ("Sales",),
    **fields,
) -> Task:
    return Task.objects.create(
        kind=KIND,
        status=status,
        params={
            "source": {"id": IDS[source], "name": source},
            "target": {"id": IDS[target], "name": target},
            "dashboards": [{"id": n, "title": t} for n, t in enumerate(titles, 7)],
            "overwrite": True,
        },
        **fields,
    )


def _ids(response) -> list[int]:
    return [t.pk for t in response.context["cl"].result_list]


def test_the_api_gives_a_migrations_source_target_and_dashboards(owner_client):
    task = _migration()
    item = owner_client.get("/api/tasks").json()["items"][0]
    assert item["source"]["name"] == "dev"
    assert item["dashboards"] == [{"id": 7, "title": "Sales"}]
    body = owner_client.get(f"/api/tasks/{task.pk}").json()
    # Besides the keys of every task (tests/tasks_app/test_api.py).
    assert set(body) >= {"source", "target", "dashboards"}


def test_the_history_and_the_admin_show_its_route_and_dashboards(owner_client, staff_client):
    task = _migration(titles=("Sales", "Stock"))
    row = owner_client.get("/").content.decode().split(f'id="task-{task.pk}"')[1]
    assert "dev → prod" in row.split("</tr>")[0]
    html = staff_client.get(LIST).content.decode()
    assert "dev → prod" in html
    assert "Sales, Stock" in html


def test_the_admin_filters_by_environment(staff_client):
    Environment.objects.bulk_create(
        Environment(pk=pk, name=name, url=f"http://{name}", username="u", password="p")
        for name, pk in IDS.items()
    )
    failed = _migration(Status.FAILED, source="dev", target="prod")
    done = _migration(Status.SUCCESS, source="stage", target="prod")
    old = _migration(Status.SUCCESS, source="dev", target="stage")
    assert _ids(staff_client.get(LIST, {"kind": "migration"})) == [old.pk, done.pk, failed.pk]
    # An environment matches as the source or as the target.
    assert _ids(staff_client.get(LIST, {"environment": "2"})) == [old.pk, done.pk]
    assert _ids(staff_client.get(LIST, {"environment": "1"})) == [old.pk, failed.pk]
    assert "stage" in staff_client.get(LIST).content.decode()  # offered as a filter


def test_the_admin_filter_by_environment_costs_the_same_however_many_tasks(staff_client, owner):
    Environment.objects.create(name="dev", url="http://dev", username="u", password="p")

    def filtered() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.get(LIST, {"environment": "1", "q": "Sales"})
            assert response.status_code == 200
        return len(queries)

    for _ in range(3):
        _migration(owner=owner)
    few = filtered()
    for n in range(60):
        _migration(Status.SUCCESS if n % 2 else Status.FAILED, owner=owner, titles=("A", "B", "C"))
    assert filtered() == few


def test_a_worker_lost_in_the_import_means_a_retry_from_the_start_without_the_bundle():
    """Superset may have written part of an import: that step is not repeated as such."""
    bundle = default_storage.save("bundles/old.zip", ContentFile(b"zip"))
    task = _migration(
        Status.FAILED,
        step="import",
        checkpoint={"bundle": bundle},
        error="Worker lost during step 'import'",
    )
    engine.retry(task)
    task.refresh_from_db()
    assert task.status == Status.PENDING
    assert (task.step, task.checkpoint) == ("", {})
    assert not default_storage.exists(bundle)  # the abandoned attempt's files
    assert task.log_entries.filter(message__contains="from the start").exists()


def test_a_worker_lost_in_a_step_safe_to_repeat_means_a_retry_at_that_step():
    task = _migration(
        Status.FAILED,
        step="export",
        checkpoint={"bundle": "bundles/x.zip"},
        error="Worker lost during step 'export'",
    )
    engine.retry(task)
    task.refresh_from_db()
    assert (task.status, task.step) == (Status.PENDING, "export")
    assert task.checkpoint == {"bundle": "bundles/x.zip"}
