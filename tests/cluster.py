"""The scaled-out topology, process by process: web (daphne) and worker processes.

A sibling of ``tests/appserver.py`` for the scale tests and ``bench/scale.py``,
started the same way (``tests/processes.py``): every process shares one PostgreSQL database, one Redis channel layer, one
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

import os
import signal
import tempfile
from pathlib import Path

from tests.appserver import ADMIN, ApiSession
from tests.processes import Process, app_env, daphne_argv, free_port, manage, manage_argv


class Proc(Process):
    """One server process of the cluster, restartable with the same name and port."""

    def __init__(self, cluster: Cluster, name: str, argv: list[str], port: int | None) -> None:
        super().__init__(
            name,
            argv,
            env=cluster.env,
            log_path=Path(cluster.data_dir) / f"{name}.log",
            port=port,
        )
        self.cluster = cluster


class Web(Proc):
    def wait_ready(self, timeout: float = 60) -> Web:
        return self.wait_for_http(timeout)

    def session(self, credentials: tuple[str, str] = ADMIN) -> ApiSession:
        return ApiSession(self.url, *credentials)


class Worker(Proc):
    @property
    def worker_id(self) -> str:
        return self.name

    def wait_ready(self, timeout: float = 60) -> Worker:
        return self.wait_for_log(f"Worker {self.name} running", timeout)


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
        self.env = app_env(
            self.data_dir,
            {
                "DATABASE_URL": database_url,
                "CHANNEL_LAYER_URL": channel_layer_url,
                "WORKER_MODE": "external",
                "TASKS_EMBEDDED_WORKERS": "0",
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            },
        )
        self.procs: list[Proc] = []

    def manage(self, *args: str, timeout: float = 180) -> str:
        return manage(self.env, *args, timeout=timeout)

    def web(self, name: str, *, start: bool = True) -> Web:
        port = free_port()
        proc = Web(self, name, daphne_argv(port), port)
        self.procs.append(proc)
        return proc.start() if start else proc

    def worker(self, name: str, *, threads: int = 1, start: bool = True) -> Worker:
        argv = manage_argv("run_worker", "--worker-id", name, "--threads", str(threads))
        proc = Worker(self, name, argv, None)
        self.procs.append(proc)
        return proc.start() if start else proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.signal(signal.SIGTERM)
        for proc in self.procs:
            proc.stop(timeout=10)


class PrivateRedis(Process):
    """A redis-server of our own on its own port, to stop and start at will."""

    def __init__(self, port: int | None = None) -> None:
        port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="migrator-redis-")
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", self.dir]
        super().__init__(
            "redis-server",
            argv,
            env=dict(os.environ),
            log_path=Path(self.dir) / "redis.log",
            port=port,
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, extra_env: dict[str, str] | None = None) -> PrivateRedis:
        import redis

        super().start(extra_env=extra_env)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        return self.wait_until(answers, "answer to PING", timeout=10, interval=0.05)

    def stop(self, timeout: float = 15) -> int | None:
        self.kill()
        return self.popen.returncode if self.popen is not None else None
