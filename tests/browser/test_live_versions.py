"""Live updates arrive in no guaranteed order; the page keeps the newest.

Several processes publish about one task (the one that queued it, the worker
that runs it), so a late message can carry an older state. Here the test
owns the table's WebSocket (proxied through Playwright) and the rows
endpoint, and delivers real older fragments of a task after its final one.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.browser.helpers import BrowserApp, login

pytestmark = pytest.mark.browser

MISSING_DASHBOARD = 987654321  # the task fails at once: PENDING, RUNNING, FAILED

# Counts the table's messages that carry a given marker, once htmx has swapped them.
COUNT_MARKED = """() => {
  window.__handled = {};
  document.addEventListener('htmx:wsAfterMessage', (e) => {
    const mark = /<!-- (mark-\\d+) -->/.exec(e.detail.message || '');
    if (mark) window.__handled[mark[1]] = true;
  });
}"""


def _version(fragment: str) -> int:
    return int(re.search(r'data-version="(\d+)"', fragment).group(1))


def test_an_older_update_arriving_late_never_replaces_a_newer_one(
    page: Page, browser_app: BrowserApp
) -> None:
    frames: list[str] = []
    sockets: list[WebSocketRoute] = []

    def proxy(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        sockets.append(ws)

        def relay(message: str | bytes) -> None:
            frames.append(message if isinstance(message, str) else message.decode())
            ws.send(message)

        server.on_message(relay)
        ws.on_message(server.send)

    # Only the table's socket (not the header's "?view=notify" one).
    page.route_web_socket(lambda url: url.endswith("/ws/tasks/"), proxy)
    login(page)
    expect(page.locator("[data-live-state]")).to_have_text("live", timeout=10_000)
    page.evaluate(COUNT_MARKED)
    marks = iter(range(1, 100))

    def push(fragment: str) -> None:
        """Deliver ``fragment`` as the server would, and wait until htmx handled it."""
        mark = f"mark-{next(marks)}"
        sockets[-1].send(f"<!-- {mark} -->{fragment}")
        page.wait_for_function(f"window.__handled['{mark}'] === true")

    task_id = browser_app.start_migration([MISSING_DASHBOARD])["id"]
    row = page.locator(f"tr#task-{task_id}")
    expect(row).to_have_attribute("data-status", "FAILED", timeout=60_000)
    rows = {_version(f): f for f in frames if f'<tr id="task-{task_id}"' in f}
    newest, oldest = max(rows), min(rows)
    assert 'data-status="PENDING"' in rows[oldest] and newest > oldest
    expect(row).to_have_attribute("data-version", str(newest))

    def shows_the_newest() -> None:
        expect(row).to_have_attribute("data-status", "FAILED")
        expect(row).to_have_attribute("data-version", str(newest))
        expect(page.locator(f"#task-{task_id}-status")).to_have_text("Failed")

    # Pushed late: the PENDING row, as the process that queued the task might.
    push(rows[oldest])
    shows_the_newest()

    # Polled: the rows endpoint answering with that row (a poll sent before
    # the last change, answered after it).
    stale_page = rows[oldest].replace(' hx-swap-oob="true"', "")
    page.route(
        re.compile(r"/tasks/rows/"),
        lambda route: route.fulfill(status=200, content_type="text/html", body=stale_page),
    )
    page.evaluate(
        "() => htmx.ajax('GET', '/tasks/rows/?limit=10', {target: '#task-rows', swap: 'innerHTML'})"
    )
    shows_the_newest()

    # Removed (it left the table's filter), then an older row arrives: it does
    # not come back. The newest one is still welcome.
    push(f'<tr id="task-{task_id}" data-version="{newest}" hx-swap-oob="delete"></tr>')
    expect(row).to_have_count(0)
    push(rows[oldest])
    expect(row).to_have_count(0)
    push(rows[newest])
    shows_the_newest()
