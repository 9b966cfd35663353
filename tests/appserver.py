"""The real app, started as its own process, the way `make run` serves it.

End-to-end and browser tests talk to it over HTTP and WebSockets, so they
exercise daphne, the ASGI routing, the embedded worker threads and the
in-memory channel layer exactly as a user gets them.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import requests

from tests.processes import Process, app_env, daphne_argv, free_port, manage

ADMIN = ("admin", "admin-pass-123")
USER = ("alice", "alice-pass-123")


class AppServer:
    def __init__(
        self, data_dir: str | None = None, extra_env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="migrator-app-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = app_env(
            self.data_dir,
            {"TASKS_EMBEDDED_WORKERS": "1", "WORKER_POLL_INTERVAL": "1", **(extra_env or {})},
        )
        self.process = Process(
            "The app",
            daphne_argv(self.port),
            env=self.env,
            log_path=Path(self.data_dir) / "server.log",
            port=self.port,
        )

    def manage(self, *args: str, input: str | None = None) -> str:
        return manage(self.env, *args, input=input)

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
        self.process.start().wait_for_http(timeout=30)
        return self

    def stop(self) -> None:
        self.process.stop(timeout=10)

    def log(self) -> str:
        return self.process.log()

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

    def migrate(
        self, source: str, target: str, dashboard_ids: list[int], timeout: float = 240, **options
    ) -> dict:
        """Start a migration through the API; the task once it ended or asks for input."""
        answer = self.post(
            "/api/migrations",
            json={"source": source, "target": target, "dashboards": dashboard_ids, **options},
        )
        assert answer.status_code == 201, answer.text
        return self.wait_for_status(
            answer.json()["id"], {"SUCCESS", "FAILED", "AWAITING_INPUT"}, timeout
        )

    def log_messages(self, task_id: int) -> list[str]:
        """A task's log, message by message."""
        answer = self.get(f"/api/tasks/{task_id}/logs")
        assert answer.status_code == 200, answer.text
        return [e["message"] for e in answer.json()["entries"]]

    def wait_for_status(self, task_id: int, statuses: set[str], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.get(f"/api/tasks/{task_id}").json()
            if task["status"] in statuses:
                return task
            time.sleep(0.2)
        raise AssertionError(f"Task {task_id} still {task['status']} after {timeout} s")
