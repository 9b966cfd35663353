from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from migrator.asgi import application
from tasks_app import live
from tasks_app.models import Task

pytestmark = pytest.mark.django_db(transaction=True)


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
    for path in ["/ws/tasks/", "/ws/tasks/1/status"]:
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


async def test_history_sockets_receive_row_updates():
    cookie = await sync_to_async(_cookie_for)("alice")
    communicator = await _connect("/ws/tasks/", cookie)
    assert (await communicator.connect())[0]
    task = await Task.objects.acreate(
        kind="migration",
        params={
            "source": {"name": "dev"},
            "target": {"name": "prod"},
            "dashboards": [{"id": 1, "title": "Sales"}],
        },
    )
    await sync_to_async(live._publish_task)(task.pk, True)
    html = await communicator.receive_from(timeout=2)
    assert f'id="task-{task.pk}"' in html
    assert 'hx-swap-oob="true"' in html
    assert "dev → prod" in html and "Sales" in html
    await communicator.disconnect()


async def test_a_filtered_history_socket_removes_rows_that_leave_the_filter():
    cookie = await sync_to_async(_cookie_for)("alice")
    communicator = await _connect("/ws/tasks/?status=PENDING", cookie)
    assert (await communicator.connect())[0]
    task = await Task.objects.acreate(kind="migration", status="PENDING")
    await sync_to_async(live._publish_task)(task.pk, True)
    assert 'data-status="PENDING"' in await communicator.receive_from(timeout=2)
    await sync_to_async(task.start)("w1")
    await sync_to_async(live._publish_task)(task.pk, False)
    assert (
        await communicator.receive_from(timeout=2)
        == f'<tr id="task-{task.pk}" hx-swap-oob="delete"></tr>'
    )
    await communicator.disconnect()


async def test_status_sockets_send_the_badge_or_json():
    cookie = await sync_to_async(_cookie_for)("alice")
    task = await Task.objects.acreate(kind="migration")
    html_socket = await _connect(f"/ws/tasks/{task.pk}/status", cookie)
    json_socket = await _connect(f"/ws/tasks/{task.pk}/status?format=json", cookie)
    assert (await html_socket.connect())[0]
    assert (await json_socket.connect())[0]
    await sync_to_async(task.start)("w1")
    await sync_to_async(live._publish_task)(task.pk, False)
    html = await html_socket.receive_from(timeout=2)
    assert f'id="task-{task.pk}-status"' in html and "Running" in html
    assert json.loads(await json_socket.receive_from(timeout=2)) == {
        "event": "task.status",
        "id": task.pk,
        "status": "RUNNING",
        "kind": "migration",
    }
    await html_socket.disconnect()
    await json_socket.disconnect()


async def test_unknown_task_sockets_are_closed():
    cookie = await sync_to_async(_cookie_for)("alice")
    communicator = await _connect("/ws/tasks/999999/status", cookie)
    connected, code = await communicator.connect()
    assert not connected and code == 4404
