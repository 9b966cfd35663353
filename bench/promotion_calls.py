"""How many calls to Superset does a promotion make, per step and per side?

Runs the migration task in this process (the same steps a worker runs) against the
real test Supersets, counting every HTTP request the app sends, for 1 and for 50
dashboards, in the three states a promotion meets: the target has nothing yet
(create), the target has it all and nothing changed (unchanged), and everything
changed on the source with overwrite on (update). Sessions are reused as a worker
reuses them, so no logins are counted after the first run.

    .venv/bin/python bench/promotion_calls.py

With BENCH_TRACE=1 it also prints each call to Superset with its duration.

    .venv/bin/python bench/promotion_calls.py --target-url http://127.0.0.1:8193 --one

runs it against another target (here the Superset 5.0 test server: 6.1 → 5.0), for one
dashboard only. The target is emptied first (re-seed a test server afterwards).

It prints numbers; it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections import Counter
from urllib.parse import urlsplit

import requests
from _django import bench_database  # first: sets up a throw-away DATA_DIR

from tests.e2e.superset_servers import SupersetAdmin, ensure_servers, seed_source

_calls: Counter[tuple[str, str]] = Counter()
_step = {"name": "?"}
_step_time: Counter[str] = Counter()
_send = requests.Session.send


def _counting_send(self, request, **kwargs):
    _calls[(urlsplit(request.url).port, _step["name"])] += 1
    if not os.environ.get("BENCH_TRACE"):
        return _send(self, request, **kwargs)
    started = time.perf_counter()
    try:
        return _send(self, request, **kwargs)
    finally:
        url = urlsplit(request.url)
        print(
            f"  {_step['name']:<7}{url.port} {(time.perf_counter() - started) * 1000:6.0f} ms "
            f"{request.method} {url.path}?{url.query[:90]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-url", help="another target than the 6.1 test target")
    parser.add_argument("--one", action="store_true", help="only the 1-dashboard case")
    args = parser.parse_args()
    urls = ensure_servers()
    if args.target_url:
        urls["target"] = args.target_url.rstrip("/")
    seeded = seed_source(urls["source"], count=50)
    by_title = {d["dashboard_title"]: d["id"] for d in seeded["dashboards"]}
    cases = {
        "1 dashboard": [by_title["Sales Overview"]],
        "50 dashboards": [by_title[t] for t in sorted(by_title) if t.startswith("Bulk ")][:50],
    }
    if args.one:
        del cases["50 dashboards"]
    ports = {urlsplit(urls["source"]).port: "source", urlsplit(urls["target"]).port: "target"}
    with bench_database("bench_calls"):
        from django.contrib.auth.models import User

        from migrator import pipeline
        from migrator.models import Environment
        from tasks_app import engine

        owner = User.objects.create_user("bench")
        envs = {
            name: Environment.objects.create(
                name=name, url=urls[name], username="admin", password="admin"
            )
            for name in ("source", "target")
        }
        counted = tuple(
            dataclasses.replace(step, run=_counted(step.name, step.run))
            for step in pipeline.MIGRATION.steps
        )
        engine.register(dataclasses.replace(pipeline.MIGRATION, steps=counted))
        requests.Session.send = _counting_send
        target = SupersetAdmin(urls["target"])
        print(f"{'case':<15}{'state':<11}{'source':>8}{'target':>8}  per step (target)      time")
        for label, ids in cases.items():
            target.delete_everything()
            for state in ("create", "unchanged", "update"):
                if state == "update":
                    _touch_source(urls["source"], ids)
                _calls.clear()
                _step_time.clear()
                started = time.perf_counter()
                task = pipeline.start_migration(
                    owner=owner,
                    source=envs["source"],
                    target=envs["target"],
                    dashboards=[{"id": i} for i in ids],
                    overwrite=True,
                )
                engine.run(task.pk, "bench")
                elapsed = time.perf_counter() - started
                task.refresh_from_db()
                assert task.status == "SUCCESS", task.error
                side = Counter()
                steps = Counter()
                for (port, step), n in _calls.items():
                    side[ports.get(port, "?")] += n
                    if ports.get(port) == "target":
                        steps[step] += n
                per_step = " ".join(f"{s}:{n}" for s, n in steps.items())
                timing = " ".join(f"{s}:{t * 1000:.0f}ms" for s, t in _step_time.items())
                print(
                    f"{label:<15}{state:<11}{side['source']:>8}{side['target']:>8}  "
                    f"{per_step:<22} {elapsed:5.2f} s  ({timing})"
                )
            _touch_source(urls["source"], ids, restore=True)


def _counted(name, run):
    def counted(ctx):
        _step["name"] = name
        started = time.perf_counter()
        try:
            return run(ctx)
        finally:
            _step_time[name] += time.perf_counter() - started

    return counted


def _touch_source(url: str, ids: list[int], restore: bool = False) -> None:
    """Change every dashboard's title on the source (the update case)."""
    source = SupersetAdmin(url)
    for dashboard_id in ids:
        row = source.get_json(f"/api/v1/dashboard/{dashboard_id}")["result"]
        title = row["dashboard_title"].removesuffix(" (changed)")
        if not restore:
            title += " (changed)"
        source.request("PUT", f"/api/v1/dashboard/{dashboard_id}", json={"dashboard_title": title})


if __name__ == "__main__":
    main()
