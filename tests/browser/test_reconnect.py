"""The table catches up after its WebSocket was away (Redis or a web process restarted).

The socket is proxied through Playwright so the test decides what the page
misses: events are dropped (Redis pub/sub keeps nothing while it is away),
then the server closes the socket with 4503 as a web process does when it
loses Redis. The page must reconnect by itself and refresh its rows once.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.browser.helpers import BrowserApp, login

pytestmark = pytest.mark.browser


def test_the_table_catches_up_after_its_socket_comes_back(
    page: Page, browser_app: BrowserApp
) -> None:
    state = {"drop": False, "sockets": []}

    def proxy(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        state["sockets"].append(ws)
        server.on_message(lambda message: None if state["drop"] else ws.send(message))
        ws.on_message(server.send)

    # Only the table's socket (not the header's "?view=notify" one).
    page.route_web_socket(lambda url: url.endswith("/ws/tasks/"), proxy)
    login(page)
    expect(page.locator("[data-live-state]")).to_have_text("live", timeout=10_000)
    page.evaluate("window.__marker = 1")

    state["drop"] = True  # the events of this task are lost, as while Redis is away
    task = browser_app.start_migration([browser_app.dashboard_id])
    deadline = time.monotonic() + 30
    while browser_app.api.get(f"/api/tasks/{task['id']}").json()["status"] != "SUCCESS":
        assert time.monotonic() < deadline, "the migration did not finish"
        page.wait_for_timeout(200)
    row = page.locator(f"tr#task-{task['id']}")
    expect(row).to_have_count(0)  # the page missed all of it

    state["drop"] = False
    state["sockets"][-1].close(code=4503, reason="channel layer lost")
    expect(row).to_have_attribute("data-status", "SUCCESS", timeout=15_000)
    expect(page.locator("[data-live-state]")).to_have_text("live")
    assert len(state["sockets"]) == 2  # reconnected once, by itself
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
