"""Tools of the scale tests: WebSocket listeners, a target that never answers, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websockets


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {what}")
        time.sleep(step)


@dataclass
class Received:
    at: float  # time.time() when it arrived
    data: dict[str, Any]


@dataclass
class Socket:
    path: str
    received: list[Received] = field(default_factory=list)
    close_code: int | None = None
    opened: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    error: str = ""

    def events(self, **match: Any) -> list[dict[str, Any]]:
        return [r.data for r in self.received if all(r.data.get(k) == v for k, v in match.items())]

    def versions(self, task_id: int) -> dict[int, str]:
        """The task's states received, status by version (one per change however
        often it came)."""
        return {e["version"]: e["status"] for e in self.events(id=task_id) if "version" in e}

    def statuses(self, task_id: int) -> list[str]:
        """The task's successive statuses in the order of their versions, not of
        arrival: processes publish in no particular order, the version says which
        change came first. A change that kept the status (e.g. the dashboards'
        titles filled in) is dropped."""
        changes: list[str] = []
        for _, status in sorted(self.versions(task_id).items()):
            if not changes or changes[-1] != status:
                changes.append(status)
        return changes

    def last_status(self, task_id: int) -> str | None:
        """What a browser shows after these messages: the status of the newest version."""
        versions = self.versions(task_id)
        return versions[max(versions)] if versions else None


class Listeners:
    """WebSocket clients (``?format=json``) in one background asyncio loop.

    Like a browser: the session cookie of a logged-in user and a same-origin
    ``Origin`` header. ``open(path, count=300)`` connects many at once.
    """

    def __init__(self, base_url: str, cookies: dict[str, str]) -> None:
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://")
        self.headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "Origin": base_url,
        }
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sockets: list[Socket] = []
        self._connections: list[Any] = []

    async def _listen(self, sock: Socket) -> None:
        try:
            async with websockets.connect(
                self.ws_url + sock.path,
                additional_headers=self.headers,
                open_timeout=30,
                max_queue=None,
            ) as ws:
                self._connections.append(ws)
                sock.opened.set()
                async for message in ws:
                    sock.received.append(Received(time.time(), json.loads(message)))
                sock.close_code = ws.close_code
        except websockets.ConnectionClosed as exc:
            sock.close_code = exc.rcvd.code if exc.rcvd else 1006
        except Exception as exc:
            sock.error = f"{type(exc).__name__}: {exc}"
        finally:
            sock.closed.set()

    def open(self, path: str, count: int = 1, timeout: float = 60) -> list[Socket]:
        """Connect ``count`` sockets to ``path``; returns once all are open (or failed)."""
        socks = [Socket(path) for _ in range(count)]
        self.sockets += socks
        for sock in socks:
            asyncio.run_coroutine_threadsafe(self._listen(sock), self.loop)
        deadline = time.monotonic() + timeout
        for sock in socks:
            while not (sock.opened.is_set() or sock.closed.is_set()):
                if time.monotonic() > deadline:
                    raise AssertionError(f"WebSocket {path} did not open within {timeout} s")
                time.sleep(0.01)
        return socks

    def one(self, path: str, timeout: float = 30) -> Socket:
        (sock,) = self.open(path, 1, timeout)
        if not sock.opened.is_set():
            raise AssertionError(f"WebSocket {path} refused: {sock.error or sock.close_code}")
        return sock

    def close(self) -> None:
        async def _close_all() -> None:
            await asyncio.gather(*(ws.close() for ws in self._connections), return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_close_all(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


class TcpProxy:
    """A TCP endpoint a Superset environment points at, with a switchable behaviour.

    ``hang``: accepts connections and never answers (a stuck target).
    ``forward``: relays to ``upstream`` (the real target).
    ``cut``: relays, but closes the connection when a request line containing
    ``cut_on`` goes by (the target went away in the middle of that request).
    ``stall``: relays, but a request containing ``cut_on`` is never passed on and
    never answered (the target hangs on that request only).
    """

    def __init__(self, upstream: tuple[str, int] | None = None, mode: str = "hang") -> None:
        self.upstream = upstream
        self.mode = mode
        self.cut_on = b""
        self.accepted = 0
        self.cuts = 0
        self.stalled = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            self._keep(client)
            if self.mode == "hang":
                continue  # read nothing, answer nothing
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._keep(upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_client and self.cut_on and self.cut_on in data:
                    if self.mode == "stall":
                        self.stalled += 1
                        return  # both sockets stay open; no answer ever comes
                    if self.mode == "cut":
                        self.cuts += 1
                        break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._running = False
        self.server.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]
