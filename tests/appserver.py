"""The real app, started as its own process, the way `make run` serves it.

End-to-end and browser tests talk to it over HTTP and WebSockets, so they
exercise daphne, the ASGI routing, the embedded worker threads and the
in-memory channel layer exactly as a user gets them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ADMIN = ("admin", "admin-pass-123")
USER = ("alice", "alice-pass-123")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    def __init__(
        self, data_dir: str | None = None, extra_env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="migrator-app-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATA_DIR": self.data_dir,
            "TASKS_EMBEDDED_WORKERS": "1",
            "DJANGO_SETTINGS_MODULE": "migrator.settings",
            "WORKER_POLL_INTERVAL": "1",
            **(extra_env or {}),
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(self.data_dir) / "server.log"

    def manage(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [str(BIN / "python"), "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def prepare(self) -> None:
        self.manage("migrate", "--noinput", "-v0")
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User;"
            f"User.objects.create_superuser('{ADMIN[0]}', '', '{ADMIN[1]}');"
            f"User.objects.create_user('{USER[0]}', '', '{USER[1]}')",
        )

    def start(self) -> AppServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            [
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "migrator.asgi:application",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"The app exited at start:\n{self.log()}")
            try:
                requests.get(self.url + "/accounts/login/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"The app did not answer within 30 s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def session(self, credentials: tuple[str, str] = ADMIN) -> ApiSession:
        return ApiSession(self.url, *credentials)


class ApiSession(requests.Session):
    """A logged-in browser-like session: session cookie, CSRF header on writes."""

    def __init__(self, base: str, username: str, password: str) -> None:
        super().__init__()
        self.base = base
        self.get(base + "/accounts/login/", timeout=10)
        answer = self.post(
            base + "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": self.cookies["csrftoken"],
            },
            allow_redirects=False,
            timeout=10,
        )
        if answer.status_code != 302:
            raise RuntimeError(f"Login as {username} failed: {answer.status_code}")
        self.headers["X-CSRFToken"] = self.cookies["csrftoken"]

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", 30)
        return super().request(
            method, url if url.startswith("http") else self.base + url, *args, **kwargs
        )

    def wait_for_status(self, task_id: int, statuses: set[str], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.get(f"/api/tasks/{task_id}").json()
            if task["status"] in statuses:
                return task
            time.sleep(0.2)
        raise AssertionError(f"Task {task_id} still {task['status']} after {timeout} s")
