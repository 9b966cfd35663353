"""The scaled-out topology, process by process: web (daphne) and worker processes.

A sibling of ``tests/appserver.py`` for the scale tests and ``bench/scale.py``:
every process shares one PostgreSQL database, one Redis channel layer, one
``DATA_DIR`` (the "shared storage" of saved bundles) and the same secrets, as
machines of a real deployment would. Each process runs in its own process
group, so a test can ``kill -9`` it (and whatever it started) precisely.

    cluster = Cluster(database_url=..., channel_layer_url=...)
    web = cluster.web("web1")           # daphne on a free port
    worker = cluster.worker("w1")       # manage.py run_worker --worker-id w1
    worker.kill()                       # SIGKILL: a crash, no clean-up
    cluster.stop()                      # SIGTERM everything, SIGKILL stragglers
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.appserver import ADMIN, ApiSession, free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class Proc:
    """One server process of the cluster, restartable with the same name and port."""

    def __init__(self, cluster: Cluster, name: str, argv: list[str], port: int | None) -> None:
        self.cluster = cluster
        self.name = name
        self.argv = argv
        self.port = port
        self.popen: subprocess.Popen | None = None
        self.log_path = Path(cluster.data_dir) / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, *, extra_env: dict[str, str] | None = None) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        log.write(f"\n--- start {time.strftime('%H:%M:%S')} ---\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env={**self.cluster.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: signals reach only it
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """``kill -9``: the process dies mid-whatever, nothing runs on its way out."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.popen is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Children of the group that outlived the leader (none expected).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {text!r} within {timeout} s:\n{self.log()[-4000:]}")


class Web(Proc):
    def start(self, *, extra_env: dict[str, str] | None = None) -> Web:
        super().start(extra_env=extra_env)
        return self

    def wait_ready(self, timeout: float = 60) -> Web:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start:\n{self.log()[-4000:]}")
            try:
                requests.get(self.url + "/accounts/login/", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s:\n{self.log()[-4000:]}")

    def session(self, credentials: tuple[str, str] = ADMIN) -> ApiSession:
        return ApiSession(self.url, *credentials)


class Worker(Proc):
    @property
    def worker_id(self) -> str:
        return self.name

    def wait_ready(self, timeout: float = 60) -> Worker:
        self.wait_for_log(f"Worker {self.name} running", timeout)
        return self


class Cluster:
    def __init__(
        self,
        *,
        database_url: str,
        channel_layer_url: str,
        data_dir: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="migrator-cluster-")
        self.database_url = database_url
        self.channel_layer_url = channel_layer_url
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "migrator.settings",
            "DATA_DIR": self.data_dir,
            "DATABASE_URL": database_url,
            "CHANNEL_LAYER_URL": channel_layer_url,
            "WORKER_MODE": "external",
            "TASKS_EMBEDDED_WORKERS": "0",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self.procs: list[Proc] = []

    def manage(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run(
            [str(BIN / "python"), "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def web(self, name: str, *, start: bool = True) -> Web:
        port = free_port()
        argv = [
            str(BIN / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "migrator.asgi:application",
        ]
        proc = Web(self, name, argv, port)
        self.procs.append(proc)
        return proc.start() if start else proc

    def worker(self, name: str, *, threads: int = 1, start: bool = True) -> Worker:
        argv = [
            str(BIN / "python"),
            "manage.py",
            "run_worker",
            "--worker-id",
            name,
            "--threads",
            str(threads),
        ]
        proc = Worker(self, name, argv, None)
        self.procs.append(proc)
        return proc.start() if start else proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.signal(signal.SIGTERM)
        for proc in self.procs:
            proc.stop(timeout=10)


class PrivateRedis:
    """A redis-server of our own on its own port, to stop and start at will."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.popen: subprocess.Popen | None = None
        self.dir = tempfile.mkdtemp(prefix="migrator-redis-")

    def start(self) -> PrivateRedis:
        self.popen = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)
