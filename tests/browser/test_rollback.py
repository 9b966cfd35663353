"""Rollback in the browser: migrate with overwrite, read the report, Roll back, read the
plan, confirm, and read the rollback's report; the target is as it was before."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import DASHBOARD_TITLE, BrowserApp, login
from tests.e2e.superset_servers import SupersetAdmin

pytestmark = pytest.mark.browser

DONE = {"SUCCESS", "FAILED", "AWAITING_INPUT"}
CHANGED = "Sales by Region (changed on the source)"


def _section(page: Page, heading: str):
    return page.locator("section", has=page.get_by_role("heading", name=heading, exact=True))


def test_migrate_read_the_report_roll_back_confirm_and_read_the_rollback_report(
    page: Page, browser_app: BrowserApp
) -> None:
    source = SupersetAdmin(browser_app.superset["source"])
    target = SupersetAdmin(browser_app.superset["target"])
    target.delete_everything()
    browser_app.api.put(
        f"/api/environments/{browser_app.source_id}/mappings/{browser_app.target_id}",
        json={"mappings": {}},
    )
    # The target's version, which the second migration replaces and the rollback puts back.
    first = browser_app.start_migration([browser_app.dashboard_id], overwrite=True)
    first = browser_app.api.wait_for_status(first["id"], DONE)
    assert first["status"] == "SUCCESS", first["error"]
    (chart,) = source.dashboard_charts(browser_app.dashboard_id)
    original = chart["slice_name"]
    assert [c["slice_name"] for c in target.charts()] == [original]

    source.request("PUT", f"/api/v1/chart/{chart['id']}", json={"slice_name": CHANGED})
    try:
        login(page)
        page.get_by_label("Source", exact=True).select_option(label="source")
        page.get_by_label("Target", exact=True).select_option(label="target")
        picker = page.locator("#dashboard-picker")
        page.get_by_role("searchbox", name="Dashboards of the source").fill(DASHBOARD_TITLE)
        dashboard = picker.get_by_role("checkbox", name=re.compile(rf"^{DASHBOARD_TITLE} \W"))
        expect(dashboard).to_be_visible(timeout=30_000)
        dashboard.check()
        page.get_by_label("Overwrite existing dashboards on the target").check()
        page.get_by_role("button", name="Start migration").click()
        started = page.get_by_text(re.compile(r"Migration task #\d+ started"))
        expect(started).to_be_visible()
        migration_id = int(re.search(r"#(\d+)", started.inner_text()).group(1))
        row = page.locator(f"tr#task-{migration_id}")
        expect(row).to_have_attribute("data-status", "SUCCESS", timeout=60_000)
        # The history row offers the rollback too.
        expect(row.get_by_role("link", name="Roll back")).to_be_visible()
        assert [c["slice_name"] for c in target.charts()] == [CHANGED]

        # The migration's page: its report and what it backed up.
        page.goto(f"/tasks/{migration_id}/")
        report = _section(page, "Report")
        expect(report.get_by_role("row", name=re.compile(re.escape(CHANGED)))).to_contain_text(
            "updated"
        )
        expect(report).to_contain_text("every asset is where the plan put it")
        backup = _section(page, "Backup")
        expect(backup).to_contain_text("1 charts")
        expect(backup).to_contain_text("A rollback puts it back.")

        # Roll back: a confirm page with the plan; nothing happens yet.
        page.get_by_role("link", name="Roll back", exact=True).click()
        expect(page).to_have_url(re.compile(rf"/tasks/{migration_id}/rollback/$"))
        expect(page.get_by_role("heading", name=f"Roll back task #{migration_id}")).to_be_visible()
        plan_row = page.get_by_role("row", name=re.compile(re.escape(CHANGED)))
        expect(plan_row).to_contain_text("update")  # what the migration did
        expect(plan_row).to_contain_text("restore")  # what the rollback will do
        expect(plan_row).to_contain_text("put back as the backup has it")
        expect(page.get_by_role("link", name="Keep it")).to_be_visible()
        assert [c["slice_name"] for c in target.charts()] == [CHANGED]

        page.get_by_role("button", name=f"Roll back task #{migration_id}").click()

        # The rollback's own page: its plan now, its report when it ends.
        expect(page.get_by_text(re.compile(r"Rollback task #\d+ started"))).to_be_visible()
        rollback_id = int(re.search(r"/tasks/(\d+)/$", page.url).group(1))
        assert rollback_id != migration_id
        expect(page.get_by_role("link", name=f"rolls back #{migration_id}")).to_be_visible()
        status = page.locator(f"#task-{rollback_id}-status")
        expect(status).to_have_attribute("data-status", "SUCCESS", timeout=60_000)
        page.reload()
        expect(page.get_by_role("link", name="Roll back", exact=True)).to_have_count(0)
        report = _section(page, "Report")
        expect(report).to_contain_text("1 restored")
        expect(report.get_by_role("row", name=re.compile(re.escape(CHANGED)))).to_contain_text(
            "restored"
        )
        expect(report.locator(".warnings")).to_have_count(0)
        expect(_section(page, "Rollback plan")).to_contain_text("put back as the backup has it")

        # The target is back as it was before the second migration.
        assert [c["slice_name"] for c in target.charts()] == [original]
        assert [d["dashboard_title"] for d in target.dashboards()] == [DASHBOARD_TITLE]

        # The migration links to its rollback and is not offered again.
        page.get_by_role("link", name=f"rolls back #{migration_id}").click()
        expect(page).to_have_url(re.compile(rf"/tasks/{migration_id}/$"))
        expect(page.get_by_role("link", name=f"rolled back by #{rollback_id}")).to_be_visible()
        expect(page.get_by_role("link", name="Roll back", exact=True)).to_have_count(0)
        # Once only: the confirm page now names the rollback instead of offering one.
        page.goto(f"/tasks/{migration_id}/rollback/")
        expect(page.get_by_role("alert")).to_contain_text(
            f"already rolled back by task #{rollback_id}"
        )
        expect(page.get_by_role("button", name=re.compile("^Roll back"))).to_have_count(0)
    finally:
        source.request("PUT", f"/api/v1/chart/{chart['id']}", json={"slice_name": original})
