"""`make run-scaled`: the scaled topology from one command, and Ctrl+C stops all of it."""

from __future__ import annotations

import contextlib
import os
import re
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
from tests.scale.conftest import REDIS_URL
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


@pytest.fixture
def scaled_run():
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
        # Only a second Ctrl+C can end a running task here (see the test).
        "WORKER_SHUTDOWN_TIMEOUT": "3600",
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
    yield run
    # Whatever the test did: nothing of it may survive.
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", log_path.read_text())]
    for pid in [proc.pid, *pids]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _drop(name)


def test_it_runs_two_web_and_two_worker_processes_and_ctrl_c_stops_them(scaled_run):
    proc, ports, log = scaled_run["proc"], scaled_run["ports"], scaled_run["log"]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def serving() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"run_scaled.sh exited:\n{log.read_text()}")
        try:
            return all(requests.get(u + "/accounts/login/", timeout=1).ok for u in urls)
        except requests.RequestException:
            return False

    wait_until(serving, 120, "both web processes")
    wait_until(lambda: log.read_text().count("running 1 thread(s)") == 2, 30, "both workers")
    text = log.read_text()
    assert f"Created the PostgreSQL database {scaled_run['db']!r}" in text
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
        check = _manage(scaled_run, "check_workers")
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
            scaled_run,
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
    children = [int(p) for p in re.findall(r"\(pid (\d+)\)", log.read_text())]
    assert len(children) == 4 and busy in children
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
    wait_until(lambda: not any(_alive(pid) for pid in children), 10, "every process gone")
    text = log.read_text()
    assert "Stopping now" in text
    assert f"handed back task(s) #{long_id}" in text


def _manage(run: dict, *args: str) -> str:
    """``manage.py`` on the scaled topology's settings, as another machine would run it."""
    done = run_manage({**run["env"], "WORKER_MODE": "external"}, *args, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
