"""The log viewer: the modal, the page without JavaScript, its fragments, downloads."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext

from tasks_app import logs
from tasks_app.models import LogLevel, Status, Task, TaskLogEntry
from tasks_app.tasklog import TaskLog
from tests.tasks_app.conftest import KIND, make_task

pytestmark = pytest.mark.django_db

LEVELS = [LogLevel.DEBUG, LogLevel.INFO, LogLevel.WARNING, LogLevel.ERROR]
HTMX = {"HTTP_HX_REQUEST": "true"}


def _entries(task: Task, n: int, start: int = 0) -> list[int]:
    TaskLogEntry.objects.bulk_create(
        TaskLogEntry(task=task, level=LEVELS[i % 4], message=f"step {i}", context={"i": i})
        for i in range(start, start + n)
    )
    return list(task.log_entries.order_by("id").values_list("id", flat=True))


def _shown(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li id="log-entry-(\d+)"', html)]


# --- one click from the history ------------------------------------------


@pytest.mark.parametrize("status", [s.value for s in Status])
def test_every_row_opens_the_log_modal_in_one_click(owner_client, owner, status):
    task = make_task(status, owner=owner)
    html = owner_client.get("/").content.decode()
    link = re.search(rf'<a href="/tasks/{task.pk}/logs"[^>]*>View logs</a>', html)
    assert link, "each row has a View logs link (an href for no-JS)"
    assert f'hx-get="/tasks/{task.pk}/logs"' in link.group(0)
    assert 'hx-target="#modal-root"' in link.group(0)


def test_the_modal_holds_the_newest_entries_live(owner_client, task):
    ids = _entries(task, 250)
    response = owner_client.get(f"/tasks/{task.pk}/logs", HTTP_HX_TARGET="modal-root", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<dialog id="modal"')
    assert 'aria-labelledby="modal-title"' in html and 'aria-label="Close the log"' in html
    assert "data-close-modal" in html and "autofocus" in html
    assert _shown(html) == ids[-200:]
    assert f'ws-connect="/ws/tasks/{task.pk}/logs"' in html
    assert f'data-follow-url="/tasks/{task.pk}/logs/entries"' in html
    assert f'hx-get="/tasks/{task.pk}/logs/entries?before={ids[50]}"' in html
    assert "dev → prod" in html
    assert {"HX-Request", "HX-Target"} <= {v.strip() for v in response["Vary"].split(",")}


def test_an_entry_shows_time_level_message_and_context(owner_client, task):
    log = TaskLog(task)
    log.info("Exported a bundle", bytes=5194, files={"charts": 3})
    log.warning("Slow answer")
    log.error("Import failed", body={f"key{i}": "x" * 20 for i in range(30)})
    log.debug("Detail")
    html = owner_client.get(f"/tasks/{task.pk}/logs").content.decode()
    entry = task.log_entries.first()
    assert f'<time datetime="{entry.timestamp.isoformat()}" data-local>' in html
    assert entry.timestamp.strftime("%Y-%m-%d %H:%M:%S") in html  # fallback text without JS
    for level in ("info", "warning", "error", "debug"):
        assert f'class="log-entry level-{level}"' in html
    assert '<span class="level">WARNING</span>' in html
    assert '<pre class="context">{\n  &quot;bytes&quot;: 5194,\n  &quot;files&quot;: {' in html
    # A long context is collapsed.
    assert '<details class="context"><summary>Context</summary><pre>{\n  &quot;body&quot;' in html


def test_the_page_works_without_javascript(owner_client, task):
    ids = _entries(task, 450)
    response = owner_client.get(f"/tasks/{task.pk}/logs")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert _shown(html) == ids[-200:]
    # Plain links and a plain form: earlier pages, filters, downloads.
    assert f'<a class="button small-button" href="/tasks/{task.pk}/logs?before={ids[250]}"' in html
    assert f'<form class="filter" method="get" action="/tasks/{task.pk}/logs"' in html
    assert '<button type="submit">Apply</button>' in html
    assert f'href="/tasks/{task.pk}/logs/download?format=text"' in html
    assert f'href="/tasks/{task.pk}/logs/download?format=jsonl"' in html

    earlier = owner_client.get(f"/tasks/{task.pk}/logs?before={ids[250]}").content.decode()
    assert _shown(earlier) == ids[50:250]
    assert f'href="/tasks/{task.pk}/logs?before={ids[50]}"' in earlier
    assert f'href="/tasks/{task.pk}/logs?after={ids[249]}">Newer entries</a>' in earlier
    assert f"/ws/tasks/{task.pk}/logs" not in earlier  # an older window is not followed live

    first = owner_client.get(f"/tasks/{task.pk}/logs?before={ids[50]}").content.decode()
    assert _shown(first) == ids[:50]
    assert "Load earlier" not in first


def test_the_page_filters_without_javascript(owner_client, task):
    _entries(task, 40)
    html = owner_client.get(f"/tasks/{task.pk}/logs?level=error&search=step+3").content.decode()
    shown = TaskLogEntry.objects.filter(pk__in=_shown(html))
    assert all(e.level == LogLevel.ERROR and "step 3" in e.message for e in shown)
    assert [e.message for e in shown.order_by("id")] == ["step 3", "step 31", "step 35", "step 39"]
    assert '<option value="ERROR" selected>' in html
    assert 'value="step 3"' in html
    # Links keep the filters.
    assert "download?format=text&amp;level=ERROR&amp;search=step+3" in html
    assert f'ws-connect="/ws/tasks/{task.pk}/logs?level=ERROR&amp;search=step+3"' in html


def test_no_match_and_empty_logs_say_so(owner_client, task):
    assert "No log entries yet." in owner_client.get(f"/tasks/{task.pk}/logs").content.decode()
    _entries(task, 3)
    html = owner_client.get(f"/tasks/{task.pk}/logs?search=nothing").content.decode()
    assert "No entries match." in html


def test_bad_parameters_still_render_the_log_with_a_400(owner_client, task):
    ids = _entries(task, 5)
    response = owner_client.get(f"/tasks/{task.pk}/logs?level=LOUD&limit=0")
    assert response.status_code == 400
    html = response.content.decode()
    assert _shown(html) == ids
    assert "level:" in html and "limit:" in html


# --- fragments ------------------------------------------------------------


def test_the_filter_and_refresh_swap_the_viewer_alone(owner_client, task):
    _entries(task, 8)
    response = owner_client.get(
        f"/tasks/{task.pk}/logs?level=WARNING", HTTP_HX_TARGET=f"log-viewer-{task.pk}", **HTMX
    )
    html = response.content.decode()
    assert html.lstrip().startswith(f'<section id="log-viewer-{task.pk}"')
    assert "<dialog" not in html
    assert len(_shown(html)) == 4


def test_load_earlier_returns_the_older_page_and_its_own_link(owner_client, task):
    ids = _entries(task, 450)
    response = owner_client.get(f"/tasks/{task.pk}/logs/entries?before={ids[250]}", **HTMX)
    html = response.content.decode()
    assert "<html" not in html and "<section" not in html
    assert _shown(html) == ids[50:250]
    assert html.lstrip().startswith(f'<li id="log-earlier-{task.pk}"')
    assert f'hx-get="/tasks/{task.pk}/logs/entries?before={ids[50]}"' in html


def test_newer_entries_come_without_an_earlier_link(owner_client, task):
    ids = _entries(task, 30)
    html = owner_client.get(
        f"/tasks/{task.pk}/logs/entries?after={ids[20]}&limit=5", **HTMX
    ).content.decode()
    assert _shown(html) == ids[21:26]
    assert "log-earlier" not in html
    nothing = owner_client.get(f"/tasks/{task.pk}/logs/entries?after={ids[-1]}", **HTMX)
    assert nothing.status_code == 200 and nothing.content.strip() == b""


def test_entries_without_htmx_go_to_the_page(owner_client, task):
    response = owner_client.get(f"/tasks/{task.pk}/logs/entries?before=5&level=INFO")
    assert response.status_code == 302
    assert response["Location"] == f"/tasks/{task.pk}/logs?before=5&level=INFO"


def test_the_task_page_uses_the_paged_viewer(owner_client, task):
    ids = _entries(task, 250)
    html = owner_client.get(f"/tasks/{task.pk}/").content.decode()
    assert _shown(html) == ids[-200:]
    assert f'id="log-viewer-{task.pk}"' in html
    assert f"before={ids[50]}" in html
    assert f'href="/tasks/{task.pk}/logs"' in html


# --- downloads ------------------------------------------------------------


def test_it_downloads_the_whole_log_as_text(owner_client, task):
    ids = _entries(task, logs.EXPORT_CHUNK + 5)
    TaskLog(task).info("two\nlines", where="prod")
    response = owner_client.get(f"/tasks/{task.pk}/logs/download?format=text")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="task-{task.pk}-log.txt"'
    text = b"".join(response.streaming_content).decode()
    lines = text.splitlines()
    assert len(lines) == len(ids) + 2
    assert re.match(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00 DEBUG   step 0 \{\"i\": 0\}$", lines[0]
    )
    assert lines[-2].endswith("INFO    two")
    assert lines[-1] == '    lines {"where": "prod"}'


def test_it_downloads_json_lines_with_the_filters(owner_client, task):
    _entries(task, 40)
    response = owner_client.get(f"/tasks/{task.pk}/logs/download?format=jsonl&level=ERROR")
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"].endswith(f'filename="task-{task.pk}-log.jsonl"')
    rows = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert len(rows) == 10
    assert set(rows[0]) == {"id", "timestamp", "level", "message", "context"}
    assert {r["level"] for r in rows} == {"ERROR"}
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_download_is_streamed_chunk_by_chunk(owner):
    task = await Task.objects.acreate(kind=KIND)
    await TaskLogEntry.objects.abulk_create(
        TaskLogEntry(task=task, message=f"line {i}") for i in range(logs.EXPORT_CHUNK * 2 + 1)
    )
    client = AsyncClient()
    await client.aforce_login(owner)
    response = await client.get(f"/tasks/{task.pk}/logs/download?format=text")
    assert response.status_code == 200
    chunks = [chunk async for chunk in response.streaming_content]
    assert len(chunks) == 3
    assert b"".join(chunks).count(b"\n") == logs.EXPORT_CHUNK * 2 + 1


def test_a_bad_download_format_is_refused(owner_client, task):
    assert owner_client.get(f"/tasks/{task.pk}/logs/download?format=pdf").status_code == 400
    assert owner_client.get(f"/tasks/{task.pk}/logs/download?level=LOUD").status_code == 400


# --- access and cost ------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(client, task):
    for url in ["logs", "logs/entries?before=3", "logs/download?format=text"]:
        response = client.get(f"/tasks/{task.pk}/{url}")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_unknown_tasks_are_404(owner_client):
    for url in ["logs", "logs/download", "logs/entries"]:
        assert owner_client.get(f"/tasks/999999/{url}", **HTMX).status_code == 404


def test_the_query_count_does_not_grow_with_the_log(owner_client, task):
    def queries(url: str, **headers: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(url, **headers).status_code == 200
        return len(captured)

    ids = _entries(task, 5)
    urls = [
        (f"/tasks/{task.pk}/logs", {}),
        (f"/tasks/{task.pk}/logs", {"HTTP_HX_TARGET": "modal-root", **HTMX}),
        (f"/tasks/{task.pk}/", {}),
        (f"/tasks/{task.pk}/logs/entries?before={ids[3]}", HTMX),
        (f"/tasks/{task.pk}/logs/entries?after={ids[1]}", HTMX),
        (f"/tasks/{task.pk}/logs?level=ERROR&search=step", {}),
    ]
    small = [queries(url, **headers) for url, headers in urls]
    _entries(task, 3000, start=5)
    assert [queries(url, **headers) for url, headers in urls] == small
