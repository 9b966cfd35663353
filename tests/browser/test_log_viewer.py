"""The log viewer in a real browser: one click, live entries, the "new entries" button."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import BrowserApp, login

pytestmark = pytest.mark.browser


def _probe(app: BrowserApp, seconds: float, tick: float) -> int:
    """A probe task (tasks_app/probe.py) that logs an entry every `tick` seconds."""
    params = json.dumps({"seconds": seconds, "tick": tick})
    out = app.server.manage(
        "shell",
        "-c",
        f"from tasks_app import engine; print(engine.submit('probe', owner=None, params={params}).pk)",
    )
    return int(out.strip().splitlines()[-1])


def test_the_log_of_a_finished_task_opens_in_one_click(page: Page, browser_app: BrowserApp):
    task = browser_app.start_migration([browser_app.dashboard_id])
    browser_app.api.wait_for_status(task["id"], {"SUCCESS", "FAILED"})
    login(page)
    page.locator(f"#task-{task['id']}").get_by_role("link", name="View logs").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    entries = dialog.locator("li.log-entry")
    expect(entries.first).to_contain_text("Exporting 1 dashboard")
    expect(entries.last).to_contain_text("Task finished successfully.")
    expect(dialog.locator(".level-info").first).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # Focus goes back to the row's link.
    expect(
        page.locator(f"#task-{task['id']}").get_by_role("link", name="View logs")
    ).to_be_focused()


def test_a_running_tasks_log_grows_live_and_says_when_new_entries_are_below(
    page: Page, browser_app: BrowserApp
):
    login(page)
    expect(page.locator("[data-live-state]").first).to_have_text("live")
    # Runs until cancelled: entries keep coming however slow the machine is.
    task_id = _probe(browser_app, seconds=600, tick=0.25)
    row = page.locator(f"#task-{task_id}")
    expect(row).to_have_attribute("data-status", "RUNNING", timeout=20_000)
    page.evaluate("window.__marker = 1")
    row.get_by_role("link", name="View logs").click()
    dialog = page.get_by_role("dialog")
    entries = dialog.locator("li.log-entry")
    expect(entries.filter(has_text="Probe tick 8")).to_have_count(1, timeout=15_000)

    scroller = dialog.locator(".log-scroll")
    scroller.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    jump = dialog.locator("[data-log-jump]")
    expect(jump).to_be_visible(timeout=10_000)  # new entries arrived while scrolled up
    jump.click()
    expect(jump).to_be_hidden()
    assert browser_app.api.post(f"/api/tasks/{task_id}/cancel").status_code == 200
    # Where it lands is not promised: the worker may log it before the web process logs
    # "Cancel requested" (it saw the flag in between); it arrives, live, once.
    expect(entries.filter(has_text="Cancelled at the user's request.")).to_have_count(
        1, timeout=20_000
    )
    assert page.evaluate("window.__marker") == 1  # no reload
