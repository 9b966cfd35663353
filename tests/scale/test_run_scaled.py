"""`make run-scaled`: the scaled topology from one command under supervisord; a
process that dies is started again, and Ctrl+C stops all of it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection
from psycopg import sql

from tests.appserver import ApiSession
from tests.processes import free_port, run_manage
from tests.scale.conftest import FAST_HEARTBEAT, REDIS_URL
from tests.scale.helpers import Listeners, wait_until

pytestmark = pytest.mark.scale

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "run-scaled-pass-123"


def _server() -> dict:
    db = connection.settings_dict
    return {
        "host": db["HOST"] or "127.0.0.1",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"],
    }


def _drop(name: str) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **_server()) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _spawned(log: Path) -> list[tuple[str, int]]:
    """Every start of a process by supervisord, in order: (name, pid)."""
    return [
        (name, int(pid))
        for name, pid in re.findall(r"spawned: '([^']+)' with pid (\d+)", log.read_text())
    ]


def _processes(log: Path) -> dict[str, int]:
    """The web and worker processes as last started: name -> pid."""
    return {name: pid for name, pid in _spawned(log) if name.startswith(("web_", "worker_"))}


def _all_pids(log: Path) -> list[int]:
    """supervisord and every process it ever started."""
    text = log.read_text()
    return [int(p) for p in re.findall(r"supervisord started with pid (\d+)", text)] + [
        pid for _, pid in _spawned(log)
    ]


@pytest.fixture
def scaled_run():
    """Start ``scripts/run_scaled.sh`` (what ``make run-scaled`` runs) with extra
    environment; one run per test."""
    started: list[dict] = []

    def start(extra_env: dict[str, str] | None = None) -> dict:
        # Named after this run's test database: two suites on one machine (each
        # with its own DATABASE_URL) must not drop each other's.
        name = f"{connection.settings_dict['NAME']}_run"
        _drop(name)
        server = _server()
        auth = server["user"] + (f":{server['password']}" if server["password"] else "")
        ports = [free_port(), free_port()]
        data_dir = tempfile.mkdtemp(prefix="migrator-run-scaled-")
        log_path = Path(data_dir) / "run_scaled.log"
        env = {
            **os.environ,
            "BIN": str(Path(sys.executable).parent),
            "DATABASE_URL": f"postgres://{auth}@{server['host']}:{server['port']}/{name}",
            "CHANNEL_LAYER_URL": REDIS_URL,
            "DATA_DIR": data_dir,
            "WEB_PORTS": " ".join(map(str, ports)),
            "DJANGO_SUPERUSER_USERNAME": "admin",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
            **(extra_env or {}),
        }
        for key in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "TASKS_EMBEDDED_WORKERS", "WORKER_MODE"):
            env.pop(key, None)
        # Ctrl+C must reach the script as a terminal delivers it. A suite started
        # in the background (`make test &`, nohup, a CI agent) runs with SIGINT
        # ignored, children inherit that, and bash cannot trap a signal it was
        # started ignoring: the script never saw the test's Ctrl+C and never
        # stopped. A handler (not "ignore") is reset to the default by exec.
        inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            # Not opened for appending: the script makes its output append
            # (supervisord copies the processes' output to the same file).
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    ["bash", "scripts/run_scaled.sh"],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        finally:
            signal.signal(signal.SIGINT, inherited)
        run = {"proc": proc, "ports": ports, "env": env, "log": log_path, "db": name}
        started.append(run)
        return run

    yield start
    # Whatever the test did: nothing of it may survive.
    for run in started:
        proc, log_path = run["proc"], run["log"]
        for pid in [proc.pid, *_all_pids(log_path)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for leftover in re.findall(r"RUN_SCALED_DIR=(\S+)", log_path.read_text()):
            shutil.rmtree(leftover, ignore_errors=True)  # removed by the script's own stop
        _drop(run["db"])


def _wait_serving(run: dict) -> list[str]:
    """Until both web processes answer and both workers run; their URLs."""
    proc, log = run["proc"], run["log"]
    urls = [f"http://127.0.0.1:{port}" for port in run["ports"]]

    def serving() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"run_scaled.sh exited:\n{log.read_text()}")
        try:
            return all(requests.get(u + "/accounts/login/", timeout=1).ok for u in urls)
        except requests.RequestException:
            return False

    wait_until(serving, 120, "both web processes")
    wait_until(lambda: log.read_text().count("running 1 thread(s)") == 2, 60, "both workers")
    return urls


def test_it_runs_two_web_and_two_worker_processes_and_ctrl_c_stops_them(scaled_run):
    # Only a second Ctrl+C can end a running task here (see below).
    run = scaled_run({"WORKER_SHUTDOWN_TIMEOUT": "3600"})
    proc, log = run["proc"], run["log"]
    urls = _wait_serving(run)
    text = log.read_text()
    assert f"Created the PostgreSQL database {run['db']!r}" in text
    assert "postgres://" in text and "@" not in text.split("Scaled out:")[1].split("\n")[0]

    # Static files: collected, hashed names, served by WhiteNoise with long caching.
    page = requests.get(urls[1] + "/accounts/login/", timeout=5).text
    scripts = re.findall(r'src="(/static/[^"]+\.js)"', page)
    assert scripts and all(re.search(r"\.[0-9a-f]{12}\.js$", s) for s in scripts), scripts
    for url in urls:
        answer = requests.get(url + scripts[-1], timeout=5)
        assert answer.status_code == 200
        assert "immutable" in answer.headers["Cache-Control"]

    # One machine's command line queues a task; a worker process runs it; a
    # browser on web process 1 sees it live.
    session = ApiSession(urls[0], "admin", PASSWORD)
    listeners = Listeners(urls[0], dict(session.cookies))
    try:
        sock = listeners.one("/ws/tasks/?format=json")
        check = _manage(run, "check_workers")
        task_id = int(re.search(r"probe task #(\d+)", check).group(1))
        wait_until(lambda: "SUCCESS" in sock.statuses(task_id), 10, "SUCCESS on web 1")
        # PENDING comes from the command's process, the rest from the worker's:
        # in either order, each with its version; the newest is SUCCESS.
        assert sock.statuses(task_id) == ["PENDING", "RUNNING", "SUCCESS"]
        assert sock.last_status(task_id) == "SUCCESS"
    finally:
        listeners.close()

    # A long task on one worker, then Ctrl+C: the script stops every process it
    # started; the busy worker finishes its task first...
    long_id = int(
        _manage(
            run,
            "shell",
            "-c",
            "from tasks_app import engine; "
            "print(engine.submit('probe', owner=None, params={'seconds': 3600}).pk)",
        ).split()[-1]
    )

    def running_on() -> int | None:
        entries = session.get(f"/api/tasks/{long_id}/logs").json()["entries"]
        ran = [e["context"]["worker"] for e in entries if e["message"] == "Probe ran"]
        return int(ran[0].split("-")[-2]) if ran else None  # host-pid-random

    busy = wait_until(running_on, 30, "the long probe to start")
    children = list(_processes(log).values())
    assert len(children) == 4 and busy in children
    everything = _all_pids(log)  # supervisord and its event listener too
    stopped = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    wait_until(
        lambda: not any(_alive(pid) for pid in children if pid != busy),
        30,
        "the web processes and the idle worker to stop",
    )
    print(f"\nCtrl+C: web processes and idle worker gone in {time.monotonic() - stopped:.1f} s")
    assert "Stopping 4 process(es)" in log.read_text()
    assert _alive(busy) and proc.poll() is None  # an hour to finish its task
    for url in urls:
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/accounts/login/", timeout=2)

    # ...unless Ctrl+C comes again: "stop now", the task is handed back.
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) != 0
    wait_until(lambda: not any(_alive(pid) for pid in everything), 10, "every process gone")
    text = log.read_text()
    assert "Stopping now" in text
    assert f"handed back task(s) #{long_id}" in text


TIMEOUT = float(FAST_HEARTBEAT["TASK_HEARTBEAT_TIMEOUT"])
PROBES = 30
PROBE_SECONDS = 1.5


def test_a_process_killed_with_kill_9_is_started_again_and_no_task_is_lost(scaled_run):
    """kill -9 of a busy worker and of a web process: supervisord starts both
    again, the set keeps running, the worker's task moves on after the heartbeat
    timeout and every task ends, each run once (the lost one twice: its first
    run never finished)."""
    run = scaled_run({**FAST_HEARTBEAT, "WORKER_POLL_INTERVAL": "1"})
    proc, log = run["proc"], run["log"]
    urls = _wait_serving(run)
    queued = _manage(
        run,
        "shell",
        "-c",
        "from tasks_app import engine\n"
        f"for _ in range({PROBES}):\n"
        f"    print('probe', engine.submit('probe', owner=None, params={{'seconds': {PROBE_SECONDS}}}).pk)",
    )
    ids = [int(pk) for pk in re.findall(r"^probe (\d+)$", queued, re.M)]
    assert len(ids) == PROBES

    with psycopg.connect(dbname=run["db"], autocommit=True, **_server()) as db:

        def done() -> int:
            return db.execute(
                "SELECT count(*) FROM tasks_app_task WHERE id = ANY(%s) AND status = 'SUCCESS'",
                [ids],
            ).fetchone()[0]

        wait_until(lambda: done() >= 8, 120, "a first few probes to succeed")
        # A worker that has just started a probe (more than a second left).
        task_id, worker_id = wait_until(
            lambda: db.execute(
                "SELECT t.id, t.worker_id FROM tasks_app_task t"
                " JOIN tasks_app_tasklogentry e ON e.task_id = t.id"
                "  AND e.message = 'Probe ran' AND (e.context->>'attempt')::int = t.attempts"
                " WHERE t.status = 'RUNNING' AND t.worker_id <> ''"
                "  AND e.timestamp > now() - interval '0.3 seconds'"
                " ORDER BY e.id DESC LIMIT 1"
            ).fetchone(),
            60,
            "a worker starting a probe",
            step=0.02,
        )
        victim = int(worker_id.split("-")[-2])  # host-pid-random
        before = _processes(log)
        (victim_name,) = [name for name, pid in before.items() if pid == victim]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        os.kill(before["web_0"], signal.SIGKILL)

        lost = db.execute(
            "SELECT id, heartbeat_at FROM tasks_app_task WHERE status = 'RUNNING' AND worker_id = %s",
            [worker_id],
        ).fetchall()
        assert [pk for pk, _ in lost] == [task_id], "the probe ended before the kill"
        last_beat = lost[0][1]

        # The task moves on: requeued (its step is safe to repeat) by a worker's reaper.
        wait_until(
            lambda: db.execute(
                "SELECT 1 FROM tasks_app_task WHERE id = %s"
                " AND NOT (status = 'RUNNING' AND worker_id = %s)",
                [task_id, worker_id],
            ).fetchone(),
            TIMEOUT + 60,
            "the lost task to move on",
            step=0.02,
        )
        recovered = time.monotonic() - killed

        # supervisord started both again; the set kept running.
        def restarted(name: str) -> int | None:
            pid = _processes(log)[name]
            return pid if pid != before[name] and _alive(pid) else None

        new_worker = wait_until(lambda: restarted(victim_name), 60, f"{victim_name} again")
        wait_until(lambda: restarted("web_0"), 60, "web_0 again")
        wait_until(lambda: log.read_text().count("running 1 thread(s)") == 3, 60, "the new worker")
        wait_until(lambda: _answers(urls[0]), 60, "web_0 answering again")
        assert proc.poll() is None
        text = log.read_text()
        assert f"exited: {victim_name} (terminated by SIGKILL; not expected)" in text
        assert "exited: web_0 (terminated by SIGKILL; not expected)" in text

        # Every task ends; each ran once, but the one lost with its worker: twice.
        wait_until(lambda: done() == PROBES, 180, f"all {PROBES} probes to succeed")
        runs: dict[int, list[tuple[str, int]]] = {pk: [] for pk in ids}
        for pk, worker, attempt in db.execute(
            "SELECT task_id, context->>'worker', (context->>'attempt')::int"
            " FROM tasks_app_tasklogentry WHERE task_id = ANY(%s) AND message = 'Probe ran'"
            " ORDER BY id",
            [ids],
        ):
            runs[pk].append((worker, attempt))
        twice = {pk: r for pk, r in runs.items() if len(r) != 1}
        assert list(twice) == [task_id], twice
        (first, second) = twice[task_id]
        assert first == (worker_id, 1) and second[0] != worker_id and second[1] == 2
        assert all(r[0][1] == 1 for pk, r in runs.items() if pk != task_id)
        (lost_at,) = db.execute(
            "SELECT timestamp FROM tasks_app_tasklogentry WHERE task_id = %s"
            " AND message LIKE 'Worker lost during step ''probe''%%'",
            [task_id],
        ).fetchone()

    # Recovery takes about the heartbeat timeout: never before it (the reaper
    # waits for a heartbeat that old), and not much after (bound generous: a
    # busy machine).
    silent = (lost_at - last_beat).total_seconds()
    print(
        f"\nkill -9: task #{task_id} moved on {recovered:.1f} s after the kill"
        f" ({silent:.1f} s after its last heartbeat; timeout {TIMEOUT:g} s);"
        f" {victim_name} restarted as pid {new_worker}"
    )
    assert silent >= TIMEOUT
    assert recovered <= TIMEOUT + 30

    # Ctrl+C still stops everything.
    everything = _all_pids(log)
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=90) != 0
    wait_until(lambda: not any(_alive(pid) for pid in everything), 10, "every process gone")


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/accounts/login/", timeout=1).ok
    except requests.RequestException:
        return False


def _manage(run: dict, *args: str) -> str:
    """``manage.py`` on the scaled topology's settings, as another machine would run it."""
    done = run_manage({**run["env"], "WORKER_MODE": "external"}, *args, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
