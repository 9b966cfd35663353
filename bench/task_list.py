"""How fast are the task list and the API with 100,000 tasks and a million log entries?

PRODUCT.md's target: under 50 ms (p95). Numbers, not assertions:

    .venv/bin/python bench/task_list.py                     # SQLite, temporary DATA_DIR
    DATABASE_URL=postgres://… .venv/bin/python bench/task_list.py   # a throw-away database

Times the requests a user and a script make, through the real views with
django.test.Client: the migration page, "Load more", the status filter,
the JSON list (first page, a deep offset, a status filter) and one task.
"""

from __future__ import annotations

import os
import statistics
import time

from _django import bench_database  # first: sets up a throw-away DATA_DIR

TASKS = int(os.environ.get("BENCH_TASKS", "100000"))
ENTRIES = int(os.environ.get("BENCH_ENTRIES", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "40"))


def main() -> None:
    with bench_database("task_bench") as vendor:
        run(vendor)


def fill() -> None:
    from django.db import transaction
    from django.utils import timezone

    from tasks_app.models import Status, Task, TaskLogEntry

    statuses = [Status.SUCCESS] * 7 + [Status.FAILED, Status.CANCELLED, Status.AWAITING_INPUT]
    now = timezone.now()
    params = {
        "source": {"id": 1, "name": "dev", "url": "http://dev"},
        "target": {"id": 2, "name": "prod", "url": "http://prod"},
        "dashboards": [{"id": 1, "title": "Sales"}, {"id": 2, "title": "Ops"}],
        "overwrite": True,
    }
    started = time.perf_counter()
    with transaction.atomic():
        Task.objects.bulk_create(
            (
                Task(
                    kind="migration",
                    status=statuses[i % len(statuses)],
                    params=params,
                    created_at=now,
                    started_at=now,
                    finished_at=now,
                )
                for i in range(TASKS)
            ),
            batch_size=5000,
        )
    ids = list(Task.objects.values_list("id", flat=True))
    per_task = max(1, ENTRIES // len(ids))
    batch: list[TaskLogEntry] = []
    for task_id in ids:
        for n in range(per_task):
            batch.append(TaskLogEntry(task_id=task_id, message=f"step {n}", context={"n": n}))
        if len(batch) >= 20000:
            TaskLogEntry.objects.bulk_create(batch)
            batch.clear()
    TaskLogEntry.objects.bulk_create(batch)
    print(
        f"filled {TASKS:,} tasks and {per_task * len(ids):,} log entries in {time.perf_counter() - started:.0f} s"
    )


def run(vendor: str) -> None:
    from django.contrib.auth.models import User
    from django.db import connection, reset_queries
    from django.test import Client

    from tasks_app.models import Task

    fill()
    user = User.objects.create_user("bench", password="x")
    client = Client()
    client.force_login(user)
    middle = Task.objects.order_by("id").values_list("id", flat=True)[TASKS // 2]
    some = Task.objects.order_by("-id").values_list("id", flat=True)[5]
    cases = {
        "migration page": ("/", {}),
        "load more (middle)": (f"/tasks/rows/?before={middle}", {"HTTP_HX_REQUEST": "true"}),
        "filter FAILED (htmx)": ("/tasks/table/?status=FAILED", {"HTTP_HX_REQUEST": "true"}),
        "API /api/tasks": ("/api/tasks", {}),
        "API offset 50,000": ("/api/tasks?offset=50000&limit=50", {}),
        "API status=FAILED": ("/api/tasks?status=FAILED", {}),
        "API one task": (f"/api/tasks/{some}", {}),
    }
    print(f"{vendor}: {'request':<24}{'p50 ms':>9}{'p95 ms':>9}{'queries':>9}")
    from django.conf import settings

    for name, (url, headers) in cases.items():
        client.get(url, **headers)  # warm
        times = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            response = client.get(url, **headers)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        settings.DEBUG = True
        reset_queries()
        client.get(url, **headers)
        queries = len(connection.queries)
        settings.DEBUG = False
        times.sort()
        p95 = times[int(len(times) * 0.95) - 1]
        print(f"{'':<8}{name:<24}{statistics.median(times):>9.1f}{p95:>9.1f}{queries:>9}")


if __name__ == "__main__":
    main()
