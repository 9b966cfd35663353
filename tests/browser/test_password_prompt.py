"""The password prompt in a real browser: two fields, a wrong one, then success."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import BrowserApp, login
from tests.e2e.superset_servers import (
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    TWO_DATABASES_TITLE,
    WAREHOUSE_PASSWORD,
    SupersetAdmin,
    seed_source,
)

pytestmark = pytest.mark.browser


def test_it_asks_for_two_passwords_and_resumes_live(page: Page, browser_app: BrowserApp):
    seeded = seed_source(browser_app.superset["source"], secure=True)
    dashboard_id = next(
        d["id"]
        for d in seeded["secure"]["dashboards"]
        if d["dashboard_title"] == TWO_DATABASES_TITLE
    )
    target = SupersetAdmin(browser_app.superset["target"])
    target.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)

    login(page)
    expect(page.locator("[data-live-state]")).to_have_text("live")
    page.evaluate("window.__marker = 1")
    task = browser_app.start_migration([dashboard_id])
    row = page.locator(f"#task-{task['id']}")
    expect(row).to_have_attribute("data-status", "AWAITING_INPUT", timeout=60_000)
    expect(row).to_contain_text("Requires input")
    expect(page.locator("#awaiting-badge .count")).not_to_have_text("0")
    expect(page.locator(".toast")).to_contain_text(f"Task #{task['id']} requires input")

    row.get_by_role("link", name="Provide input").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    passwords = dialog.locator("input[type=password]")
    expect(passwords).to_have_count(2)
    expect(dialog).to_contain_text("secure_analytics")
    expect(dialog).to_contain_text("secure_warehouse")

    dialog.get_by_label("Database password for secure_analytics").fill(SECURE_PASSWORD)
    dialog.get_by_label("Database password for secure_warehouse").fill("not-the-password-9")
    dialog.get_by_role("button", name="Check and resume").click()
    expect(dialog.get_by_role("alert").filter(has_text="incorrect")).to_be_visible(timeout=30_000)
    # The right one was applied on the target: only the wrong one is asked again.
    expect(passwords).to_have_count(1)
    expect(dialog.get_by_label("Database password for secure_analytics")).to_have_count(0)

    dialog.get_by_label("Database password for secure_warehouse").fill(WAREHOUSE_PASSWORD)
    dialog.get_by_role("button", name="Check and resume").click()
    expect(dialog).to_contain_text("running again", timeout=30_000)
    expect(row).to_have_attribute("data-status", "SUCCESS", timeout=60_000)
    assert page.evaluate("window.__marker") == 1  # never reloaded
    assert target.database_connection_ok("secure_warehouse")
    html = page.content()
    assert WAREHOUSE_PASSWORD not in html and "not-the-password-9" not in html
