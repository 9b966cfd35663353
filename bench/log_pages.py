"""How fast is a page of a long task log? Numbers, not assertions.

    .venv/bin/python bench/log_pages.py                 # SQLite in a temporary DATA_DIR
    DATABASE_URL=postgres://… .venv/bin/python bench/log_pages.py   # a throw-away test_… database

Creates one task with 50,000 log entries (bulk_create), then times the
newest page and an earlier page (from the middle of the log) through the real
API view with django.test.Client, plus the log modal's HTML for comparison.
"""

from __future__ import annotations

import os
import statistics
import time

from _django import bench_database  # first: sets up a throw-away DATA_DIR

ENTRIES = int(os.environ.get("BENCH_ENTRIES", "50000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))


def main() -> None:
    with bench_database("log_bench") as vendor:
        run(vendor)


def run(vendor: str) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from tasks_app.models import LogLevel, Task, TaskLogEntry

    user = User.objects.create_user("bench", password="bench-password")
    task = Task.objects.create(kind="migration", owner=user, status="RUNNING")
    levels = [LogLevel.INFO, LogLevel.INFO, LogLevel.DEBUG, LogLevel.WARNING, LogLevel.ERROR]
    started = time.perf_counter()
    TaskLogEntry.objects.bulk_create(
        (
            TaskLogEntry(
                task=task,
                level=levels[i % len(levels)],
                message=f"Step {i}: imported chart {i % 97} into target prod-eu",
                context={"chart": i % 97, "bytes": 1000 + i, "environment": "prod-eu"},
            )
            for i in range(ENTRIES)
        ),
        batch_size=5000,
    )
    # Another task's entries in the same table, as in a real history.
    other = Task.objects.create(kind="migration", owner=user)
    TaskLogEntry.objects.bulk_create(
        (TaskLogEntry(task=other, message=f"other {i}") for i in range(ENTRIES // 5)),
        batch_size=5000,
    )
    if vendor == "postgresql":
        # What autovacuum would have done by now: fresh statistics for the planner.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE tasks_app_tasklogentry")
    print(
        f"{vendor}: {ENTRIES:,} entries in task #{task.pk} (+{ENTRIES // 5:,} in another) "
        f"created in {time.perf_counter() - started:.1f} s"
    )

    client = Client()
    client.force_login(user)
    ids = list(task.log_entries.order_by("id").values_list("id", flat=True))
    middle = ids[len(ids) // 2]

    def measure(label: str, url: str, **headers: str) -> None:
        response = client.get(url, **headers)  # warm-up (and the size)
        assert response.status_code == 200, response.content[:500]
        size = len(response.content)
        queries: list[str] = []
        with connection.execute_wrapper(
            lambda run, sql, *args: queries.append(sql) or run(sql, *args)
        ):
            client.get(url, **headers)
        times = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            client.get(url, **headers)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        p95 = times[max(0, int(len(times) * 0.95) - 1)]
        print(
            f"  {label:<34} median {statistics.median(times):6.1f} ms  p95 {p95:6.1f} ms  "
            f"{size / 1024:7.1f} KiB  {len(queries)} queries   {url}"
        )

    print(f"  ({ROUNDS} requests each, django.test.Client, session login)")
    base = f"/api/tasks/{task.pk}/logs"
    measure("API newest page (200)", base)
    measure("API earlier page (200, middle)", f"{base}?before={middle}")
    measure("API earlier page (1000, middle)", f"{base}?before={middle}&limit=1000")
    measure("API oldest page (after=0)", f"{base}?after=0")
    measure("API newest ERROR page", f"{base}?level=ERROR")
    measure("HTML log modal (200)", f"/tasks/{task.pk}/logs", HTTP_HX_REQUEST="true")
    measure(
        "HTML load earlier (200, middle)",
        f"/tasks/{task.pk}/logs/entries?before={middle}",
        HTTP_HX_REQUEST="true",
    )


if __name__ == "__main__":
    main()
