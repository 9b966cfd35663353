"""Starting the app's processes for tests, in one place.

``manage.py`` in its own process, daphne's command line, "wait until it
answers", stopping and reading a process's log: used by ``tests/appserver.py``
(one server, the way ``make run`` serves it), ``tests/cluster.py`` (the web and
worker processes of a scaled-out deployment) and the ``manage`` fixture.

Every process runs in its own process group, so a signal reaches it and
whatever it started, and nothing else (``kill -9`` a worker, not the suite).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import requests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Served by every web process without a login: it answers once the app is up.
READY_PATH = "/accounts/login/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_env(data_dir: str, values: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process of the app: this one's, its ``DATA_DIR``, then
    ``values``. Never ``DJANGO_ALLOW_ASYNC_UNSAFE``: the browser tests set it for
    their own process; the app must run without it."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "migrator.settings",
        "DATA_DIR": data_dir,
        **(values or {}),
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


def manage_argv(*args: str) -> list[str]:
    return [str(BIN / "python"), "manage.py", *args]


def daphne_argv(port: int) -> list[str]:
    """The web process, as ``make run`` and a deployment start it."""
    return [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "migrator.asgi:application"]


def run_manage(
    env: dict[str, str], *args: str, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``manage.py`` in its own process, as an operator or cron runs it: no
    terminal, and stdin only when ``input`` is given."""
    return subprocess.run(
        manage_argv(*args),
        cwd=REPO,
        env=env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def manage(env: dict[str, str], *args: str, input: str | None = None, timeout: float = 120) -> str:
    """``run_manage`` that must succeed; what it printed."""
    result = run_manage(env, *args, input=input, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


class Process:
    """One process, restartable with the same name, command line and port; its
    output (of every start) goes to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        log_path: Path,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.port = port
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, *, extra_env: dict[str, str] | None = None) -> Self:
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                cwd=REPO,
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: signals reach only it
            )
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

    def wait_until(
        self, ready: Callable[[], bool], what: str, timeout: float, interval: float = 0.1
    ) -> Self:
        """Until ``ready()``; fails at once, with the log, if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return self
            if not self.alive():
                raise RuntimeError(f"{self.name} exited before {what}:\n{self.log()[-4000:]}")
            time.sleep(interval)
        raise RuntimeError(f"{self.name}: no {what} within {timeout} s:\n{self.log()[-4000:]}")

    def wait_for_log(self, text: str, timeout: float = 30) -> Self:
        return self.wait_until(lambda: text in self.log(), repr(text), timeout, interval=0.05)

    def wait_for_http(self, timeout: float = 60) -> Self:
        """Until the web process answers HTTP (any status)."""

        def answers() -> bool:
            try:
                requests.get(self.url + READY_PATH, timeout=1)
            except requests.RequestException:
                return False
            return True

        return self.wait_until(answers, "answer over HTTP", timeout)
