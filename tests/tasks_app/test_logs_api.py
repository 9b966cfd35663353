"""GET /api/tasks/{id}/logs: cursor pages of a task's log."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app.models import LogLevel, Task, TaskLogEntry
from tasks_app.tasklog import TaskLog
from tests.tasks_app.conftest import make_task

pytestmark = pytest.mark.django_db

LEVELS = [LogLevel.DEBUG, LogLevel.INFO, LogLevel.WARNING, LogLevel.ERROR]


def _entries(task: Task, n: int, start: int = 0) -> list[int]:
    """n entries, levels cycling DEBUG, INFO, WARNING, ERROR; their ids."""
    TaskLogEntry.objects.bulk_create(
        TaskLogEntry(
            task=task,
            level=LEVELS[i % 4],
            message=f"step {i}",
            context={"i": i, "where": "source" if i % 2 else "target"},
        )
        for i in range(start, start + n)
    )
    return list(task.log_entries.order_by("id").values_list("id", flat=True))


def _get(client, task: Task, query: str = "") -> dict:
    response = client.get(f"/api/tasks/{task.pk}/logs{'?' + query if query else ''}")
    assert response.status_code == 200, response.content
    return response.json()


def test_it_returns_the_newest_page_ascending_with_a_cursor_to_older_entries(owner_client, task):
    ids = _entries(task, 250)
    body = _get(owner_client, task)
    assert body["task_id"] == task.pk
    assert [e["id"] for e in body["entries"]] == ids[-200:]
    assert body["previous"] == ids[50]
    assert body["next"] is None
    first = body["entries"][0]
    assert set(first) == {"id", "timestamp", "level", "message", "context"}
    assert first["level"] == "WARNING" and first["message"] == "step 50"
    assert first["context"] == {"i": 50, "where": "target"}
    assert first["timestamp"].endswith(("Z", "+00:00"))


def test_a_short_log_fits_one_page(owner_client, task):
    ids = _entries(task, 3)
    body = _get(owner_client, task)
    assert [e["id"] for e in body["entries"]] == ids
    assert body["previous"] is None and body["next"] is None
    empty = make_task()
    assert _get(owner_client, empty) == {
        "task_id": empty.pk,
        "entries": [],
        "next": None,
        "previous": None,
    }


def test_paging_back_has_no_gaps_or_repeats_while_the_task_keeps_writing(owner_client, task):
    ids = _entries(task, 95)
    log = TaskLog(task)
    seen: list[int] = []
    body = _get(owner_client, task, "limit=10")
    while True:
        seen[:0] = [e["id"] for e in body["entries"]]
        log.info("written while someone reads")  # newer entries must not shift the pages
        if body["previous"] is None:
            break
        body = _get(owner_client, task, f"limit=10&before={body['previous']}")
    assert seen == ids


def test_paging_forward_follows_a_running_task_without_gaps_or_repeats(owner_client, task):
    _entries(task, 23)
    log = TaskLog(task)
    seen: list[int] = []
    body = _get(owner_client, task, "limit=10&after=0")
    for round_ in range(20):
        seen += [e["id"] for e in body["entries"]]
        if round_ < 5:
            log.warning(f"appended {round_}")
        if body["next"] is None and round_ >= 5:
            break
        after = body["next"] or seen[-1]  # null next: nothing newer yet, follow from the last id
        body = _get(owner_client, task, f"limit=10&after={after}")
    assert seen == list(task.log_entries.order_by("id").values_list("id", flat=True))
    assert len(seen) == 28


def test_an_older_page_says_newer_entries_exist(owner_client, task):
    ids = _entries(task, 30)
    body = _get(owner_client, task, f"limit=10&before={ids[15]}")
    assert [e["id"] for e in body["entries"]] == ids[5:15]
    assert body["previous"] == ids[5]
    assert body["next"] == ids[14]
    newer = _get(owner_client, task, f"limit=10&after={body['next']}")
    assert [e["id"] for e in newer["entries"]] == ids[15:25]
    assert newer["previous"] == ids[15] and newer["next"] == ids[24]


def test_the_level_filter_is_a_minimum_level(owner_client, task):
    _entries(task, 40)
    body = _get(owner_client, task, "level=warning")
    assert {e["level"] for e in body["entries"]} == {"WARNING", "ERROR"}
    assert len(body["entries"]) == 20
    assert {e["level"] for e in _get(owner_client, task, "level=ERROR")["entries"]} == {"ERROR"}
    assert len(_get(owner_client, task, "level=DEBUG")["entries"]) == 40


def test_filtered_pages_page_through_the_filtered_entries(owner_client, task):
    _entries(task, 100)
    errors = list(
        task.log_entries.filter(level=LogLevel.ERROR).order_by("id").values_list("id", flat=True)
    )
    body = _get(owner_client, task, "level=ERROR&limit=10")
    assert [e["id"] for e in body["entries"]] == errors[-10:]
    older = _get(owner_client, task, f"level=ERROR&limit=10&before={body['previous']}")
    assert [e["id"] for e in older["entries"]] == errors[-20:-10]
    assert older["next"] == errors[-11]


def test_search_matches_the_message_or_the_context_in_any_case(owner_client, task):
    log = TaskLog(task)
    log.info("Exported a bundle", bytes=5194)
    log.info("Importing into Prod", environment="prod-eu")
    log.info("Nothing to see")
    messages = [e["message"] for e in _get(owner_client, task, "search=PROD")["entries"]]
    assert messages == ["Importing into Prod"]
    messages = [e["message"] for e in _get(owner_client, task, "search=prod-EU")["entries"]]
    assert messages == ["Importing into Prod"]
    messages = [e["message"] for e in _get(owner_client, task, "search=5194")["entries"]]
    assert messages == ["Exported a bundle"]
    assert _get(owner_client, task, "search=100%25")["entries"] == []


def test_a_known_secret_never_reaches_the_api(owner_client, task):
    log = TaskLog(task, secrets=["hunter2-Secret"])
    log.error(
        "Login failed with hunter2-Secret for postgresql://admin:pw-in-uri@db/x",
        request={"payload": {"password": "hunter2-Secret", "user": "admin"}},
        tried=["hunter2-Secret"],
    )
    raw = owner_client.get(f"/api/tasks/{task.pk}/logs").content.decode()
    assert "hunter2-Secret" not in raw and "pw-in-uri" not in raw
    entry = _get(owner_client, task)["entries"][0]
    assert entry["message"] == (
        "Login failed with [redacted] for postgresql://admin:[redacted]@db/x"
    )
    assert entry["context"] == {
        "request": {"payload": {"password": "[redacted]", "user": "admin"}},
        "tried": ["[redacted]"],
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("level=NOPE", "level"),
        ("after=-1", "after"),
        ("before=0", "before"),
        ("before=x", "before"),
        ("after=1&before=9", "before"),
        (f"search={'x' * 201}", "search"),
    ],
)
def test_bad_parameters_get_400_with_field_errors(owner_client, task, query, field):
    response = owner_client.get(f"/api/tasks/{task.pk}/logs?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "Invalid input."
    assert field in body["errors"], body


def test_the_largest_page_is_1000_entries(owner_client, task):
    _entries(task, 1200)
    assert len(_get(owner_client, task, "limit=1000")["entries"]) == 1000


def test_unknown_tasks_get_404(owner_client):
    response = owner_client.get("/api/tasks/999999/logs")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_anonymous_requests_are_refused(client, task):
    response = client.get(f"/api/tasks/{task.pk}/logs")
    assert response.status_code == 401


def test_the_query_count_does_not_grow_with_the_log(owner_client, task):
    def queries(query: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            _get(owner_client, task, query)
        return len(captured)

    ids = _entries(task, 5)
    small = [
        queries(q) for q in ("", f"before={ids[3]}", f"after={ids[0]}&level=info", "search=step")
    ]
    _entries(task, 3000, start=5)
    ids = list(task.log_entries.order_by("id").values_list("id", flat=True))
    large = [
        queries(q)
        for q in ("", f"before={ids[2000]}", f"after={ids[10]}&level=info", "search=step")
    ]
    assert large == small
    assert max(large) <= 5  # session, user, task, page, the other direction


def test_the_endpoint_is_in_the_openapi_document(owner_client):
    doc = owner_client.get("/api/openapi.json").json()
    operation = doc["paths"]["/api/tasks/{task_id}/logs"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"after", "before", "limit", "level", "search"} <= names


def test_a_nul_in_the_search_is_a_400_not_a_database_error(owner_client, task):
    response = owner_client.get(f"/api/tasks/{task.pk}/logs?search=a%00b")
    assert response.status_code == 400
    assert "search" in response.json()["errors"]


def test_search_finds_non_ascii_text_in_the_context(owner_client, task):
    task.log_entries.create(message="Imported", context={"city": "Café Zürich"})
    body = _get(owner_client, task, "search=caf%C3%A9")
    assert [e["context"] for e in body["entries"]] == [{"city": "Café Zürich"}]
