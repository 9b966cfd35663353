"""The web side of a lost channel layer: WebSockets are closed so browsers catch up.

Redis pub/sub keeps no messages: while Redis is away (or restarting) every
event is lost, and a WebSocket that stays open would never know. So when a web
process loses Redis it closes its WebSockets (code 4503); the browser falls
back to polling, reconnects, and refreshes what it shows (static/js/app.js).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

logger = logging.getLogger("tasks_app.live")

# How often a web process checks that its channel layer (Redis) is reachable.
LAYER_CHECK_INTERVAL = 1.0
# WebSocket close code meaning "reconnect in a moment" (static/js/app.js does).
# Not 1012 "Service Restart": daphne (autobahn) only sends 1000 and 3000-4999.
CLOSE_RECONNECT = 4503

_consumers: weakref.WeakSet[Any] = weakref.WeakSet()
_watcher: asyncio.Task | None = None


def watch(consumer: Any) -> None:
    """Called by each connected consumer, inside the server's event loop."""
    global _watcher
    _consumers.add(consumer)
    url = getattr(settings, "CHANNEL_LAYER_URL", None)
    if not url or isinstance(get_channel_layer(), InMemoryChannelLayer):
        return
    loop = asyncio.get_running_loop()
    if _watcher is None or _watcher.done() or _watcher.get_loop() is not loop:
        _watcher = loop.create_task(_watch_layer(url))


async def _close_consumers(reason: str) -> None:
    consumers = list(_consumers)
    _consumers.clear()
    if consumers:
        logger.warning("%s: closing %d WebSocket(s) so browsers catch up", reason, len(consumers))
    for consumer in consumers:
        try:
            await consumer.close(code=CLOSE_RECONNECT)
        except Exception:
            logger.debug("Could not close a WebSocket", exc_info=True)


async def _watch_layer(url: str) -> None:
    from redis import asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    run_id = None  # Redis's id of its own process: a new one means it restarted
    healthy = True
    try:
        while True:
            await asyncio.sleep(LAYER_CHECK_INTERVAL)
            try:
                info = await asyncio.wait_for(client.info("server"), LAYER_CHECK_INTERVAL * 2)
                current = info.get("run_id") or "?"
            except Exception:  # noqa: BLE001 - any failure means "not reachable"
                current = None
            if current is None:
                # Every time, not only when it was healthy: a socket accepted in
                # a moment when Redis answered (between two checks that did not
                # see it) must not stay open, and deaf, while Redis is away.
                await _close_consumers("Lost the channel layer (Redis)")
                healthy = False
                continue
            if not healthy:
                logger.warning("The channel layer (Redis) answers again.")
            elif run_id is not None and current != run_id:
                await _close_consumers("The channel layer (Redis) restarted")
            healthy, run_id = True, current
    finally:
        await client.aclose()
