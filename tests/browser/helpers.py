"""What the browser tests share: the app under test and logging in like a user."""

from __future__ import annotations

import re
from dataclasses import dataclass

from playwright.sync_api import Page, expect

from tests.appserver import ADMIN, ApiSession, AppServer

DASHBOARD_TITLE = "Sales Overview"


@dataclass
class BrowserApp:
    url: str
    api: ApiSession
    server: AppServer
    superset: dict[str, str]
    source_id: int
    target_id: int
    dashboard_id: int

    def start_migration(self, dashboards: list[int], overwrite: bool = True) -> dict:
        answer = self.api.post(
            "/api/migrations",
            json={
                "source": "source",
                "target": "target",
                "dashboards": dashboards,
                "overwrite": overwrite,
            },
        )
        assert answer.status_code == 201, answer.text
        return answer.json()


def login(page: Page, credentials: tuple[str, str] = ADMIN) -> None:
    """Log in through the login form, the way a user does; lands on the migration page."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(credentials[0])
    page.get_by_label("Password").fill(credentials[1])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"^http://[^/]+/$"))
    expect(page.get_by_role("heading", name="Migrate dashboards")).to_be_visible()
