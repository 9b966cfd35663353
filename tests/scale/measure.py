"""Measurements shared by the scale tests (which assert on them) and bench/scale.py
(which reports them). Each takes a running ``Cluster`` and the ORM of its database.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from dataclasses import dataclass, field

from tests.cluster import Cluster, Web, Worker
from tests.scale.helpers import Listeners, percentile, wait_until


@dataclass
class FanOut:
    clients: int
    tasks: int
    events_per_client: int  # status changes expected by every client
    complete_clients: int  # clients that received every one of them
    final_clients: int = 0  # clients whose newest version of every task is SUCCESS
    latencies: list[float] = field(default_factory=list)  # seconds, every delivery

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 95)

    @property
    def max(self) -> float:
        return max(self.latencies)


def fan_out(
    cluster: Cluster, web: Web, *, clients: int, tasks: int, spacing: float = 0.0
) -> FanOut:
    """``clients`` WebSockets on ``web`` while ``tasks`` probes run.

    Another process (``manage.py shell``) queues them, all at once (a burst)
    or ``spacing`` seconds apart; the cluster's workers run them. Each client
    must receive every status change (PENDING, RUNNING, SUCCESS) of every
    task, in whatever order they arrive (PENDING comes from the queueing
    process, the others from a worker), and end on SUCCESS: the newest
    version it got. A delivery's latency is its arrival time minus the time
    the database records for that change.
    """
    from tasks_app.models import Task

    session = web.session()
    listeners = Listeners(web.url, dict(session.cookies))
    try:
        socks = listeners.open("/ws/tasks/?format=json", clients, timeout=120)
        refused = [s for s in socks if not s.opened.is_set()]
        assert not refused, f"{len(refused)} sockets refused: {refused[0].error}"
        out = cluster.manage(
            "shell",
            "-c",
            "import time\n"
            "from tasks_app import engine\n"
            "ids = []\n"
            f"for _ in range({tasks}):\n"
            "    ids.append(engine.submit('probe', owner=None, params={'seconds': 0}).pk)\n"
            f"    time.sleep({spacing})\n"
            "print('IDS', *ids)",
        )
        (line,) = [line for line in out.splitlines() if line.startswith("IDS ")]
        ids = [int(i) for i in line.split()[1:]]
        wanted = {(i, s) for i in ids for s in ("PENDING", "RUNNING", "SUCCESS")}

        def everyone_has_all() -> bool:
            return all(
                wanted <= {(e.data["id"], e.data["status"]) for e in s.received} for s in socks
            )

        # Whoever misses something is counted as incomplete below.
        with contextlib.suppress(AssertionError):
            wait_until(everyone_has_all, 60, "every client to receive every change", step=0.2)
    finally:
        listeners.close()

    changed_at = {}
    for task in Task.objects.filter(pk__in=ids):
        changed_at[(task.pk, "PENDING")] = task.created_at.timestamp()
        changed_at[(task.pk, "RUNNING")] = task.started_at.timestamp()
        changed_at[(task.pk, "SUCCESS")] = task.finished_at.timestamp()
    result = FanOut(clients, tasks, len(wanted), 0)
    for sock in socks:
        seen = set()
        for received in sock.received:
            key = (received.data["id"], received.data["status"])
            if key in wanted and key not in seen:
                seen.add(key)
                result.latencies.append(received.at - changed_at[key])
        result.complete_clients += seen == wanted
        result.final_clients += all(sock.last_status(i) == "SUCCESS" for i in ids)
    return result


@dataclass
class Detection:
    seconds: float  # from kill -9 to the task out of RUNNING on the dead worker
    interval: float
    timeout: float


def dead_worker_detection(cluster: Cluster, workers: list[Worker]) -> Detection:
    """``kill -9`` the worker running a long probe; time until the task is requeued."""
    from tasks_app import engine
    from tasks_app.models import Status, Task

    names = {w.name: w for w in workers}
    task = engine.submit("probe", owner=None, params={"seconds": 30})

    def running_on(allowed: set[str]) -> Task | None:
        current = Task.objects.get(pk=task.pk)
        return (
            current if current.status == Status.RUNNING and current.worker_id in allowed else None
        )

    first = wait_until(lambda: running_on(set(names)), 15, "the probe to start")
    victim = names[first.worker_id]
    victim.kill()
    killed = time.monotonic()
    wait_until(lambda: running_on({victim.name}) is None, 300, "the reaper", step=0.01)
    seconds = time.monotonic() - killed
    Task.objects.get(pk=task.pk).cancel()
    wait_until(
        lambda: Task.objects.get(pk=task.pk).status in (Status.CANCELLED, Status.FAILED),
        10,
        "the cancellation",
    )
    env = cluster.env
    return Detection(
        seconds, float(env["TASK_HEARTBEAT_INTERVAL"]), float(env["TASK_HEARTBEAT_TIMEOUT"])
    )


@dataclass
class Throughput:
    tasks: int
    workers: int
    seconds: float
    exactly_once: bool

    @property
    def per_minute(self) -> float:
        return self.tasks / self.seconds * 60


def throughput(cluster: Cluster, workers: list[Worker], *, tasks: int) -> Throughput:
    """Queue ``tasks`` probes (0 s) in one go for ready workers; time until all succeeded."""
    from django.db.models import Count, Q

    from tasks_app import engine
    from tasks_app.models import Status, Task

    started = time.monotonic()
    ids = [engine.submit("probe", owner=None, params={"seconds": 0}).pk for _ in range(tasks)]
    wait_until(
        lambda: Task.objects.filter(pk__in=ids, status=Status.SUCCESS).count() == tasks,
        300,
        "every probe",
        step=0.05,
    )
    seconds = time.monotonic() - started
    rows = Task.objects.filter(pk__in=ids).annotate(
        runs=Count("log_entries", filter=Q(log_entries__message="Probe ran"))
    )
    once = {(t.attempts, t.runs) for t in rows} == {(1, 1)}
    return Throughput(tasks, len(workers), seconds, once)


def start_delays(count: int, pause: float = 0.3) -> list[float]:
    """Queue probes one at a time (idle workers) and return queued → started, in seconds.

    A random pause between them, so queueing does not fall in step with polling.
    """
    from tasks_app import engine
    from tasks_app.models import Task

    delays = []
    for _ in range(count):
        task = engine.submit("probe", owner=None, params={"seconds": 0})
        done = wait_until(
            lambda task=task: Task.objects.filter(pk=task.pk, finished_at__isnull=False).first(),
            10,
            "the probe",
            step=0.01,
        )
        delays.append((done.started_at - done.created_at).total_seconds())
        time.sleep(pause + random.random())
    return delays
