"""Publishing to a cross-process channel layer never blocks nor breaks the publisher."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.layers import BaseChannelLayer, InMemoryChannelLayer
from channels.testing import WebsocketCommunicator

from tasks_app import live, watchdog

HANGING = {"BACKEND": "tests.tasks_app.test_live.HangingLayer"}


class _FakeRedis(BaseChannelLayer):
    """A cross-process layer (not the in-memory one): consumers work through an
    in-memory layer inside, sends go where each fake says."""

    extensions = ["groups"]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inner = InMemoryChannelLayer()

    async def new_channel(self, prefix="specific."):
        return await self.inner.new_channel(prefix)

    async def receive(self, channel):
        return await self.inner.receive(channel)

    async def send(self, channel, message):
        await self.inner.send(channel, message)

    async def group_add(self, group, channel):
        await self.inner.group_add(group, channel)

    async def group_discard(self, group, channel):
        await self.inner.group_discard(group, channel)


class HangingLayer(_FakeRedis):
    """A Redis that accepts and never answers."""

    async def group_send(self, group, message):
        await asyncio.sleep(3600)


class StuckLayer(_FakeRedis):
    """A Redis that holds every send until the test lets go (then refuses it)."""

    let_go = threading.Event()
    taken = 0

    async def group_send(self, group, message):
        StuckLayer.taken += 1
        await asyncio.get_running_loop().run_in_executor(None, StuckLayer.let_go.wait)
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")


class DownLayer(_FakeRedis):
    """A Redis that is down: every call fails, until it is "up" again."""

    up = False
    sent: list[str] = []

    async def group_send(self, group, message):
        if not DownLayer.up:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")
        DownLayer.sent.append(group)

    async def group_add(self, group, channel):
        if not DownLayer.up:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")
        await super().group_add(group, channel)


@pytest.fixture(autouse=True)
def fresh_publisher(monkeypatch):
    """Each test gets its own publisher (the one of the process keeps its outage count)."""
    monkeypatch.setattr(live, "_publisher_instance", None)


@pytest.fixture
def fast_timeout(monkeypatch):
    monkeypatch.setattr(live, "PUBLISH_TIMEOUT", 0.2)


def test_a_stuck_channel_layer_does_not_block_the_publisher(settings, caplog):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.tasks_app.test_live.StuckLayer"}}
    StuckLayer.let_go.clear()
    StuckLayer.taken = 0
    sender = threading.Thread(
        target=lambda: [live.send("tasks", {"type": "task.changed", "n": n}) for n in range(5)]
    )
    sender.start()
    sender.join(timeout=30)  # were it blocking, it would wait for let_go, forever
    assert not sender.is_alive()  # the caller only queued them...
    assert StuckLayer.taken <= 1  # ...while the layer still holds the first
    StuckLayer.let_go.set()
    assert live.flush(timeout=10)
    assert StuckLayer.taken == 5
    warnings = [r for r in caplog.records if "Could not publish" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per message


def test_a_layer_that_never_answers_is_given_up_on(settings, fast_timeout, caplog):
    settings.CHANNEL_LAYERS = {"default": HANGING}
    for n in range(3):
        live.send("tasks", {"type": "task.changed", "n": n})
    assert live.flush(timeout=10)  # each gave up after PUBLISH_TIMEOUT
    warnings = [r for r in caplog.records if "Could not publish" in r.getMessage()]
    assert len(warnings) == 1


def test_publishing_resumes_when_the_layer_comes_back(settings, caplog):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.tasks_app.test_live.DownLayer"}}
    DownLayer.up, DownLayer.sent = False, []
    caplog.set_level(logging.WARNING, logger="tasks_app.live")
    live.send("tasks", {"type": "x"})
    live.send("tasks", {"type": "x"})
    assert live.flush(timeout=5)
    DownLayer.up = True
    live.send("task-1", {"type": "x"})
    assert live.flush(timeout=5)
    assert DownLayer.sent == ["task-1"]
    assert "Live updates flow again after 2 failed publish(es)." in caplog.text


def test_the_backlog_is_bounded(monkeypatch):
    monkeypatch.setattr(live, "PUBLISH_BACKLOG", 3)
    StuckLayer.let_go.clear()
    publisher = live._Publisher()
    layer = StuckLayer()
    for n in range(10):
        publisher.submit(layer, "tasks", {"n": n})
    assert publisher.dropped >= 6  # at most one taken by the layer, three waiting
    StuckLayer.let_go.set()
    assert publisher.flush(timeout=10)


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_is_refused_while_the_layer_is_down(settings):
    from tests.tasks_app.test_consumers import _connect, _cookie_for, application

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.tasks_app.test_live.DownLayer"}}
    cookie = await sync_to_async(_cookie_for)("alice")
    DownLayer.up = False
    communicator = await _connect("/ws/tasks/", cookie)
    connected, _ = await communicator.connect()
    assert not connected  # the browser retries later, polling meanwhile
    DownLayer.up = True
    communicator = WebsocketCommunicator(
        application, "/ws/tasks/", headers=communicator.scope["headers"]
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


async def test_losing_the_layer_closes_the_sockets_so_browsers_reconnect():
    closed: list[int] = []

    class Consumer:
        async def close(self, code=None):
            closed.append(code)

    consumers = [Consumer(), Consumer()]
    for consumer in consumers:
        watchdog._consumers.add(consumer)
    await watchdog._close_consumers("Lost the channel layer (Redis)")
    assert closed == [watchdog.CLOSE_RECONNECT] * 2 == [4503, 4503]
    assert not watchdog._consumers


@pytest.mark.django_db
def test_each_change_is_published_as_it_left_the_task(
    monkeypatch, django_capture_on_commit_callbacks
):
    """Not the row as it is at commit: two changes in one transaction are two
    messages, each with its own status and version, in the order made."""
    from tasks_app import engine

    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(live, "send", lambda group, message: sent.append((group, message)))
    monkeypatch.setattr(live, "listened", lambda group: True)  # the history and a task page
    with django_capture_on_commit_callbacks(execute=True):
        task = engine.submit("probe", owner=None, params={})
        task.start("w1")
        task.succeed()
    summaries = [m["task"] for group, m in sent if group == live.HISTORY_GROUP]
    assert [(s["status"], s["version"]) for s in summaries] == [
        ("PENDING", 1),
        ("RUNNING", 2),
        ("SUCCESS", 3),
    ]
    rows = [m["row"] for group, m in sent if group == live.HISTORY_GROUP]
    assert 'data-status="RUNNING" data-version="2"' in rows[1]
    badges = [m["html"] for group, m in sent if group == live.task_group(task.pk)]
    assert [b.count('data-version="3"') for b in badges] == [0, 0, 1]


async def test_a_socket_accepted_while_redis_is_away_is_closed_at_the_next_failed_check(
    monkeypatch,
):
    """Redis comes back for a moment that no check sees (a socket is accepted
    then), and goes again: that socket is closed too, not left deaf."""
    from redis import asyncio as aioredis

    answers = iter(["run-1"])  # one healthy check, then Redis is away for good

    class FakeRedis:
        async def info(self, section):
            run_id = next(answers, None)
            if run_id is None:
                raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")
            return {"run_id": run_id}

        async def aclose(self):
            pass

    class Consumer:
        def __init__(self, name: str) -> None:
            self.name = name

        async def close(self, code=None):
            closed.append((self.name, code))

    async def closing(name: str) -> None:
        for _ in range(1000):
            if any(n == name for n, _ in closed):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{name} was never closed: {closed}")

    monkeypatch.setattr(aioredis.Redis, "from_url", staticmethod(lambda *a, **k: FakeRedis()))
    monkeypatch.setattr(watchdog, "LAYER_CHECK_INTERVAL", 0.01)
    closed: list[tuple[str, int]] = []
    first, second = Consumer("first"), Consumer("second")
    watchdog._consumers.add(first)
    watcher = asyncio.create_task(watchdog._watch_layer("redis://127.0.0.1:6379/0"))
    try:
        await closing("first")
        watchdog._consumers.add(second)  # its group_add got through: Redis answered then
        await closing("second")
    finally:
        watcher.cancel()
        watchdog._consumers.clear()
    assert closed == [("first", 4503), ("second", 4503)]


@pytest.mark.django_db
def test_what_nobody_listens_to_is_neither_rendered_nor_sent(
    monkeypatch, django_capture_on_commit_callbacks
):
    """The in-memory layer (embedded mode) knows who listens: a change nobody would
    receive costs the worker no rendering. Here only the history listens."""
    from channels.layers import get_channel_layer

    from tasks_app import engine, presenter

    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    rendered: list[str] = []
    for name in ("render_row", "render_status", "render_log_entry"):
        real = getattr(presenter, name)
        monkeypatch.setattr(
            presenter, name, lambda obj, real=real, name=name: rendered.append(name) or real(obj)
        )
    sent: list[str] = []
    monkeypatch.setattr(live, "send", lambda group, message: sent.append(group))
    monkeypatch.setattr(layer, "groups", {})
    with django_capture_on_commit_callbacks(execute=True):
        task = engine.submit("probe", owner=None, params={})
        engine.TaskLog(task).info("Nobody reads this yet")
    assert (rendered, sent) == ([], [])

    monkeypatch.setattr(layer, "groups", {live.HISTORY_GROUP: {"specific.a!b": 0}})
    with django_capture_on_commit_callbacks(execute=True):
        task.start("w1")
        engine.TaskLog(task).info("Nor this")
    assert (rendered, sent) == (["render_row"], [live.HISTORY_GROUP])
    assert live.listened(live.HISTORY_GROUP) and not live.listened(live.task_group(task.pk))
