"""How fast is a migration through the app, against the bare REST calls?

PRODUCT.md ("How fast"): from the click to SUCCESS visible in the browser, a
one-dashboard migration takes no longer than the bare calls (log in to both
sides, export, import); fifty dashboards within 5 % of them.

Run with the Superset servers up (`make superset-up`):

    .venv/bin/python bench/migration_speed.py [--runs 5]

It prints medians and ratios; it asserts nothing. "App" is measured as a
browser sees it: POST /api/migrations, then the SUCCESS event on the
history WebSocket (/ws/tasks/?format=json), on the real app served as
`make run` serves it (daphne, embedded workers).

Two cases per size, each run after the other, bare then app:
- "changed": before each run, every dashboard's title and one of its charts'
  names change on the source, so the app's run really writes: it plans, backs
  up what it replaces, imports the charts and the dashboards, and checks the
  target after. The bare calls import everything, changed or not.
- "unchanged": nothing changed on the source since the last run. The bare calls
  import all the same (and so change the target's dates of what they rewrite);
  the app plans, compares the target's copy by content, writes nothing and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.appserver import AppServer
from tests.e2e.superset_servers import SupersetAdmin, ensure_servers, seed_source

JSON = {"Accept": "application/json"}


def bare_calls(source: str, target: str, ids: list[int]) -> float:
    """The minimum a script must do: two logins, CSRF, one export, one import."""
    started = time.perf_counter()
    src = requests.Session()
    token = src.post(
        f"{source}/api/v1/security/login",
        json={"username": "admin", "password": "admin", "provider": "db"},
        headers=JSON,
    ).json()["access_token"]
    src.headers.update({**JSON, "Authorization": f"Bearer {token}"})
    bundle = src.get(
        f"{source}/api/v1/dashboard/export/", params={"q": f"!({','.join(map(str, ids))})"}
    ).content
    tgt = requests.Session()
    token = tgt.post(
        f"{target}/api/v1/security/login",
        json={"username": "admin", "password": "admin", "provider": "db"},
        headers=JSON,
    ).json()["access_token"]
    tgt.headers.update({**JSON, "Authorization": f"Bearer {token}"})
    csrf = tgt.get(f"{target}/api/v1/security/csrf_token/").json()["result"]
    answer = tgt.post(
        f"{target}/api/v1/dashboard/import/",
        headers={"X-CSRFToken": csrf},
        files={"formData": ("bundle.zip", io.BytesIO(bundle), "application/zip")},
        data={"overwrite": "true", "passwords": "{}"},
        allow_redirects=False,
    )
    assert answer.status_code == 200, answer.text[:300]
    return time.perf_counter() - started


async def _through_app(server: AppServer, api, ids: list[int]) -> float:
    import websockets

    cookie = "; ".join(f"{c.name}={c.value}" for c in api.cookies)
    uri = server.url.replace("http", "ws") + "/ws/tasks/?format=json"
    async with websockets.connect(
        uri, additional_headers={"Cookie": cookie, "Origin": server.url}
    ) as socket:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        answer = await loop.run_in_executor(
            None,
            lambda: api.post(
                "/api/migrations",
                json={"source": "source", "target": "target", "dashboards": ids, "overwrite": True},
            ),
        )
        task_id = answer.json()["id"]
        while True:
            event = json.loads(await asyncio.wait_for(socket.recv(), timeout=120))
            if event.get("id") == task_id and event["status"] in (
                "SUCCESS",
                "FAILED",
                "AWAITING_INPUT",
            ):
                assert event["status"] == "SUCCESS", event
                return time.perf_counter() - started


def touch_source(admin: SupersetAdmin, ids: list[int], run: int | None) -> None:
    """Change each dashboard's title and its first chart's name (outside the timing);
    run None puts the seeded names back."""
    for dashboard_id in ids:
        row = admin.get_json(f"/api/v1/dashboard/{dashboard_id}")["result"]
        title = row["dashboard_title"].split(" (run ")[0]
        _put(
            admin,
            f"/api/v1/dashboard/{dashboard_id}",
            json={"dashboard_title": title if run is None else f"{title} (run {run})"},
        )
        charts = admin.dashboard_charts(dashboard_id)
        if charts:
            chart = min(charts, key=lambda c: c["id"])
            name = chart["slice_name"].split(" (run ")[0]
            _put(
                admin,
                f"/api/v1/chart/{chart['id']}",
                json={"slice_name": name if run is None else f"{name} (run {run})"},
            )


def _put(admin: SupersetAdmin, path: str, json: dict) -> None:
    """A rename that did not happen would measure "unchanged" as "changed": it stops."""
    answer = admin.request("PUT", path, json=json)
    assert answer.status_code == 200, f"PUT {path}: HTTP {answer.status_code} {answer.text[:300]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    urls = ensure_servers()
    seeded = seed_source(urls["source"], count=50)
    by_title = {d["dashboard_title"]: d["id"] for d in seeded["dashboards"]}
    one = [by_title["Sales Overview"]]
    fifty = [by_title[t] for t in sorted(by_title) if t.startswith("Bulk ")][:50]

    server = AppServer()
    server.prepare()
    server.start()
    try:
        api = server.session()
        for name in ("source", "target"):
            api.post(
                "/api/environments",
                json={"name": name, "url": urls[name], "username": "admin", "password": "admin"},
            )
        # Warm up both paths once (first import creates the objects; Python imports).
        bare_calls(urls["source"], urls["target"], one)
        asyncio.run(_through_app(server, api, one))
        admin = SupersetAdmin(urls["source"])
        print(f"{'case':<28}{'bare calls (s)':>16}{'app (s)':>12}{'app / bare':>12}")
        run = 0
        for label, ids in (("1 dashboard", one), (f"{len(fifty)} dashboards", fifty)):
            for changed in (True, False):
                bare, app = [], []
                for _ in range(args.runs):
                    if changed:
                        run += 1
                        touch_source(admin, ids, run)
                    bare.append(bare_calls(urls["source"], urls["target"], ids))
                    if changed:
                        run += 1
                        touch_source(admin, ids, run)
                    app.append(asyncio.run(_through_app(server, api, ids)))
                b, a = statistics.median(bare), statistics.median(app)
                case = f"{label}, {'changed' if changed else 'unchanged'}"
                print(f"{case:<28}{b:>16.3f}{a:>12.3f}{a / b:>12.2f}", flush=True)
        print(
            f"(medians of {args.runs} runs; app = POST to SUCCESS on the WebSocket, sessions reused)"
        )
    finally:
        server.stop()
        touch_source(SupersetAdmin(urls["source"]), one + fifty, None)


if __name__ == "__main__":
    main()
