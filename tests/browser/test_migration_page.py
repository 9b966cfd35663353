"""The migration page as a user sees it: start a migration, follow it live, browse history."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.appserver import ADMIN, USER
from tests.browser.helpers import DASHBOARD_TITLE, BrowserApp, login
from tests.e2e.superset_servers import SupersetAdmin

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
# The README's picture; refreshed only when asked (UPDATE_SCREENSHOTS=1), so a
# test run does not leave a modified tracked file behind.
SCREENSHOT = (
    REPO / "docs" / "screenshot-migration.png"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else REPO / "test-results" / "screenshot-migration.png"
)
LIFECYCLE = ["PENDING", "RUNNING", "SUCCESS"]
FINAL = re.compile(r"^(SUCCESS|FAILED|CANCELLED)$")
MISSING_DASHBOARD = 987654321

# Records, per row that was not on the page when installed, the data-status values
# the row went through (consecutive duplicates dropped) and the versions it showed,
# and marks the window so a reload would show (window.__marker disappears).
WATCH_ROWS = """() => {
  window.__marker = 1;
  const known = new Set([...document.querySelectorAll('#task-rows tr.task-row')].map(r => r.id));
  window.__seen = {};
  window.__versions = {};
  const record = () => {
    document.querySelectorAll('#task-rows tr.task-row').forEach(r => {
      if (known.has(r.id)) return;
      const list = (window.__seen[r.id] = window.__seen[r.id] || []);
      const status = r.getAttribute('data-status');
      if (list[list.length - 1] !== status) list.push(status);
      const versions = (window.__versions[r.id] = window.__versions[r.id] || []);
      const version = parseInt(r.getAttribute('data-version'), 10);
      if (versions[versions.length - 1] !== version) versions.push(version);
    });
  };
  new MutationObserver(record).observe(document.body, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'],
  });
}"""

# A WebSocket that never connects, like one a proxy refuses: error, then an abnormal close.
BLOCK_WEBSOCKET = """(() => {
  window.__wsAttempts = 0;
  class BlockedWebSocket extends EventTarget {
    constructor(url) {
      super();
      window.__wsAttempts += 1;
      this.url = String(url);
      this.readyState = 0;
      this.binaryType = 'blob';
      setTimeout(() => {
        this.readyState = 3;
        const error = new Event('error');
        if (this.onerror) this.onerror(error);
        this.dispatchEvent(error);
        const close = new CloseEvent('close', {code: 1006, reason: 'blocked', wasClean: false});
        if (this.onclose) this.onclose(close);
        this.dispatchEvent(close);
      }, 20);
    }
    send() { throw new Error('not connected'); }
    close() { this.readyState = 3; }
  }
  Object.assign(BlockedWebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  Object.assign(BlockedWebSocket.prototype, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = BlockedWebSocket;
})();"""


def expect_live(page: Page) -> None:
    expect(page.locator("[data-live-state]")).to_have_text("live", timeout=10_000)


def task_rows(page: Page):
    return page.locator("#task-rows tr.task-row")


def assert_lifecycle_order(page: Page, task_id: int) -> None:
    """The row never went back: whatever order the updates arrived in, it showed
    newer versions only, so its statuses follow the task's life."""
    seen = page.evaluate(f"window.__seen['task-{task_id}']")
    versions = page.evaluate(f"window.__versions['task-{task_id}']")
    print(f"\n[browser] task #{task_id} shown live as {seen}, versions {versions}")
    assert seen, "the row's status was never observed"
    assert all(s in LIFECYCLE for s in seen), f"unexpected statuses: {seen}"
    positions = [LIFECYCLE.index(s) for s in seen]
    assert positions == sorted(set(positions)), f"statuses out of order: {seen}"
    assert versions == sorted(set(versions)), f"an older version replaced a newer one: {versions}"


def record_table_frames(page: Page) -> list[str]:
    """What the server pushes on the table's socket (the header's has its own)."""
    frames: list[str] = []

    def on_socket(ws) -> None:
        if ws.url.endswith("/ws/tasks/"):
            ws.on("framereceived", lambda payload: frames.append(str(payload)))

    page.on("websocket", on_socket)
    return frames


def pushed_statuses(frames: list[str], task_id: int) -> list[str]:
    """The task's statuses the page was sent, in the order of their versions."""
    states = {}
    for frame in frames:
        row = re.search(rf'<tr id="task-{task_id}"[^>]*>', frame)
        if row and "data-status" in row.group(0):
            version = int(re.search(r'data-version="(\d+)"', row.group(0)).group(1))
            states[version] = re.search(r'data-status="(\w+)"', row.group(0)).group(1)
    changes: list[str] = []
    for _, status in sorted(states.items()):
        if not changes or changes[-1] != status:
            changes.append(status)
    return changes


def test_it_runs_a_migration_live(page: Page, browser_app: BrowserApp) -> None:
    target = SupersetAdmin(browser_app.superset["target"])
    for dashboard in target.dashboards_by_title(DASHBOARD_TITLE):
        target.delete_dashboard(dashboard["id"])

    frames = record_table_frames(page)
    login(page)
    expect_live(page)

    page.get_by_label("Source", exact=True).select_option(label="source")
    page.get_by_label("Target", exact=True).select_option(label="target")
    picker = page.locator("#dashboard-picker")
    expect(picker.get_by_role("checkbox").first).to_be_visible(timeout=30_000)
    page.get_by_role("searchbox", name="Dashboards of the source").fill("Sales")
    dashboard = picker.get_by_role("checkbox", name=re.compile(rf"^{DASHBOARD_TITLE} \W"))
    expect(dashboard).to_be_visible(timeout=30_000)
    dashboard.check()
    page.get_by_role("checkbox", name="Overwrite existing dashboards on the target").check()

    page.evaluate(WATCH_ROWS)
    page.get_by_role("button", name="Start migration").click()

    started = page.get_by_text(re.compile(r"Migration task #\d+ started"))
    expect(started).to_be_visible()
    task_id = int(re.search(r"#(\d+)", started.inner_text()).group(1))
    # The form stays on the same source, so its dashboards are listed again.
    expect(page.get_by_label("Source", exact=True)).to_have_value(str(browser_app.source_id))
    expect(
        picker.get_by_role("checkbox", name=re.compile(rf"^{DASHBOARD_TITLE} \W"))
    ).to_be_visible(timeout=30_000)

    row = page.locator(f"tr#task-{task_id}")
    expect(row).to_be_visible()
    expect(row).to_contain_text("source → target")
    expect(row).to_contain_text(DASHBOARD_TITLE)
    expect(row).to_have_attribute("data-status", "SUCCESS", timeout=60_000)
    expect(page.locator(f"#task-{task_id}-status")).to_have_text("Succeeded")

    # Every status reached the page (in whatever order: the request that queued
    # it and the worker publish independently); it shows the newest.
    assert pushed_statuses(frames, task_id) == LIFECYCLE
    assert_lifecycle_order(page, task_id)
    assert page.evaluate(f"window.__seen['task-{task_id}']")[-1] == "SUCCESS"
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    expect(page.locator("[data-live-state]")).to_have_text("live")

    assert target.dashboards_by_title(DASHBOARD_TITLE), "the dashboard is not on the target"

    # For the README: the picker narrowed to the dashboard that was just migrated.
    page.get_by_role("searchbox", name="Dashboards of the source").fill(DASHBOARD_TITLE)
    expect(picker.get_by_role("checkbox", name=re.compile(r"^Bulk "))).to_have_count(0)
    expect(
        picker.get_by_role("checkbox", name=re.compile(rf"^{DASHBOARD_TITLE} \W"))
    ).to_be_visible()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_it_shows_a_task_started_elsewhere(new_context, browser_app: BrowserApp) -> None:
    pages = []
    for credentials in (ADMIN, USER):  # the one who starts it, and someone else
        page = new_context().new_page()
        login(page, credentials)
        expect_live(page)
        page.evaluate(WATCH_ROWS)
        pages.append(page)

    task = browser_app.start_migration([browser_app.dashboard_id])

    for page in pages:
        row = page.locator(f"tr#task-{task['id']}")
        expect(row).to_be_visible()
    for page in pages:
        row = page.locator(f"tr#task-{task['id']}")
        expect(row).to_have_attribute("data-status", "SUCCESS", timeout=60_000)
        expect(page.locator(f"#task-{task['id']}-status")).to_have_text("Succeeded")
        assert_lifecycle_order(page, task["id"])
        assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def test_it_filters_and_loads_more(page: Page, browser_app: BrowserApp) -> None:
    api = browser_app.api
    created = [browser_app.start_migration([MISSING_DASHBOARD])["id"] for _ in range(12)]
    for task_id in created:
        api.wait_for_status(task_id, {"SUCCESS", "FAILED", "CANCELLED"}, timeout=60)
    total = api.get("/api/tasks", params={"limit": 1}).json()["total"]
    failed = api.get("/api/tasks", params={"limit": 1, "status": "FAILED"}).json()["total"]
    assert total > 10 and failed >= 12

    login(page)
    expect_live(page)
    page.evaluate("window.__marker = 1")
    expect(task_rows(page)).to_have_count(10)
    expect(task_rows(page).first).to_have_id(f"task-{created[-1]}")

    load_more = page.locator("#load-more").get_by_role("link", name="Load more")
    expect(load_more).to_be_visible()
    load_more.click()
    expect(task_rows(page)).to_have_count(min(total, 20))
    if total <= 20:
        expect(page.locator("#load-more")).to_have_count(0)
    ids = [int(i) for i in task_rows(page).evaluate_all("rows => rows.map(r => r.dataset.taskId)")]
    assert ids == sorted(ids, reverse=True), f"rows not newest first: {ids}"
    assert len(set(ids)) == len(ids), f"a row is shown twice: {ids}"

    page.locator("#status-filter").select_option("FAILED")
    expect(page.locator("#task-rows tr.task-row:not([data-status=FAILED])")).to_have_count(0)
    expect(task_rows(page)).to_have_count(min(failed, 10))
    expect(page.locator("#task-rows tr.task-row .badge").first).to_have_text("Failed")
    expect(page.locator("#status-filter")).to_have_value("FAILED")
    expect_live(page)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"


def test_it_falls_back_to_polling_without_websocket(new_context, browser_app: BrowserApp) -> None:
    context = new_context()
    context.add_init_script(BLOCK_WEBSOCKET)
    page = context.new_page()
    real_sockets = []
    page.on("websocket", lambda ws: real_sockets.append(ws.url))

    login(page)
    expect(page.locator("[data-live-state]")).to_have_text(re.compile(r"offline.*refreshing"))
    page.evaluate("window.__marker = 1")

    t0 = time.monotonic()
    task = browser_app.start_migration([browser_app.dashboard_id])
    row = page.locator(f"tr#task-{task['id']}")
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_have_attribute(
        "data-status", FINAL, timeout=max(1, 20_000 - int((time.monotonic() - t0) * 1000))
    )
    expect(row).to_have_attribute("data-status", "SUCCESS")
    elapsed = time.monotonic() - t0
    print(f"\n[browser] polling fallback showed the final status after {elapsed:.1f} s")

    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert page.evaluate("window.__wsAttempts") >= 1, "the page never tried its WebSocket"
    assert real_sockets == [], "a real WebSocket was opened"
    expect(page.locator("[data-live-state]")).to_have_text(re.compile(r"offline.*refreshing"))


def test_it_explains_an_invalid_request(page: Page, browser_app: BrowserApp) -> None:
    login(page)
    page.get_by_label("Source", exact=True).select_option(label="source")
    page.get_by_label("Target", exact=True).select_option(label="source")
    dashboard = page.locator("#dashboard-picker").get_by_role(
        "checkbox", name=re.compile(rf"^{DASHBOARD_TITLE} \W")
    )
    expect(dashboard).to_be_visible(timeout=30_000)
    dashboard.check()
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="Start migration").click()

    expect(page.get_by_text("Pick a target different from the source.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Migration task #\d+ started"))).to_have_count(0)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
