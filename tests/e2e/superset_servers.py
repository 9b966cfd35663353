"""Real Apache Superset 6.1.0 servers for end-to-end tests (no Django here).

    from tests.e2e.superset_servers import ensure_servers, seed_source, SupersetAdmin

    urls = ensure_servers()            # {"source": "http://127.0.0.1:8188", "target": ...}
    seeded = seed_source(urls["source"])        # "Sales Overview" (+ count "Bulk NNN")
    target = SupersetAdmin(urls["target"])
    target.dashboards_by_title("Sales Overview")

The servers are started by scripts/superset/up.sh (install.sh first) and keep running
after the tests (state in <repo>/.superset, or $SUPERSET_HOME); stop_servers() or
scripts/superset/down.sh stops them. Admin login on both: admin / admin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "superset"

SEED_DATABASE_URI = "postgresql://mig_reader@127.0.0.1:5432/mig_public"
# Role whose password PostgreSQL really checks, after scripts/superset/pg_auth.sh.
SECURE_ROLE, SECURE_PASSWORD, SECURE_DATABASE = "mig_secure", "mig_secret", "mig_public"


class SupersetServersError(RuntimeError):
    pass


def server_urls() -> dict[str, str]:
    return {
        "source": f"http://127.0.0.1:{os.environ.get('SUPERSET_SOURCE_PORT', '8188')}",
        "target": f"http://127.0.0.1:{os.environ.get('SUPERSET_TARGET_PORT', '8189')}",
    }


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise SupersetServersError(
            f"{cmd[0]} timed out after {timeout} s:\n{exc.stderr or ''}"
        ) from exc
    if proc.returncode != 0:
        raise SupersetServersError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}, "
            f"{time.monotonic() - t0:.0f} s):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def ensure_servers(timeout: float = 900) -> dict[str, str]:
    """Install Superset if needed and start source + target unless already healthy."""
    _run(["bash", str(SCRIPTS / "install.sh")], timeout)
    _run(["bash", str(SCRIPTS / "up.sh")], timeout)
    return server_urls()


def stop_servers() -> None:
    _run(["bash", str(SCRIPTS / "down.sh")], 120)


def ensure_pg_auth(
    role: str = SECURE_ROLE, password: str = SECURE_PASSWORD, database: str = SECURE_DATABASE
) -> str:
    """Make PostgreSQL check `role`'s password; returns its URI with the password."""
    _run(["bash", str(SCRIPTS / "pg_auth.sh"), role, password, database], 120)
    return f"postgresql://{role}:{password}@127.0.0.1:5432/{database}"


def seed_source(url: str | None = None, count: int = 0) -> dict:
    """Run seed.py against `url` (default: the source); returns what it printed."""
    url = url or server_urls()["source"]
    proc = _run(
        [sys.executable, str(SCRIPTS / "seed.py"), "--url", url, "--count", str(count)], 600
    )
    return json.loads(proc.stdout)


class SupersetAdmin:
    """A small direct client for tests to inspect or clean a Superset server.

    Independent of the app's own Superset client. Every request sends
    ``Accept: application/json``; writes carry the CSRF token and session cookie.
    Logs in again once when the access token has expired.
    """

    def __init__(
        self, url: str, username: str = "admin", password: str = "admin", timeout: float = 120
    ):
        self.url = url.rstrip("/")
        self.username, self.password, self.timeout = username, password, timeout
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        self.access_token: str | None = None
        self.csrf_token: str | None = None
        self.login()

    # -- auth
    def login(self) -> None:
        self.session.cookies.clear()
        self.session.headers.pop("Authorization", None)
        self.session.headers.pop("X-CSRFToken", None)
        r = self.session.post(
            f"{self.url}/api/v1/security/login",
            timeout=self.timeout,
            json={
                "username": self.username,
                "password": self.password,
                "provider": "db",
                "refresh": True,
            },
        )
        self._raise(r, "login")
        self.access_token = r.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {self.access_token}"
        r = self.session.get(f"{self.url}/api/v1/security/csrf_token/", timeout=self.timeout)
        self._raise(r, "csrf_token")
        self.csrf_token = r.json()["result"]
        self.session.headers["X-CSRFToken"] = self.csrf_token

    @staticmethod
    def _raise(r: requests.Response, what: str) -> None:
        if r.status_code >= 300:
            raise SupersetServersError(f"{what}: HTTP {r.status_code} {r.text[:2000]}")

    # -- raw calls (return the Response; no status check)
    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", self.timeout)
        kw.setdefault("allow_redirects", False)
        r = self.session.request(method, f"{self.url}{path}", **kw)
        if r.status_code == 401 and "expired" in r.text.lower():
            self.login()
            r = self.session.request(method, f"{self.url}{path}", **kw)
        return r

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def get_json(self, path: str, **kw: Any) -> Any:
        r = self.get(path, **kw)
        self._raise(r, f"GET {path}")
        return r.json()

    # -- listing
    def list_all(self, resource: str, columns: str, filters: str = "") -> list[dict]:
        """All rows of /api/v1/<resource>/ (paged by 100). filters: rison filter items."""
        rows: list[dict] = []
        page = 0
        while True:
            q = f"(columns:!({columns}),page:{page},page_size:100"
            q += f",filters:!({filters}))" if filters else ")"
            body = self.get_json(f"/api/v1/{resource}/", params={"q": q})
            rows += body["result"]
            if len(body["result"]) < 100 or len(rows) >= body["count"]:
                return rows
            page += 1

    def dashboards(self) -> list[dict]:
        return self.list_all("dashboard", "id,uuid,dashboard_title,slug")

    def dashboards_by_title(self, title: str) -> list[dict]:
        """Dashboards whose title is exactly `title` (case-sensitive, as Superset's eq)."""
        return [d for d in self.dashboards() if d["dashboard_title"] == title]

    def dashboard(self, id_or_uuid: int | str) -> dict:
        return self.get_json(f"/api/v1/dashboard/{id_or_uuid}")["result"]

    def dashboard_charts(self, dashboard_id: int) -> list[dict]:
        return self.get_json(f"/api/v1/dashboard/{dashboard_id}/charts")["result"]

    def dashboard_datasets(self, dashboard_id: int) -> list[dict]:
        return self.get_json(f"/api/v1/dashboard/{dashboard_id}/datasets")["result"]

    def databases(self) -> list[dict]:
        return self.list_all("database", "id,uuid,database_name,backend")

    def database_connection(self, database_id: int) -> dict:
        return self.get_json(f"/api/v1/database/{database_id}/connection")["result"]

    def charts(self) -> list[dict]:
        return self.list_all("chart", "id,uuid,slice_name")

    def datasets(self) -> list[dict]:
        return self.list_all("dataset", "id,uuid,table_name")

    def export_dashboards(self, ids: list[int]) -> bytes:
        r = self.get("/api/v1/dashboard/export/", params={"q": f"!({','.join(map(str, ids))})"})
        self._raise(r, "export")
        return r.content

    # -- writes
    def delete_dashboard(self, dashboard_id: int) -> None:
        self._raise(self.delete(f"/api/v1/dashboard/{dashboard_id}"), "delete dashboard")

    def delete_chart(self, chart_id: int) -> None:
        self._raise(self.delete(f"/api/v1/chart/{chart_id}"), "delete chart")

    def delete_dataset(self, dataset_id: int) -> None:
        self._raise(self.delete(f"/api/v1/dataset/{dataset_id}"), "delete dataset")

    def delete_database(self, database_id: int) -> None:
        """Fails (422) while datasets use the database: delete those first."""
        self._raise(self.delete(f"/api/v1/database/{database_id}"), "delete database")

    def delete_everything(self) -> dict[str, int]:
        """Empty the server: dashboards, charts, datasets, databases (in that order)."""
        counts = {}
        for resource, rows in (
            ("dashboard", self.dashboards()),
            ("chart", self.charts()),
            ("dataset", self.datasets()),
        ):
            ids = [r["id"] for r in rows]
            for i in range(0, len(ids), 100):
                q = f"!({','.join(map(str, ids[i : i + 100]))})"
                self._raise(
                    self.delete(f"/api/v1/{resource}/", params={"q": q}), f"bulk delete {resource}"
                )
            counts[resource] = len(ids)
        dbs = self.databases()
        for d in dbs:
            self.delete_database(d["id"])
        counts["database"] = len(dbs)
        return counts

    def import_dashboards(
        self, bundle: bytes, passwords: dict[str, str] | None = None, overwrite: bool = True
    ) -> requests.Response:
        return self.post(
            "/api/v1/dashboard/import/",
            files={"formData": ("bundle.zip", bundle, "application/zip")},
            data={
                "overwrite": "true" if overwrite else "false",
                "passwords": json.dumps(passwords or {}),
            },
        )

    def test_connection(
        self, sqlalchemy_uri: str, database_name: str | None = None
    ) -> requests.Response:
        body = {"sqlalchemy_uri": sqlalchemy_uri}
        if database_name:
            body["database_name"] = database_name
        return self.post("/api/v1/database/test_connection/", json=body)
