"""Pages that are comfortable on any screen and by keyboard (issue 15): no horizontal
overflow at 390 px and 1280 px, no serious accessibility violation (axe-core), the
Migrate form keeping what was typed, progress signs, toasts clear of a row's buttons,
and the whole flow by keyboard with focus where it should be."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, expect

from tests.appserver import ADMIN
from tests.browser.helpers import BrowserApp, login
from tests.e2e.superset_servers import (
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    SECURE_SALES_TITLE,
    SupersetAdmin,
    seed_source,
)

pytestmark = pytest.mark.browser

WIDTHS = (390, 1280)
REPO = Path(__file__).resolve().parents[2]
# The README's pictures: refreshed only when asked (UPDATE_SCREENSHOTS=1).
SCREENSHOTS = REPO / ("docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else "test-results")
AXE = Axe()
BAD_IMPACTS = {"serious", "critical"}

# Every action of a row or table: inside the viewport, or reachable by scrolling the
# table's own box (.table-scroll), never by scrolling the page sideways.
UNREACHABLE_ACTIONS = """() => {
  const bad = [];
  document.querySelectorAll('td.actions a, td.actions button, .table-head a.button').forEach(el => {
    if (!el.getClientRects().length) return;
    const r = el.getBoundingClientRect();
    if (r.left >= 0 && r.right <= window.innerWidth) return;
    const box = el.closest('.table-scroll');
    if (box && box.scrollWidth > box.clientWidth && getComputedStyle(box).overflowX === 'auto') return;
    bad.push(el.textContent.trim() + ' at ' + Math.round(r.left) + '..' + Math.round(r.right));
  });
  return bad;
}"""


def no_overflow(page: Page, where: str) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]"
    )
    assert max(widths[:2]) <= widths[2], f"{where}: page is {widths[:2]} wide, viewport {widths[2]}"
    assert page.evaluate(UNREACHABLE_ACTIONS) == [], where
    for dialog in page.locator("dialog[open]").all():
        box = dialog.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= widths[2], f"{where}: dialog {box}"


def axe_problems(page: Page, counts: dict[str, int], where: str) -> list[str]:
    """Serious or critical axe-core violations; every violation is counted by impact."""
    result = AXE.run(page)
    problems = []
    for violation in result.response["violations"]:
        impact = violation.get("impact") or "minor"
        counts[impact] = counts.get(impact, 0) + len(violation["nodes"])
        if impact in BAD_IMPACTS:
            targets = [n["target"] for n in violation["nodes"]][:3]
            problems.append(f"{where}: {violation['id']} ({impact}) {targets}")
    return problems


@pytest.fixture(scope="module")
def tasks(browser_app: BrowserApp) -> Iterator[dict[str, int]]:
    """A finished migration and one waiting for a database password."""
    seeded = seed_source(browser_app.superset["source"], secure=True)
    secure_id = next(
        d["id"]
        for d in seeded["secure"]["dashboards"]
        if d["dashboard_title"] == SECURE_SALES_TITLE
    )
    done = browser_app.start_migration([browser_app.dashboard_id])
    browser_app.api.wait_for_status(done["id"], {"SUCCESS", "FAILED"})
    SupersetAdmin(browser_app.superset["target"]).remove_dashboards_and_databases(
        SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES
    )
    waiting = browser_app.start_migration([secure_id])
    browser_app.api.wait_for_status(waiting["id"], {"AWAITING_INPUT"})
    yield {"done": done["id"], "waiting": waiting["id"], "secure_dashboard": secure_id}
    browser_app.api.post(f"/api/tasks/{waiting['id']}/cancel")


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_and_dialog_fits_and_has_no_serious_accessibility_problem(
    page: Page, browser_app: BrowserApp, tasks: dict[str, int], width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 844 if width < 500 else 900})
    login(page)
    counts: dict[str, int] = {}
    problems: list[str] = []

    def check(where: str) -> None:
        no_overflow(page, f"{where} at {width} px")
        problems.extend(axe_problems(page, counts, f"{where} at {width} px"))

    expect(page.locator(f"#task-{tasks['done']}")).to_be_visible()
    check("migration page")
    # The dark header spans the whole width: the user's name stays readable.
    header = page.locator("header.topbar").bounding_box()
    assert header is not None and header["width"] >= width - 1
    expect(page.locator("header .who")).to_be_visible()

    page.locator(f"#task-{tasks['done']}").get_by_role("link", name="View logs").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("li.log-entry").last).to_contain_text("finished")
    expect(dialog.get_by_label("Search")).to_be_visible()
    check("log modal")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    page.locator(f"#task-{tasks['waiting']}").get_by_role("link", name="Provide input").click()
    expect(dialog.get_by_role("button", name="Check and resume")).to_be_visible()
    check("prompt modal")
    # The prompt opens on its first field, not on ✕.
    expect(dialog.locator("input[type=password]").first).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    for where, url in (
        ("log page", f"/tasks/{tasks['done']}/logs"),
        ("task page", f"/tasks/{tasks['done']}/"),
        ("prompt page", f"/tasks/{tasks['waiting']}/input/"),
        ("environments page", "/environments/"),
        ("add environment page", "/environments/add/"),
        ("admin task list", "/admin/tasks_app/task/"),
        ("admin task page", f"/admin/tasks_app/task/{tasks['done']}/change/"),
    ):
        page.goto(url)
        expect(page.locator("body")).not_to_be_empty()
        if where.startswith("admin"):
            no_overflow(page, f"{where} at {width} px")  # Django's own markup: not audited
        else:
            check(where)
    print(f"\n[axe] {width} px: violations by impact {counts}")
    assert not problems, "\n".join(problems)


def test_the_admin_task_list_shows_every_column_at_1280(
    page: Page, browser_app: BrowserApp, tasks: dict[str, int]
) -> None:
    login(page)
    page.goto("/admin/tasks_app/task/")
    for column in ("created at", "duration"):
        header = page.locator("#result_list thead th", has_text=re.compile(column, re.I))
        box = header.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1280, column
    # Its task page: a title and a heading a person reads, and no favicon 404.
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(f"/admin/tasks_app/task/{tasks['done']}/change/")
    expect(page).to_have_title(re.compile(rf"Task #{tasks['done']} \|"))
    expect(page).not_to_have_title(re.compile("Change task"))
    expect(page.locator("#content h1")).to_have_text(f"Task #{tasks['done']}")
    expect(page.locator("#content h2").first).to_have_text("Migration · Succeeded")
    assert missing == []


def test_a_validation_error_keeps_the_ticked_dashboards_and_the_search(
    page: Page, browser_app: BrowserApp, tasks: dict[str, int]
) -> None:
    login(page)
    page.get_by_label("Source", exact=True).select_option(label="source")
    picker = page.locator("#dashboard-picker")
    expect(picker.get_by_role("checkbox").first).to_be_visible()
    page.get_by_label("Dashboards of the source").fill("Sec")
    secure = picker.get_by_label(SECURE_SALES_TITLE)
    expect(secure).to_be_visible()
    secure.check()
    page.get_by_role("button", name="Select all shown").click()
    ticked = picker.locator("input[name=dashboards]:checked")
    expect(ticked).not_to_have_count(0)
    before = sorted(ticked.evaluate_all("els => els.map(e => e.value)"))
    page.get_by_label("Target", exact=True).select_option(label="source")  # the same: refused
    page.get_by_role("button", name="Start migration").click()
    expect(page.get_by_text("Pick a target different from the source.")).to_be_visible()
    expect(page.get_by_label("Dashboards of the source")).to_have_value("Sec")
    expect(picker.get_by_label(SECURE_SALES_TITLE)).to_be_checked()
    expect(picker.get_by_role("checkbox").first).to_be_visible()
    after = sorted(
        picker.locator("input[name=dashboards]:checked").evaluate_all(
            "els => els.map(e => e.value)"
        )
    )
    assert after == before
    # Focus is on what went wrong, not on <body>.
    expect(page.locator("#start-errors")).to_be_focused()


def test_progress_signs_and_the_toast_clear_of_the_rows_buttons(
    page: Page, browser_app: BrowserApp, tasks: dict[str, int]
) -> None:
    page.set_viewport_size({"width": 1280, "height": 700})
    login(page)
    # "Loading dashboards…" while the picker loads, never "Choose a source…".
    held: list = []
    page.route(
        "**/migrations/dashboards/*", lambda route: held.append(route)
    )  # held: stays in flight
    page.get_by_label("Source", exact=True).select_option(label="source")
    expect(page.locator("#picker-loading")).to_be_visible()
    expect(page.locator("#picker-loading")).to_contain_text("Loading dashboards…")
    release(page, held)
    expect(page.locator("#dashboard-picker").get_by_role("checkbox").first).to_be_visible()
    expect(page.locator("#picker-loading")).to_be_hidden()
    page.unroute("**/migrations/dashboards/*")

    # A busy button says so while Superset is asked.
    page.goto("/environments/")
    held.clear()
    page.route("**/environments/*/test/", lambda route: held.append(route))
    row = page.locator("#env-table tbody tr").first
    row.get_by_role("button", name="Test connection").click()
    busy = row.get_by_role("button", name="Testing…")
    expect(busy).to_be_disabled()
    expect(busy).to_have_attribute("aria-busy", "true")
    release(page, held)
    expect(row.locator("[data-reason]")).to_contain_text("Connection OK", timeout=30_000)
    page.unroute("**/environments/*/test/")
    # The last result stays after a reload.
    page.reload()
    expect(page.locator("#env-table tbody tr").first.locator("[data-reason]")).to_contain_text(
        "Connection OK"
    )

    # A toast for a task that starts waiting keeps clear of every row's buttons.
    page.goto("/")
    expect(page.locator("#task-table [data-live-state]")).to_have_text("live")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    SupersetAdmin(browser_app.superset["target"]).remove_dashboards_and_databases(
        SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES
    )
    task = browser_app.start_migration([tasks["secure_dashboard"]])
    row = page.locator(f"#task-{task['id']}")
    expect(row).to_have_attribute("data-status", "AWAITING_INPUT", timeout=60_000)
    toast = page.locator(f".toast[data-task-id='{task['id']}']")
    expect(toast).to_be_visible()
    row.scroll_into_view_if_needed()
    for button in row.locator("td.actions a, td.actions button").all():
        expect(button).to_be_visible()
        # What the pointer hits there is the button itself, not the toast.
        box = button.bounding_box()
        assert box is not None
        hit = page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.closest('.toast') === null",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert hit, button.text_content()
    # A row shows the dashboards' count, and "+N more" opens.
    expect(page.locator(f"#task-{tasks['done']} td.what")).to_be_visible()

    # Cancel asks in the page's own dialog, and the log says so.
    row.get_by_role("button", name="Cancel").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text(f"Cancel task #{task['id']}")
    expect(confirm.get_by_role("button", name="Keep it")).to_be_focused()
    confirm.get_by_role("button", name="Cancel the task").click()
    expect(row).to_have_attribute("data-status", "CANCELLED")
    log = browser_app.api.get(f"/api/tasks/{task['id']}/logs").json()["entries"]
    assert any("while it waited for input" in e["message"] for e in log)
    detail = browser_app.api.get(f"/api/tasks/{task['id']}").json()
    assert detail["waited_seconds"] > 0 and detail["worked_seconds"] > 0


def release(page: Page, held: list) -> None:
    """Let the held request(s) go on, once the page has sent them."""
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)  # lets Playwright deliver the route event
    assert held, "the request was never sent"
    while held:
        held.pop().continue_()


def tab_to(page: Page, target: Locator, limit: int = 600) -> None:
    """Press Tab until ``target`` has the focus, as a keyboard user does. The limit
    allows for a full history and a long picker before it (and one wrap around)."""
    # The locator is looked up at each press: a live update may have swapped the
    # element for a newer copy (a handle taken once would point at the old one).
    for _ in range(limit):
        if target.evaluate("el => document.activeElement === el"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {target}")


def test_the_whole_flow_by_keyboard(
    page: Page, browser_app: BrowserApp, tasks: dict[str, int]
) -> None:
    SupersetAdmin(browser_app.superset["target"]).remove_dashboards_and_databases(
        SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES
    )
    name = f"kb-{uuid.uuid4().hex[:6]}"
    page.goto("/accounts/login/")
    page.keyboard.type(ADMIN[0])  # the username field has autofocus
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN[1])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Migrate dashboards")).to_be_visible()

    # The skip link comes first.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    # Add an environment, testing it before saving.
    tab_to(page, page.get_by_role("link", name="Environments"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("link", name="Add environment"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Add a Superset environment")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Leave blank")
    for label, value in (
        ("Name", name),
        ("URL", browser_app.superset["target"]),
        ("Username", "admin"),
        ("Password", "admin"),
    ):
        tab_to(page, page.get_by_label(label, exact=True))
        page.keyboard.type(value)
    tab_to(page, page.get_by_role("button", name="Test connection"))
    page.keyboard.press("Enter")
    expect(page.locator("#try-result")).to_contain_text("Connection OK", timeout=30_000)
    tab_to(page, page.get_by_role("button", name="Save"))
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"Environment {name} saved")).to_be_visible()

    # Migrate "Secure Sales" from source to it.
    tab_to(page, page.get_by_role("link", name="Migrate", exact=True))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_label("Source", exact=True))
    page.keyboard.type("source")
    expect(page.locator("#dashboard-picker").get_by_role("checkbox").first).to_be_visible()
    tab_to(page, page.get_by_label("Target", exact=True))
    page.keyboard.type(name)
    expect(page.get_by_label("Target", exact=True)).to_have_value(re.compile(r"\d+"))
    tab_to(page, page.get_by_label("Dashboards of the source"))
    page.keyboard.type(SECURE_SALES_TITLE)
    box = page.locator("#dashboard-picker").get_by_role(
        "checkbox", name=re.compile(rf"^{SECURE_SALES_TITLE} \W")
    )
    expect(box).to_have_count(1)
    expect(page.locator("#dashboard-picker").get_by_role("checkbox")).to_have_count(1)
    tab_to(page, box)
    page.keyboard.press("Space")
    expect(box).to_be_checked()
    tab_to(page, page.get_by_role("button", name="Start migration"))
    page.keyboard.press("Enter")
    started = page.locator("#start-status")
    expect(started).to_contain_text("started")
    expect(started).to_be_focused()  # not <body>
    task_id = int(re.search(r"#(\d+)", started.text_content() or "").group(1))

    # Answer the prompt: a wrong password, then the right one.
    row = page.locator(f"#task-{task_id}")
    expect(row).to_have_attribute("data-status", "AWAITING_INPUT", timeout=60_000)
    tab_to(page, row.get_by_role("link", name="Provide input"))
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    field = dialog.get_by_label(re.compile("Database password"))
    expect(field).to_be_focused()
    page.keyboard.type("not-the-password-1")
    page.keyboard.press("Enter")
    expect(dialog.locator(".has-error")).to_have_count(1, timeout=30_000)
    expect(dialog.get_by_label(re.compile("Database password"))).to_be_focused()  # re-asked
    page.keyboard.type(SECURE_PASSWORD)
    page.keyboard.press("Enter")
    expect(dialog).to_contain_text("running again", timeout=30_000)
    expect(dialog.get_by_role("status")).to_be_focused()
    expect(dialog).to_be_hidden(timeout=10_000)  # closes by itself
    expect(row.get_by_role("link", name="View logs")).to_be_focused()
    expect(row).to_have_attribute("data-status", "SUCCESS", timeout=60_000)

    # Open the log and close it: focus goes back to the row's link.
    page.keyboard.press("Enter")
    expect(dialog.locator("li.log-entry").first).to_be_visible()
    expect(dialog.locator(".log-scroll")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(row.get_by_role("link", name="View logs")).to_be_focused()
    # Working time in the row, the wait apart.
    expect(row.locator("td.duration")).to_contain_text(re.compile(r"waited .* for input"))


def test_phone_screenshots_of_the_plan_and_the_prompt(
    page: Page, browser_app: BrowserApp, tasks: dict[str, int]
) -> None:
    """The README's phone-width pictures (refreshed with UPDATE_SCREENSHOTS=1)."""
    page.set_viewport_size({"width": 390, "height": 844})
    login(page)
    page.get_by_label("Source", exact=True).select_option(label="source")
    page.get_by_label("Target", exact=True).select_option(label="target")
    page.get_by_role("searchbox", name="Dashboards of the source").fill("Sales Overview")
    box = page.locator("#dashboard-picker").get_by_role(
        "checkbox", name=re.compile(r"^Sales Overview \W")
    )
    expect(box).to_have_count(1)
    expect(page.locator("#dashboard-picker").get_by_role("checkbox")).to_have_count(1)
    box.check()
    page.get_by_role("button", name="Preview the plan").click()
    plan = page.locator("#plan-preview")
    expect(plan.get_by_role("heading", name=re.compile("^Plan"))).to_be_visible(timeout=30_000)
    no_overflow(page, "plan at 390 px")
    plan.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "screenshot-phone-plan.png"))
    page.locator(f"#task-{tasks['waiting']}").get_by_role("link", name="Provide input").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Check and resume")).to_be_visible()
    no_overflow(page, "prompt at 390 px")
    page.screenshot(path=str(SCREENSHOTS / "screenshot-phone-prompt.png"))
