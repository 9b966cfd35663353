"""Real Apache Superset servers for end-to-end tests (no Django here): the 6.1.0
source/target pair, and one server per other release (VERSION_SERVERS: 4.1.4, 5.0.0,
6.0.0).

    from tests.e2e.superset_servers import ensure_servers, seed_source, SupersetAdmin

    urls = ensure_servers()            # {"source": "http://127.0.0.1:8188", "target": ...}
    seeded = seed_source(urls["source"])        # "Sales Overview" (+ count "Bulk NNN")
    target = SupersetAdmin(urls["target"])
    target.dashboards_by_title("Sales Overview")

The servers are started by scripts/superset/up.sh (install.sh first) and keep running
after the tests (state in <repo>/.superset, or $SUPERSET_HOME); stop_servers() or
scripts/superset/down.sh stops them. Admin login on both: admin / admin.

Other releases (VERSION_SERVERS; adding one is one line there):

    url = ensure_version_server("5.0")    # "superset50" on 8193, started and seeded once
    pair = VERSION_SERVERS["6.1"]         # .source / .target: a Server (name, version, url)

Stop one with `scripts/superset/down.sh superset50`. scripts/test.sh starts them all
early in the background (`up.sh $(python -m tests.e2e.superset_servers specs)`); the
fixtures' own up.sh calls then find them healthy, or wait for them.

Interactive password resolution (``seed_source(secure=True)``, i.e. seed.py --secure):

    seeded = seed_source(urls["source"], secure=True)   # "Secure Sales", "Two Databases"
    target.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    ...  # migrate, answering SECURE_BUNDLE_PASSWORDS
    assert target.database_connection_ok(SECURE_ANALYTICS_DB)
    assert find_secret_everywhere(WAREHOUSE_PASSWORD, [app_data_dir], [target_db]) == []
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import requests

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "superset"


def superset_home() -> Path:
    """State directory of the test servers: $SUPERSET_HOME, default <repo>/.superset
    (the same rule as install.sh, up.sh and down.sh, which get our environment)."""
    return Path(os.environ.get("SUPERSET_HOME") or REPO / ".superset")


def instance_dir(instance: str) -> Path:
    """<SUPERSET_HOME>/<instance>: superset.db, superset_config.py, server.log, ..."""
    return superset_home() / instance


def metadata_db(instance: str) -> Path:
    """Superset's SQLite metadata database of one instance ("source", "target")."""
    return instance_dir(instance) / "superset.db"


SEED_DATABASE_URI = "postgresql://mig_reader@127.0.0.1:5432/mig_public"
# Role whose password PostgreSQL really checks, after scripts/superset/pg_auth.sh.
SECURE_ROLE, SECURE_PASSWORD, SECURE_DATABASE = "mig_secure", "mig_secret", "mig_public"

# ---- The secure seed (scripts/superset/seed.py --secure; keep both in step)
# Second role with a really checked password, on its own PostgreSQL database.
WAREHOUSE_ROLE, WAREHOUSE_PASSWORD, WAREHOUSE_DATABASE = "mig_wh", "wh-Secret!42", "mig_warehouse"
SECURE_PASSWORDS = (SECURE_PASSWORD, WAREHOUSE_PASSWORD)  # what must never leak
PASSWORD_MASK = "XXXXXXXXXX"

# Superset databases on the source (name, uuid, bundle key = the `passwords` key).
SECURE_ANALYTICS_DB = "secure_analytics"
SECURE_ANALYTICS_UUID = "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0101"
SECURE_ANALYTICS_KEY = "databases/secure_analytics.yaml"
SECURE_ANALYTICS_URI = (
    f"postgresql://{SECURE_ROLE}:{PASSWORD_MASK}@127.0.0.1:5432/{SECURE_DATABASE}"
)
SECURE_WAREHOUSE_DB = "secure_warehouse"
SECURE_WAREHOUSE_UUID = "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0102"
SECURE_WAREHOUSE_KEY = "databases/secure_warehouse.yaml"
SECURE_WAREHOUSE_URI = (
    f"postgresql://{WAREHOUSE_ROLE}:{PASSWORD_MASK}@127.0.0.1:5432/{WAREHOUSE_DATABASE}"
)
SECURE_DATABASE_NAMES = [SECURE_ANALYTICS_DB, SECURE_WAREHOUSE_DB]
SECURE_DATABASE_UUIDS = {
    SECURE_ANALYTICS_DB: SECURE_ANALYTICS_UUID,
    SECURE_WAREHOUSE_DB: SECURE_WAREHOUSE_UUID,
}
SECURE_DB_PASSWORDS = {
    SECURE_ANALYTICS_DB: SECURE_PASSWORD,
    SECURE_WAREHOUSE_DB: WAREHOUSE_PASSWORD,
}
SECURE_BUNDLE_PASSWORDS = {
    SECURE_ANALYTICS_KEY: SECURE_PASSWORD,
    SECURE_WAREHOUSE_KEY: WAREHOUSE_PASSWORD,
}

# Dashboards: "Secure Sales" = 1 chart on secure_analytics; "Two Databases" = 2 charts,
# one on each database.
SECURE_SALES_TITLE, SECURE_SALES_SLUG = "Secure Sales", "secure-sales"
SECURE_SALES_UUID = "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0131"
TWO_DATABASES_TITLE, TWO_DATABASES_SLUG = "Two Databases", "two-databases"
TWO_DATABASES_UUID = "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0132"
SECURE_DASHBOARD_TITLES = [SECURE_SALES_TITLE, TWO_DATABASES_TITLE]
SECURE_DASHBOARD_DATABASES = {
    SECURE_SALES_TITLE: [SECURE_ANALYTICS_DB],
    TWO_DATABASES_TITLE: [SECURE_ANALYTICS_DB, SECURE_WAREHOUSE_DB],
}
# Datasets (table names unique per server: see seed.py) and charts.
SECURE_DATASET_UUIDS = {
    "secure_sales": "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0111",
    "warehouse_stock": "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0112",
}
SECURE_CHART_UUIDS = {
    "Secure Sales by Region": "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0121",
    "Secure Sales by Product": "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0122",
    "Warehouse Stock": "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0123",
}


class SupersetServersError(RuntimeError):
    pass


# --------------------------------------------------------------------------- the servers
@dataclass(frozen=True)
class Server:
    """One test server: instance `name` (state in <SUPERSET_HOME>/<name>) running Superset
    `version` on 127.0.0.1:$<port_env> (default `default_port`)."""

    name: str
    version: str
    port_env: str
    default_port: int
    seed: bool = True  # ensure_version_server() seeds it once (seed.py --secure)

    @property
    def port(self) -> int:
        return int(os.environ.get(self.port_env) or self.default_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def spec(self) -> str:
        """The up.sh argument NAME:PORT@VERSION."""
        return f"{self.name}:{self.port}@{self.version}"


@dataclass(frozen=True)
class VersionServers:
    """The server(s) of one Superset release family: migrations go from `source` and
    into `target`. One server plays both, except for 6.1 (the suite's source/target pair)."""

    source: Server
    target: Server

    @classmethod
    def one(cls, *args: Any, **kw: Any) -> VersionServers:
        server = Server(*args, **kw)
        return cls(server, server)


SOURCE = Server("source", "6.1.0", "SUPERSET_SOURCE_PORT", 8188)
TARGET = Server("target", "6.1.0", "SUPERSET_TARGET_PORT", 8189, seed=False)

# Every Superset release the end-to-end tests run against: family -> its server(s).
# Adding a version is one line here (plus scripts/superset/constraints-X.Y.txt); the
# test runner starts them all early (scripts/test.sh: `up.sh $(python -m
# tests.e2e.superset_servers specs)`). Ports 8190/8191 are the recorder's and
# test_fixtures_secure's scratch instances.
VERSION_SERVERS: dict[str, VersionServers] = {
    "4.1": VersionServers.one("target41", "4.1.4", "SUPERSET41_PORT", 8192),
    "5.0": VersionServers.one("superset50", "5.0.0", "SUPERSET50_PORT", 8193),
    "6.0": VersionServers.one("superset60", "6.0.0", "SUPERSET60_PORT", 8194),
    "6.1": VersionServers(SOURCE, TARGET),
}


def all_servers() -> list[Server]:
    """Every test server once (the 6.1 pair first)."""
    out = [SOURCE, TARGET]
    for pair in VERSION_SERVERS.values():
        for server in (pair.source, pair.target):
            if server not in out:
                out.append(server)
    return out


def version_server(family: str, role: str = "source") -> Server:
    """The server of `family` ("5.0") that plays `role` ("source" or "target")."""
    if family not in VERSION_SERVERS:
        raise SupersetServersError(f"no test server for Superset {family} (VERSION_SERVERS)")
    if role not in ("source", "target"):
        raise ValueError(f"role must be 'source' or 'target', not {role!r}")
    return getattr(VERSION_SERVERS[family], role)


def server_urls() -> dict[str, str]:
    return {"source": SOURCE.url, "target": TARGET.url}


def _early_start_note() -> str:
    """The tail of the test runner's early background start (scripts/test.sh writes it to
    $SUPERSET_UP_LOG), to show with a fixture's own failure."""
    path = os.environ.get("SUPERSET_UP_LOG")
    if not path or not Path(path).is_file():
        return ""
    tail = Path(path).read_text(errors="replace")[-4000:]
    return f"\n--- the early start of every server (scripts/test.sh, {path}) said:\n{tail}"


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise SupersetServersError(
            f"{cmd[0]} timed out after {timeout} s:\n{exc.stderr or ''}{_early_start_note()}"
        ) from exc
    if proc.returncode != 0:
        raise SupersetServersError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}, "
            f"{time.monotonic() - t0:.0f} s):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
            f"{_early_start_note()}"
        )
    return proc


# A cold machine installs four Superset versions and initialises five instances at once:
# the fixtures' up.sh may wait that long for the early start (install and instance locks).
START_TIMEOUT = 1800


def start_servers(servers: Iterable[Server], timeout: float = START_TIMEOUT) -> None:
    """Install their versions (in parallel) and start them unless healthy (up.sh; when
    the early start of scripts/test.sh is bringing one up, this waits for it)."""
    _run(["bash", str(SCRIPTS / "up.sh"), *(s.spec for s in servers)], timeout)


def ensure_servers(timeout: float = START_TIMEOUT) -> dict[str, str]:
    """Install Superset if needed and start source + target unless already healthy."""
    start_servers([SOURCE, TARGET], timeout)
    return server_urls()


_SEEDED: set[str] = set()  # urls seed.py --secure ran against (this process)


def ensure_version_server(family: str, role: str = "source", timeout: float = START_TIMEOUT) -> str:
    """The URL of `family`'s server for `role`, installed and started if needed and, once
    per process, seeded with seed.py --secure ("Sales Overview", "Secure Sales", "Two
    Databases"; not the 6.1 target)."""
    server = version_server(family, role)
    start_servers([server], timeout)
    if server.seed and server.url not in _SEEDED:
        seed_source(server.url, secure=True)
    return server.url


def stop_servers(servers: Iterable[Server] = (SOURCE, TARGET)) -> None:
    _run(["bash", str(SCRIPTS / "down.sh"), *(s.name for s in servers)], 120)


def ensure_pg_auth(
    role: str = SECURE_ROLE, password: str = SECURE_PASSWORD, database: str = SECURE_DATABASE
) -> str:
    """Make PostgreSQL check `role`'s password; returns its URI with the password."""
    _run(["bash", str(SCRIPTS / "pg_auth.sh"), role, password, database], 120)
    return f"postgresql://{role}:{password}@127.0.0.1:5432/{database}"


def seed_source(url: str | None = None, count: int = 0, secure: bool = False) -> dict:
    """Run seed.py against `url` (default: the source); returns what it printed.

    secure=True adds --secure: roles mig_secure/mig_wh with real password checks, and the
    dashboards "Secure Sales" and "Two Databases" (output key "secure")."""
    url = url or server_urls()["source"]
    cmd = [sys.executable, str(SCRIPTS / "seed.py"), "--url", url, "--count", str(count)]
    if secure:
        cmd.append("--secure")
    proc = _run(cmd, 600)
    seeded = json.loads(proc.stdout)
    if secure:
        _SEEDED.add(url)
    return seeded


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

    # -- interactive password resolution
    def database_by_name(self, name: str) -> dict | None:
        """The database row named exactly `name` (id, uuid, database_name, backend)."""
        rows = [d for d in self.databases() if d["database_name"] == name]
        return rows[0] if rows else None

    def database_connection_ok(self, name: str) -> bool:
        """Does the STORED password of database `name` connect? test_connection with
        database_name + the masked URI from /connection (+ its masked ssh_tunnel block with
        id), so no secret is sent (nor logged). 200 = True. Raises when there is no such DB.
        """
        db = self.database_by_name(name)
        if db is None:
            raise SupersetServersError(f"{self.url}: no database named {name!r}")
        conn = self.database_connection(db["id"])
        body: dict[str, Any] = {
            "database_name": conn["database_name"],
            "sqlalchemy_uri": conn["sqlalchemy_uri"],
        }
        if conn.get("ssh_tunnel"):
            body["ssh_tunnel"] = conn["ssh_tunnel"]
        return self.post("/api/v1/database/test_connection/", json=body).status_code == 200

    def _delete_if_there(self, resource: str, object_id: int) -> bool:
        """DELETE one object; False when it was already gone (404)."""
        r = self.delete(f"/api/v1/{resource}/{object_id}")
        if r.status_code == 404:
            return False
        self._raise(r, f"delete {resource} {object_id}")
        return True

    def remove_dashboards_and_databases(
        self, titles: list[str], database_names: list[str]
    ) -> dict[str, list[str]]:
        """Make this server lack these dashboards and databases (tests: the TARGET).

        Deletes every dashboard titled exactly one of `titles`, then the charts and
        datasets that belong to databases named in `database_names` (whatever dashboard
        they are on), then those databases. Anything missing is skipped, so it works when
        some or none exist. Returns what was deleted: {"dashboards": [titles],
        "charts": [slice names], "datasets": [table names], "databases": [names]}; raises
        when something is still there afterwards.
        """
        titles_set, names_set = set(titles), set(database_names)
        removed: dict[str, list[str]] = {
            "dashboards": [],
            "charts": [],
            "datasets": [],
            "databases": [],
        }
        for d in self.dashboards():
            if d["dashboard_title"] in titles_set and self._delete_if_there("dashboard", d["id"]):
                removed["dashboards"].append(d["dashboard_title"])
        dbs = [d for d in self.databases() if d["database_name"] in names_set]
        db_ids = {d["id"] for d in dbs}
        datasets = [
            d
            for d in self.list_all("dataset", "id,uuid,table_name,database.id")
            if (d.get("database") or {}).get("id") in db_ids
        ]
        ds_ids = {d["id"] for d in datasets}
        if ds_ids:
            for c in self.list_all("chart", "id,uuid,slice_name,datasource_id,datasource_type"):
                if (
                    c.get("datasource_type") == "table"
                    and c.get("datasource_id") in ds_ids
                    and self._delete_if_there("chart", c["id"])
                ):
                    removed["charts"].append(c["slice_name"])
        for d in datasets:
            if self._delete_if_there("dataset", d["id"]):
                removed["datasets"].append(d["table_name"])
        for d in dbs:
            if self._delete_if_there("database", d["id"]):
                removed["databases"].append(d["database_name"])

        left = [
            f"dashboard {d['dashboard_title']!r}"
            for d in self.dashboards()
            if d["dashboard_title"] in titles_set
        ]
        left += [
            f"database {d['database_name']!r}"
            for d in self.databases()
            if d["database_name"] in names_set
        ]
        left += [
            f"dataset {d['table_name']!r}"
            for d in self.list_all("dataset", "id,table_name,database.id")
            if (d.get("database") or {}).get("id") in db_ids
        ]
        if left:
            raise SupersetServersError(f"{self.url}: still there after removal: {left}")
        return removed


# --------------------------------------------------------------------------- secret hunting
def _sqlite_ro(path: Path) -> sqlite3.Connection:
    """Open a SQLite file read-only (never creates it; fine while Superset writes)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite database at {path}")
    conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=30)
    conn.text_factory = lambda b: b.decode("utf-8", errors="replace")
    return conn


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def superset_action_log_texts(instance: str) -> list[str]:
    """Every row of Superset's action log (table `logs`: action, json, referrer, dttm, ...)
    of `<SUPERSET_HOME>/<instance>/superset.db`, read-only with sqlite3: one string per row,
    holding all its non-NULL text/blob columns joined as "column=value" by " | "."""
    conn = _sqlite_ro(metadata_db(instance))
    try:
        cur = conn.execute("SELECT * FROM logs ORDER BY id")
        cols = [c[0] for c in cur.description]
        return [
            " | ".join(
                f"{col}={_as_text(v)}"
                for col, v in zip(cols, row, strict=True)
                if isinstance(v, str | bytes)
            )
            for row in cur
        ]
    finally:
        conn.close()


def secret_forms(secret: str) -> dict[str, str]:
    """The ways `secret` can be written down: plain, URL-encoded (%XX upper and lower case,
    form encoding, '/' kept) and JSON-escaped (ASCII or UTF-8, twice for JSON in JSON, and
    HTML-safe). {form name: text}; forms equal to an earlier one are left out."""
    if not secret:
        raise ValueError("empty secret")

    def json_esc(text: str, ascii_only: bool = True) -> str:
        return json.dumps(text, ensure_ascii=ascii_only)[1:-1]

    url = quote(secret, safe="")
    candidates = [
        ("plain", secret),
        ("url-encoded", url),
        ("url-encoded (lower-case hex)", re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), url)),
        ("url-encoded (form)", quote_plus(secret, safe="")),
        ("url-encoded ('/' kept)", quote(secret, safe="/")),
        ("json-escaped", json_esc(secret)),
        ("json-escaped (utf-8)", json_esc(secret, ascii_only=False)),
        ("json-escaped ('/' as '\\/')", json_esc(secret).replace("/", "\\/")),
        ("json-escaped twice", json_esc(json_esc(secret))),
        ("json-escaped twice (utf-8)", json_esc(json_esc(secret, False), False)),
        (
            "json-escaped (html-safe)",
            json_esc(secret)
            .replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("'", "\\u0027"),
        ),
        ("url-encoded, json-escaped", json_esc(url)),
    ]
    forms: dict[str, str] = {}
    for name, text in candidates:
        if text not in forms.values():
            forms[name] = text
    return forms


def _walk_files(paths: Iterable[Path]) -> Iterator[Path]:
    for top in map(Path, paths):
        if top.is_file():
            yield top
        elif top.is_dir():
            for root, dirs, files in os.walk(top, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    p = Path(root) / name
                    if p.is_file() and not p.is_symlink():
                        yield p
        elif not top.exists():
            raise FileNotFoundError(f"find_secret_everywhere: no such file or directory: {top}")


def _file_hits(path: Path, needles: dict[str, bytes], chunk: int = 1 << 20) -> list[str]:
    """Binary-safe search, chunk by chunk with an overlap (any file size)."""
    overlap = max(len(n) for n in needles.values()) - 1
    first: dict[str, int] = {}
    counts: dict[str, int] = {}
    with open(path, "rb") as fh:
        offset, tail = 0, b""  # offset of `tail` in the file
        while block := fh.read(chunk):
            data = tail + block
            for form, needle in needles.items():
                start = 0
                while (i := data.find(needle, start)) != -1:
                    # a match entirely inside the overlap was counted with the last chunk
                    if i + len(needle) > len(tail):
                        first.setdefault(form, offset + i)
                        counts[form] = counts.get(form, 0) + 1
                    start = i + 1
            keep = min(overlap, len(data)) if overlap > 0 else 0
            tail = data[len(data) - keep :] if keep else b""
            offset += len(data) - len(tail)
    return [f"file {path}: {form} ({counts[form]}x, first at byte {first[form]})" for form in first]


def _sqlite_hits(db: Path, forms: dict[str, str]) -> list[str]:
    byte_forms = {f: t.encode() for f, t in forms.items()}
    hits: list[str] = []
    conn = _sqlite_ro(db)
    try:
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        for table, sql in tables:
            if (sql or "").upper().startswith("CREATE VIRTUAL TABLE"):
                continue  # its content lives in ordinary shadow tables, searched too
            quoted = '"' + table.replace('"', '""') + '"'
            try:
                cur = conn.execute(f"SELECT rowid, * FROM {quoted}")
                with_rowid = True
            except sqlite3.OperationalError:  # WITHOUT ROWID
                cur = conn.execute(f"SELECT * FROM {quoted}")
                with_rowid = False
            cols = [c[0] for c in cur.description][1 if with_rowid else 0 :]
            for n, row in enumerate(cur, start=1):
                key = f"rowid {row[0]}" if with_rowid else f"row #{n}"
                values = row[1:] if with_rowid else row
                for col, value in zip(cols, values, strict=True):
                    if isinstance(value, str):
                        found = [f for f, t in forms.items() if t in value]
                    elif isinstance(value, bytes):
                        found = [f for f, b in byte_forms.items() if b in value]
                    else:
                        continue
                    hits += [f"sqlite {db}: table {table}, column {col}, {key}: {f}" for f in found]
    finally:
        conn.close()
    return hits


def find_secret_everywhere(
    secret: str, paths: Iterable[Path] = (), sqlite_dbs: Iterable[Path] = ()
) -> list[str]:
    """Every place `secret` occurs, in any of the forms of secret_forms() (plain,
    URL-encoded, JSON-escaped, ...):

    * in the bytes of each file of `paths` (directories recursively, symlinks not
      followed; binary-safe, so a SQLite file's free pages and a -wal/-journal count too);
    * in every text and blob value of every table of each SQLite database of `sqlite_dbs`
      (opened read-only), e.g. Superset's metadata DB with its action log `logs`.

    Returns human-readable locations, e.g. "sqlite …/superset.db: table logs, column json,
    rowid 12: plain"; an empty list means no leak. A path that does not exist raises
    FileNotFoundError (so a typo cannot make a leak check pass)."""
    forms = secret_forms(secret)
    needles = {f: t.encode() for f, t in forms.items()}
    hits: list[str] = []
    for path in _walk_files(paths):
        hits += _file_hits(path, needles)
    for db in sqlite_dbs:
        hits += _sqlite_hits(Path(db), forms)
    return hits


if __name__ == "__main__":
    # `python -m tests.e2e.superset_servers specs`: the up.sh arguments of every test
    # server (scripts/test.sh starts them all early, in the background); `names`: the
    # down.sh arguments.
    if sys.argv[1:] not in (["specs"], ["names"]):
        sys.exit("usage: python -m tests.e2e.superset_servers specs|names")
    field = "spec" if sys.argv[1] == "specs" else "name"
    print(" ".join(getattr(s, field) for s in all_servers()))
