from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils.module_loading import import_string

from tasks_app import live, presenter
from tasks_app.models import LogLevel, Task
from tasks_app.tasklog import TaskLog
from tests.tasks_app.conftest import KIND, PARAMS

pytestmark = pytest.mark.django_db(transaction=True)

# The project's ASGI application, as daphne serves it (routing, auth, origin check).
application = import_string(settings.ASGI_APPLICATION)


def _cookie_for(username: str) -> bytes:
    user = User.objects.create_user(username, password="pw-123456")
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def _connect(path: str, cookie: bytes | None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    return communicator


async def test_anonymous_sockets_are_refused():
    for path in ["/ws/tasks/", "/ws/tasks/1/status", "/ws/tasks/1/logs"]:
        communicator = await _connect(path, None)
        connected, code = await communicator.connect()
        assert not connected
        assert code == 4401


async def test_a_foreign_origin_is_refused():
    cookie = await sync_to_async(_cookie_for)("alice")
    communicator = WebsocketCommunicator(
        application,
        "/ws/tasks/",
        headers=[(b"origin", b"http://evil.example"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.parametrize(
    "origin",
    [
        b"http://localhost:9000",  # another service on this machine
        b"https://localhost",  # another scheme
        b"http://localhost.evil.example",
        b"null",
    ],
)
async def test_only_this_very_site_may_open_a_socket(origin):
    """Scheme, host and port must all be the app's own (the Host the browser used)."""
    cookie = await sync_to_async(_cookie_for)("alice")
    communicator = WebsocketCommunicator(
        application,
        "/ws/tasks/",
        headers=[(b"origin", origin), (b"host", b"localhost"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert not connected
    same_port = WebsocketCommunicator(
        application,
        "/ws/tasks/",
        headers=[
            (b"origin", b"http://localhost:8000"),
            (b"host", b"localhost:8000"),
            (b"cookie", cookie),
        ],
    )
    connected, _ = await same_port.connect()
    assert connected
    await same_port.disconnect()


async def test_an_unknown_socket_path_is_refused_cleanly(caplog):
    cookie = await sync_to_async(_cookie_for)("alice")
    for path in ["/ws/nope", "/ws/tasks/abc/logs", "/elsewhere"]:
        communicator = await _connect(path, cookie)
        connected, _ = await communicator.connect()
        assert not connected
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_history_sockets_receive_row_updates():
    cookie = await sync_to_async(_cookie_for)("alice")
    communicator = await _connect("/ws/tasks/", cookie)
    assert (await communicator.connect())[0]
    task = await Task.objects.acreate(kind=KIND, params=PARAMS)
    await sync_to_async(live.on_task_changed)(Task, task, created=True)
    html = await communicator.receive_from(timeout=2)
    assert f'id="task-{task.pk}"' in html
    assert 'hx-swap-oob="true"' in html
    assert 'data-version="1"' in html
    assert "dev → prod" in html and "Sales" in html
    await communicator.disconnect()


async def test_a_filtered_history_socket_removes_rows_that_leave_the_filter():
    cookie = await sync_to_async(_cookie_for)("alice")
    communicator = await _connect("/ws/tasks/?status=PENDING", cookie)
    assert (await communicator.connect())[0]
    task = await Task.objects.acreate(kind=KIND, status="PENDING")
    await sync_to_async(live.on_task_changed)(Task, task, created=True)
    assert 'data-status="PENDING"' in await communicator.receive_from(timeout=2)
    # The status change itself publishes (no manual publish here).
    await sync_to_async(task.start)("w1")
    # Versioned like the rows: a late PENDING row must not bring it back.
    assert (
        await communicator.receive_from(timeout=2)
        == f'<tr id="task-{task.pk}" data-version="2" hx-swap-oob="delete"></tr>'
    )
    assert await communicator.receive_nothing(timeout=0.3)  # and only once
    await communicator.disconnect()


async def test_status_sockets_send_the_badge_or_json():
    cookie = await sync_to_async(_cookie_for)("alice")
    task = await Task.objects.acreate(kind=KIND)
    html_socket = await _connect(f"/ws/tasks/{task.pk}/status", cookie)
    json_socket = await _connect(f"/ws/tasks/{task.pk}/status?format=json", cookie)
    assert (await html_socket.connect())[0]
    assert (await json_socket.connect())[0]
    await sync_to_async(task.start)("w1")  # publishes by itself
    html = await html_socket.receive_from(timeout=2)
    assert f'id="task-{task.pk}-status"' in html and "Running" in html
    assert 'data-version="2"' in html
    assert json.loads(await json_socket.receive_from(timeout=2)) == {
        "event": "task.status",
        "id": task.pk,
        "status": "RUNNING",
        "kind": "chore",
        "version": 2,
    }
    await html_socket.disconnect()
    await json_socket.disconnect()


async def test_a_late_older_state_reaches_listeners_with_its_older_version():
    """Two processes publish about one task in no particular order (the web
    process that queued it, the worker that started it): the state each sends
    carries the version of its change, so the receiver keeps the newest."""
    cookie = await sync_to_async(_cookie_for)("alice")
    task = await Task.objects.acreate(kind=KIND, params={"items": []})
    queued = await Task.objects.select_related("owner").aget(pk=task.pk)  # PENDING, version 1
    paths = [
        "/ws/tasks/",
        "/ws/tasks/?format=json",
        f"/ws/tasks/{task.pk}/status",
        f"/ws/tasks/{task.pk}/status?format=json",
    ]
    rows, rows_json, badge, badge_json = [await _connect(p, cookie) for p in paths]
    for communicator in (rows, rows_json, badge, badge_json):
        assert (await communicator.connect())[0]

    await sync_to_async(task.start)("w1")  # the worker's RUNNING comes first...
    await sync_to_async(live.on_task_changed)(Task, queued, created=True)  # ...PENDING late

    newer, older = await rows.receive_from(timeout=2), await rows.receive_from(timeout=2)
    assert 'data-status="RUNNING" data-version="2"' in newer
    assert 'data-status="PENDING" data-version="1"' in older
    newer, older = await badge.receive_from(timeout=2), await badge.receive_from(timeout=2)
    assert f'id="task-{task.pk}-status"' in newer and 'data-version="2"' in newer
    assert f'id="task-{task.pk}-status"' in older and 'data-version="1"' in older
    for communicator in (rows_json, badge_json):
        first = json.loads(await communicator.receive_from(timeout=2))
        second = json.loads(await communicator.receive_from(timeout=2))
        assert (first["status"], first["version"]) == ("RUNNING", 2)
        assert (second["status"], second["version"]) == ("PENDING", 1)
        # What a JSON client does: the newest version is the task's state.
        assert max((first, second), key=lambda m: m["version"])["status"] == "RUNNING"
    for communicator in (rows, rows_json, badge, badge_json):
        await communicator.disconnect()


async def test_unknown_task_sockets_are_closed():
    cookie = await sync_to_async(_cookie_for)("alice")
    for path in ["/ws/tasks/999999/status", "/ws/tasks/999999/logs"]:
        communicator = await _connect(path, cookie)
        connected, code = await communicator.connect()
        assert not connected and code == 4404


async def test_log_sockets_deliver_each_new_entry_as_an_appending_fragment():
    cookie = await sync_to_async(_cookie_for)("alice")
    task = await Task.objects.acreate(kind=KIND)
    communicator = await _connect(f"/ws/tasks/{task.pk}/logs", cookie)
    assert (await communicator.connect())[0]
    log = TaskLog(task, secrets=["hunter2"])
    entry = await sync_to_async(log.warning)("Slow target with hunter2", seconds=12)
    html = await communicator.receive_from(timeout=2)
    # The viewer's list gets the entry appended (htmx out-of-band swap).
    assert html.startswith(f'<ol id="log-entries-{task.pk}" hx-swap-oob="beforeend">')
    assert f'<li id="log-entry-{entry.pk}" class="log-entry level-warning"' in html
    assert "Slow target with [redacted]" in html and "hunter2" not in html
    assert "&quot;seconds&quot;: 12" in html
    assert html.rstrip().endswith("</li></ol>")
    await communicator.disconnect()


async def test_log_sockets_follow_the_viewers_filters_and_speak_json():
    cookie = await sync_to_async(_cookie_for)("alice")
    task = await Task.objects.acreate(kind=KIND)
    errors_only = await _connect(f"/ws/tasks/{task.pk}/logs?level=error", cookie)
    searching = await _connect(f"/ws/tasks/{task.pk}/logs?search=PROD", cookie)
    as_json = await _connect(f"/ws/tasks/{task.pk}/logs?format=json", cookie)
    for communicator in (errors_only, searching, as_json):
        assert (await communicator.connect())[0]
    log = TaskLog(task)
    info = await sync_to_async(log.info)("Importing", environment="prod-eu")
    error = await sync_to_async(log.error)("Import failed")

    assert f"log-entry-{error.pk}" in await errors_only.receive_from(timeout=2)
    assert await errors_only.receive_nothing(timeout=0.2)
    assert f"log-entry-{info.pk}" in await searching.receive_from(timeout=2)
    assert await searching.receive_nothing(timeout=0.2)
    first = json.loads(await as_json.receive_from(timeout=2))
    assert first == {
        "event": "log.entry",
        "id": info.pk,
        "timestamp": info.timestamp.isoformat(),
        "level": "INFO",
        "message": "Importing",
        "context": {"environment": "prod-eu"},
    }
    assert json.loads(await as_json.receive_from(timeout=2))["level"] == LogLevel.ERROR.label
    for communicator in (errors_only, searching, as_json):
        await communicator.disconnect()


async def test_an_entry_is_rendered_once_whatever_the_number_of_viewers(monkeypatch):
    cookie = await sync_to_async(_cookie_for)("alice")
    task = await Task.objects.acreate(kind=KIND)
    sockets = [await _connect(f"/ws/tasks/{task.pk}/logs", cookie) for _ in range(3)]
    for communicator in sockets:
        assert (await communicator.connect())[0]
    rendered = []
    original = presenter.render_log_entry
    monkeypatch.setattr(
        presenter,
        "render_log_entry",
        lambda entry: rendered.append(entry.pk) or original(entry),
    )
    entry = await sync_to_async(TaskLog(task).info)("Once")
    for communicator in sockets:
        assert f"log-entry-{entry.pk}" in await communicator.receive_from(timeout=2)
        await communicator.disconnect()
    assert rendered == [entry.pk]
