"""Browser tests: real Chromium (Debian's, never a downloaded one) through Playwright.

One session: two real Superset servers (source seeded with "Sales Overview"), one
real app (daphne, embedded workers) with the environments "source" and "target"
registered through the JSON API. Run in their own pytest invocation:

    DJANGO_ALLOW_ASYNC_UNSAFE=true .venv/bin/python -m pytest -m browser -p no:asyncio tests/browser
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appserver import ADMIN, AppServer
from tests.browser.helpers import DASHBOARD_TITLE, BrowserApp
from tests.e2e.superset_servers import ensure_servers, seed_source

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_app() -> Iterator[BrowserApp]:
    t0 = time.monotonic()
    urls = ensure_servers()
    seeded = seed_source(urls["source"])
    dashboard_id = next(
        d["id"] for d in seeded["dashboards"] if d["dashboard_title"] == DASHBOARD_TITLE
    )
    server = AppServer()
    server.prepare()
    server.start()
    try:
        api = server.session(ADMIN)
        env_ids = {}
        for name in ("source", "target"):
            answer = api.post(
                "/api/environments",
                json={
                    "name": name,
                    "url": urls[name],
                    "username": "admin",
                    "password": "admin",
                    "provider": "db",
                },
            )
            assert answer.status_code == 201, answer.text
            env_ids[name] = answer.json()["id"]
        print(f"\n[browser] Superset + app ready in {time.monotonic() - t0:.1f} s at {server.url}")
        yield BrowserApp(
            url=server.url,
            api=api,
            server=server,
            superset=urls,
            source_id=env_ids["source"],
            target_id=env_ids["target"],
            dashboard_id=dashboard_id,
        )
    finally:
        server.stop()
        if not os.environ.get("KEEP_APP_DATA"):
            shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def base_url(browser_app: BrowserApp) -> str:
    return browser_app.url


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict, base_url: str) -> dict:
    return {
        **browser_context_args,
        "base_url": base_url,
        "viewport": {"width": 1280, "height": 900},
    }


@pytest.fixture(autouse=True)
def _app_log_on_failure(request, browser_app: BrowserApp) -> Iterator[None]:
    """On a failing test, print the tail of the app's log (the worker's errors are there)."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("\n--- app log (tail) ---\n" + browser_app.server.log()[-6000:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
