"""Scale-out numbers, written to bench/RESULTS.md ("Scale-out" section).

    .venv/bin/python bench/scale.py [--clients 300] [--tasks 200] [--workers 4]

Runs the scaled topology as the scale tests do (tests/cluster.py): daphne
web processes and `manage.py run_worker` processes on a throw-away
PostgreSQL database (created and dropped here) and the machine's Redis.
Measures:

- the time to detect a worker killed with ``kill -9`` (task requeued), with
  the heartbeat settings of the tests (0.5 s interval, 3 s timeout);
- WebSocket delivery to N clients on one web process: status changes one at
  a time, and a burst of tasks;
- tasks per minute across 4 worker processes (exactly-once checked);
- the time from queueing a task to its start on an idle worker process, with
  PostgreSQL LISTEN/NOTIFY (WORKER_NOTIFY=true) and with polling only.

Prints the numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "RESULTS.md"

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/migrator_bench_scale"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
HEARTBEAT = {"TASK_HEARTBEAT_INTERVAL": "0.5", "TASK_HEARTBEAT_TIMEOUT": "3"}


def _recreate_database(drop_only: bool = False) -> None:
    import psycopg
    from psycopg import sql

    url = urlsplit(DATABASE_URL)
    name = unquote(url.path.strip("/"))
    with psycopg.connect(
        dbname="postgres",
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=unquote(url.username or ""),
        password=unquote(url.password or ""),
        autocommit=True,
    ) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "migrator.settings"
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="scale-bench-")
    os.environ.pop("CHANNEL_LAYER_URL", None)  # this process only queues and reads
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from tests.appserver import ADMIN

    User.objects.create_superuser(ADMIN[0], "", ADMIN[1])


def _cluster(**env: str):
    from django.conf import settings

    from tests.cluster import Cluster

    return Cluster(
        database_url=DATABASE_URL,
        channel_layer_url=REDIS_URL,
        env={
            "SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            **HEARTBEAT,
            **env,
        },
    )


def _ready(*procs):
    for proc in procs:
        proc.wait_ready()
    return procs


def measure(args: argparse.Namespace) -> dict:
    from tests.scale import measure as m

    results: dict = {}

    print("Dead worker detection (kill -9)…", flush=True)
    cluster = _cluster()
    try:
        workers = [cluster.worker("a"), cluster.worker("b")]
        _ready(*workers)
        runs = []
        for n in range(args.kills):
            detection = m.dead_worker_detection(cluster, workers)
            runs.append(detection.seconds)
            print(f"  run {n + 1}: {detection.seconds:.2f} s", flush=True)
            # Replace the dead one, so two workers are up for the next run.
            workers = [w for w in workers if w.alive()]
            workers.append(cluster.worker(f"r{n}").wait_ready())
        results["detection"] = runs
    finally:
        cluster.stop()

    print(f"Throughput: {args.tasks} probes on {args.workers} workers…", flush=True)
    cluster = _cluster()
    try:
        workers = [cluster.worker(f"w{n}") for n in range(1, args.workers + 1)]
        _ready(*workers)
        results["throughput"] = m.throughput(cluster, workers, tasks=args.tasks)
        print(f"  {results['throughput'].per_minute:.0f} tasks/min", flush=True)
    finally:
        cluster.stop()

    for notify in ("true", "false"):
        print(f"Queue → start on an idle worker process, WORKER_NOTIFY={notify}…", flush=True)
        cluster = _cluster(WORKER_NOTIFY=notify)
        try:
            _ready(cluster.worker("w1"), cluster.worker("w2"))
            time.sleep(1)
            results[f"start_{notify}"] = m.start_delays(args.starts)
            print(f"  median {statistics.median(results[f'start_{notify}']) * 1000:.0f} ms")
        finally:
            cluster.stop()

    print(f"Fan-out: {args.clients} WebSocket clients on one web process…", flush=True)
    cluster = _cluster()
    try:
        web = cluster.web("web1")
        _ready(web, cluster.worker("w1"), cluster.worker("w2"))
        results["single"] = m.fan_out(cluster, web, clients=args.clients, tasks=10, spacing=0.5)
        results["burst"] = m.fan_out(cluster, web, clients=args.clients, tasks=args.burst)
        for name in ("single", "burst"):
            r = results[name]
            print(f"  {name}: p50 {r.p50 * 1000:.0f} ms, p95 {r.p95 * 1000:.0f} ms", flush=True)
    finally:
        cluster.stop()
    return results


def report(results: dict, args: argparse.Namespace) -> str:
    detection = results["detection"]
    t = results["throughput"]
    single, burst = results["single"], results["burst"]
    notify, poll = results["start_true"], results["start_false"]

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms"

    return f"""## Scale-out

`bench/scale.py` on {platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()}),
{time.strftime("%Y-%m-%d")}: daphne web processes and `manage.py run_worker`
processes on PostgreSQL (a throw-away database) and the machine's Redis
(`RedisPubSubChannelLayer`), everything on this one machine.

| What | Result |
|---|---|
| Dead worker detected (`kill -9` mid-task → task requeued), heartbeat 0.5 s / timeout 3 s | median {statistics.median(detection):.2f} s, max {max(detection):.2f} s ({len(detection)} kills) |
| Tasks per minute, {t.workers} worker processes × 1 thread, {t.tasks} probes (0 s each) | **{t.per_minute:.0f}/min** ({t.tasks} in {t.seconds:.1f} s; each ran exactly once: {"yes" if t.exactly_once else "NO"}) |
| Queue → start on an idle worker process, `WORKER_NOTIFY=true` (LISTEN/NOTIFY) | median {ms(statistics.median(notify))}, max {ms(max(notify))} ({len(notify)} tasks) |
| Queue → start, `WORKER_NOTIFY=false` (poll every `WORKER_POLL_INTERVAL` = 1 s) | median {ms(statistics.median(poll))}, max {ms(max(poll))} |
| WebSocket delivery, {single.clients} clients on one web process, changes one at a time ({single.events_per_client} changes) | p50 {ms(single.p50)}, **p95 {ms(single.p95)}**, max {ms(single.max)}; every client got every change: {"yes" if single.complete_clients == single.clients else "NO"} |
| WebSocket delivery, {burst.clients} clients, a burst of {burst.tasks} tasks ({burst.events_per_client} changes, {burst.clients * burst.events_per_client:,} deliveries) | p50 {ms(burst.p50)}, p95 {ms(burst.p95)}, max {ms(burst.max)}; complete: {"yes" if burst.complete_clients == burst.clients else "NO"} |

- Detection time is the heartbeat timeout give or take one interval: the
  last beat came up to one interval before the kill, and a housekeeping
  thread in every worker process looks for stale heartbeats once per
  interval, busy or not. With the defaults (5 s / 60 s) expect about 60 s;
  `TASK_HEARTBEAT_TIMEOUT` trades detection time against false alarms on a
  stalled machine (a reaped run that is still alive stops at its next check).
- Delivery latency is measured from the time the database records for the
  change to its arrival in a client, the {single.clients} clients running in
  one Python process on the same cores as the servers: an upper bound. The
  burst is bounded by the per-message work of one web process (Channels
  consumer + daphne) and of the client process; add web processes behind the
  proxy to spread browsers.
- Throughput is bounded by the per-task bookkeeping (claim, status
  changes, log entries, live updates) on PostgreSQL, not by the probe.
"""


def write(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## Scale-out\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--starts", type=int, default=20)
    args = parser.parse_args()
    _recreate_database()
    try:
        _setup_django()
        results = measure(args)
    finally:
        from django.db import connections

        connections.close_all()
        _recreate_database(drop_only=True)
    section = report(results, args)
    write(section)
    print(f"\nWrote the Scale-out section of {RESULTS.relative_to(ROOT)}:\n\n{section}")


if __name__ == "__main__":
    main()
