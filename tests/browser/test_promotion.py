"""Promotion in the browser: preview the plan, change a connection's mapping, start, read the report."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import DASHBOARD_TITLE, BrowserApp, login
from tests.e2e.superset_servers import SupersetAdmin

pytestmark = pytest.mark.browser

SOURCE_DB = "mig_public"
TARGET_OWN = "prod_public"


def test_preview_a_plan_change_a_mapping_start_it_and_read_the_report(
    page: Page, browser_app: BrowserApp
) -> None:
    target = SupersetAdmin(browser_app.superset["target"])
    target.delete_everything()
    made = target.post(
        "/api/v1/database/",
        json={
            "database_name": TARGET_OWN,
            "sqlalchemy_uri": "postgresql://mig_reader@127.0.0.1:5432/postgres",
        },
    )
    assert made.status_code == 201, made.text

    login(page)
    page.get_by_label("Source", exact=True).select_option(label="source")
    page.get_by_label("Target", exact=True).select_option(label="target")
    picker = page.locator("#dashboard-picker")
    page.get_by_role("searchbox", name="Dashboards of the source").fill(DASHBOARD_TITLE)
    dashboard = picker.get_by_role("checkbox", name=re.compile(rf"^{DASHBOARD_TITLE} \W"))
    expect(dashboard).to_be_visible(timeout=30_000)
    dashboard.check()

    page.get_by_role("button", name="Preview the plan").click()
    plan = page.locator("#plan-preview")
    expect(plan.get_by_role("heading", name=re.compile("^Plan"))).to_be_visible(timeout=30_000)
    # By title, never by bundle file name; the new connection is created by default.
    expect(plan).to_contain_text(DASHBOARD_TITLE)
    expect(plan).to_contain_text("Sales by Region")
    expect(plan).not_to_contain_text(".yaml")
    mapping = plan.get_by_label(f"What {SOURCE_DB} becomes on the target")
    expect(mapping).to_have_value("")
    expect(plan).to_contain_text("Default: create it")

    mapping.select_option(label=f"Use the target's {TARGET_OWN}")
    expect(plan.locator("table").first).to_contain_text(
        f"uses the target's connection '{TARGET_OWN}' (your choice)"
    )
    expect(plan).to_contain_text("1 map")

    page.get_by_role("button", name="Start migration").click()
    started = page.get_by_text(re.compile(r"Migration task #\d+ started"))
    expect(started).to_be_visible()
    task_id = int(re.search(r"#(\d+)", started.inner_text()).group(1))
    row = page.locator(f"tr#task-{task_id}")
    expect(row).to_have_attribute("data-status", "SUCCESS", timeout=60_000)

    page.goto(f"/tasks/{task_id}/")
    report = page.locator("section", has=page.get_by_role("heading", name="Report"))
    expect(report).to_contain_text("mapped")
    expect(report).to_contain_text("created")
    expect(report).to_contain_text("every asset is where the plan put it")
    expect(report.get_by_role("row", name=re.compile(DASHBOARD_TITLE))).to_contain_text("created")
    # The choice is remembered for this pair, and the target's connection was not changed.
    saved = browser_app.api.get(
        f"/api/environments/{browser_app.source_id}/mappings/{browser_app.target_id}"
    ).json()
    assert saved["mappings"][SOURCE_DB] == {"action": "map", "target": TARGET_OWN}
    assert [d["database_name"] for d in target.databases()] == [TARGET_OWN]
    browser_app.api.put(
        f"/api/environments/{browser_app.source_id}/mappings/{browser_app.target_id}",
        json={"mappings": {}},
    )
