"""Nothing lost, nothing run twice: many tasks over many workers, many answers at once."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.db.models import Count, Q
from django_tasks_db.models import DBTaskResult

from tasks_app import engine
from tasks_app.models import InputRequest, Status, Task
from tests.e2e.superset_servers import (
    SECURE_ANALYTICS_KEY,
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE_NAMES,
    SECURE_PASSWORD,
    SECURE_SALES_TITLE,
    SupersetAdmin,
)
from tests.scale.conftest import add_environments, start_migration
from tests.scale.helpers import wait_until

pytestmark = pytest.mark.scale

TASKS = 200
WORKERS = 4


def test_200_queued_probes_over_4_workers_each_run_exactly_once(cluster):
    tasks = [engine.submit("probe", owner=None, params={"seconds": 0}) for _ in range(TASKS)]
    ids = [t.pk for t in tasks]
    workers = [cluster.worker(f"w{n}") for n in range(1, WORKERS + 1)]
    for worker in workers:
        worker.wait_ready()
    started = time.monotonic()
    wait_until(
        lambda: Task.objects.filter(pk__in=ids, status=Status.SUCCESS).count() == TASKS,
        120,
        "every probe to succeed",
        step=0.2,
    )
    elapsed = time.monotonic() - started

    rows = Task.objects.filter(pk__in=ids).annotate(
        runs=Count("log_entries", filter=Q(log_entries__message="Probe ran"))
    )
    assert sorted({(t.status, t.attempts, t.runs) for t in rows}) == [(Status.SUCCESS, 1, 1)]
    ran_on = Counter(
        entry["worker"]
        for entry in Task.objects.filter(pk__in=ids, log_entries__message="Probe ran").values_list(
            "log_entries__context", flat=True
        )
    )
    assert sum(ran_on.values()) == TASKS
    assert set(ran_on) == {w.name for w in workers}  # all four took their share
    messages = DBTaskResult.objects.all()
    assert messages.count() == TASKS
    assert set(messages.values_list("status", flat=True)) == {"SUCCESSFUL"}
    print(
        f"\n{TASKS} probes on {WORKERS} workers in {elapsed:.1f} s "
        f"({TASKS / elapsed * 60:.0f} tasks/min); per worker {dict(sorted(ran_on.items()))}"
    )


def test_ten_concurrent_resumes_through_two_web_processes_resume_once(cluster, superset):
    target = SupersetAdmin(superset["target"])
    target.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    webs = [cluster.web("web1"), cluster.web("web2")]
    workers = [cluster.worker("w1"), cluster.worker("w2")]
    for proc in [*webs, *workers]:
        proc.wait_ready()
    api = webs[0].session()
    add_environments(api, superset)
    (dashboard,) = SupersetAdmin(superset["source"]).dashboards_by_title(SECURE_SALES_TITLE)
    task_id = start_migration(api, dashboard["id"])
    api.wait_for_status(task_id, {"AWAITING_INPUT"}, timeout=60)

    sessions = [webs[n % 2].session() for n in range(10)]  # ten people, both processes
    barrier = threading.Barrier(len(sessions))
    answers: list[int] = []

    def resume(session) -> None:
        barrier.wait()
        answer = session.post(
            f"/api/tasks/{task_id}/resume",
            json={"passwords": {SECURE_ANALYTICS_KEY: SECURE_PASSWORD}},
        )
        answers.append(answer.status_code)

    threads = [threading.Thread(target=resume, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(answers) == [202] + [409] * 9

    task = api.wait_for_status(task_id, {"SUCCESS", "FAILED"}, timeout=60)
    assert task["status"] == "SUCCESS", task
    messages = list(Task.objects.get(pk=task_id).log_entries.values_list("message", flat=True))
    assert sum(m.startswith("Input received") for m in messages) == 1
    assert sum(m.startswith("Exporting") for m in messages) == 1
    assert InputRequest.objects.filter(task_id=task_id, state="ANSWERED").count() == 1
    # The first run and exactly one resume.
    assert DBTaskResult.objects.filter(args_kwargs__args=[task_id]).count() == 2
