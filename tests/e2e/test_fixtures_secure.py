"""The fixtures for "interactive password resolution" tests work (real Superset servers).

* seed.py --secure gives the source "Secure Sales" and "Two Databases", whose databases
  pass the connection test with their stored passwords while PostgreSQL refuses a wrong one;
* remove_dashboards_and_databases() leaves no trace of them on the target (which may or
  may not hold them), and on a scratch server that certainly does, without touching
  anything else there; database_connection_ok() tells a wrong stored password;
* find_secret_everywhere() finds a planted secret in files and SQLite tables in plain,
  URL-encoded and JSON-escaped form, and superset_action_log_texts() reads `logs`.

The scratch server is a third instance "fixtures" (port $SUPERSET_FIXTURES_PORT, default
8191) started with up.sh and stopped again at the end; its state stays in
$SUPERSET_HOME/fixtures, so only the first run pays for `superset db upgrade`.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.e2e.superset_servers import (
    PASSWORD_MASK,
    SCRIPTS,
    SECURE_ANALYTICS_DB,
    SECURE_ANALYTICS_KEY,
    SECURE_ANALYTICS_URI,
    SECURE_ANALYTICS_UUID,
    SECURE_BUNDLE_PASSWORDS,
    SECURE_CHART_UUIDS,
    SECURE_DASHBOARD_DATABASES,
    SECURE_DASHBOARD_TITLES,
    SECURE_DATABASE,
    SECURE_DATABASE_NAMES,
    SECURE_DATABASE_UUIDS,
    SECURE_DATASET_UUIDS,
    SECURE_PASSWORD,
    SECURE_ROLE,
    SECURE_SALES_SLUG,
    SECURE_SALES_TITLE,
    SECURE_SALES_UUID,
    SECURE_WAREHOUSE_DB,
    SECURE_WAREHOUSE_KEY,
    SECURE_WAREHOUSE_URI,
    SECURE_WAREHOUSE_UUID,
    TWO_DATABASES_SLUG,
    TWO_DATABASES_TITLE,
    TWO_DATABASES_UUID,
    WAREHOUSE_DATABASE,
    WAREHOUSE_PASSWORD,
    WAREHOUSE_ROLE,
    SupersetAdmin,
    SupersetServersError,
    _run,
    ensure_servers,
    find_secret_everywhere,
    metadata_db,
    secret_forms,
    seed_source,
    superset_action_log_texts,
)

pytestmark = pytest.mark.e2e

SCRATCH = "fixtures"
SCRATCH_PORT = os.environ.get("SUPERSET_FIXTURES_PORT", "8191")


@pytest.fixture(scope="module")
def servers() -> dict:
    return ensure_servers()


@pytest.fixture(scope="module")
def secure_seed(servers) -> dict:
    return seed_source(servers["source"], secure=True)


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=3).text.strip() == "OK"
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def scratch(servers) -> str:
    """A third, throw-away Superset ("fixtures"): stopped again unless it was running."""
    url = f"http://127.0.0.1:{SCRATCH_PORT}"
    was_running = _healthy(url)
    _run(["bash", str(SCRIPTS / "up.sh"), f"{SCRATCH}:{SCRATCH_PORT}"], 900)
    yield url
    if not was_running:
        _run(["bash", str(SCRIPTS / "down.sh"), SCRATCH], 120)


def _psql_login(role: str, password: str, database: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGPASSWORD": password, "PGPASSFILE": os.devnull}
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", role, "-d", database, "-w", "-qAt", "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def _secure_traces(admin: SupersetAdmin) -> list[str]:
    """Anything of the secure seed still on `admin`'s server (by title, name or uuid)."""
    titles, names = set(SECURE_DASHBOARD_TITLES), set(SECURE_DATABASE_NAMES)
    dash_uuids = {SECURE_SALES_UUID, TWO_DATABASES_UUID}
    db_uuids = set(SECURE_DATABASE_UUIDS.values())
    traces = [
        f"dashboard {d}"
        for d in admin.dashboards()
        if d["dashboard_title"] in titles or d["uuid"] in dash_uuids
    ]
    traces += [
        f"database {d}"
        for d in admin.databases()
        if d["database_name"] in names or d["uuid"] in db_uuids
    ]
    traces += [
        f"dataset {d}"
        for d in admin.list_all("dataset", "id,uuid,table_name")
        if d["uuid"] in SECURE_DATASET_UUIDS.values() or d["table_name"] in SECURE_DATASET_UUIDS
    ]
    traces += [
        f"chart {c}"
        for c in admin.charts()
        if c["uuid"] in SECURE_CHART_UUIDS.values() or c["slice_name"] in SECURE_CHART_UUIDS
    ]
    return traces


# --------------------------------------------------------------------------- seeding
def test_seed_secure_gives_dashboards_whose_databases_connect(servers, secure_seed):
    secure = secure_seed["secure"]
    dashboards = {d["dashboard_title"]: d for d in secure["dashboards"]}
    assert set(dashboards) == set(SECURE_DASHBOARD_TITLES)
    assert dashboards[SECURE_SALES_TITLE]["uuid"] == SECURE_SALES_UUID
    assert dashboards[SECURE_SALES_TITLE]["slug"] == SECURE_SALES_SLUG
    assert dashboards[TWO_DATABASES_TITLE]["uuid"] == TWO_DATABASES_UUID
    assert dashboards[TWO_DATABASES_TITLE]["slug"] == TWO_DATABASES_SLUG
    for title, dbs in SECURE_DASHBOARD_DATABASES.items():
        assert dashboards[title]["databases"] == sorted(dbs)
    databases = {d["database_name"]: d for d in secure["databases"]}
    assert {n: d["uuid"] for n, d in databases.items()} == SECURE_DATABASE_UUIDS
    assert databases[SECURE_ANALYTICS_DB]["uuid"] == SECURE_ANALYTICS_UUID
    assert databases[SECURE_ANALYTICS_DB]["bundle_key"] == SECURE_ANALYTICS_KEY
    assert databases[SECURE_WAREHOUSE_DB]["bundle_key"] == SECURE_WAREHOUSE_KEY
    assert databases[SECURE_ANALYTICS_DB]["sqlalchemy_uri"] == SECURE_ANALYTICS_URI
    assert databases[SECURE_WAREHOUSE_DB]["sqlalchemy_uri"] == SECURE_WAREHOUSE_URI
    assert secure["export_database_keys"] == sorted(SECURE_BUNDLE_PASSWORDS)
    # The seed's output never carries the passwords themselves.
    out = json.dumps(secure_seed)
    assert SECURE_PASSWORD not in out and WAREHOUSE_PASSWORD not in out

    source = SupersetAdmin(servers["source"])
    for name in SECURE_DATABASE_NAMES:
        assert source.database_connection_ok(name), name
    for title, want in ((SECURE_SALES_TITLE, 1), (TWO_DATABASES_TITLE, 2)):
        (row,) = source.dashboards_by_title(title)
        assert len(source.dashboard_charts(row["id"])) == want
    # The source's own export needs exactly these passwords keys, with masked URIs.
    (two,) = source.dashboards_by_title(TWO_DATABASES_TITLE)
    with zipfile.ZipFile(io.BytesIO(source.export_dashboards([two["id"]]))) as zf:
        members = {n.split("/", 1)[1]: zf.read(n).decode() for n in zf.namelist()}
    assert sorted(k for k in members if k.startswith("databases/")) == sorted(
        SECURE_BUNDLE_PASSWORDS
    )
    assert f"sqlalchemy_uri: {SECURE_WAREHOUSE_URI}" in members[SECURE_WAREHOUSE_KEY]
    assert WAREHOUSE_PASSWORD not in "".join(members.values())


def test_postgres_really_checks_the_secure_passwords(secure_seed):
    for role, password, database in (
        (SECURE_ROLE, SECURE_PASSWORD, SECURE_DATABASE),
        (WAREHOUSE_ROLE, WAREHOUSE_PASSWORD, WAREHOUSE_DATABASE),
    ):
        assert not set(password) & set("@:/")
        right = _psql_login(role, password, database)
        assert right.returncode == 0 and right.stdout.strip() == "1", right.stderr
        wrong = _psql_login(role, "wrong", database)
        assert wrong.returncode != 0
        assert "password authentication failed" in wrong.stderr


def test_seed_secure_is_idempotent(servers, secure_seed):
    again = seed_source(servers["source"], secure=True)["secure"]
    assert [(d["id"], d["uuid"]) for d in again["dashboards"]] == [
        (d["id"], d["uuid"]) for d in secure_seed["secure"]["dashboards"]
    ]
    assert [d["id"] for d in again["databases"]] == [
        d["id"] for d in secure_seed["secure"]["databases"]
    ]
    assert again["repaired_passwords"] == []


# --------------------------------------------------------------------------- removal
def test_remove_on_target_leaves_no_trace(servers):
    target = SupersetAdmin(servers["target"])
    target.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    assert _secure_traces(target) == []
    # Works when none exist.
    nothing = target.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    assert nothing == {"dashboards": [], "charts": [], "datasets": [], "databases": []}
    assert target.remove_dashboards_and_databases([], []) == nothing


def _others(admin: SupersetAdmin) -> dict:
    """Everything on the server that is not part of the secure seed."""
    return {
        "dashboards": sorted(
            d["uuid"]
            for d in admin.dashboards()
            if d["dashboard_title"] not in SECURE_DASHBOARD_TITLES
        ),
        "databases": sorted(
            d["uuid"] for d in admin.databases() if d["database_name"] not in SECURE_DATABASE_NAMES
        ),
        "datasets": sorted(
            d["uuid"]
            for d in admin.list_all("dataset", "id,uuid,table_name")
            if d["table_name"] not in SECURE_DATASET_UUIDS
        ),
        "charts": sorted(
            c["uuid"] for c in admin.charts() if c["slice_name"] not in SECURE_CHART_UUIDS
        ),
    }


def test_remove_with_content_on_scratch_server(scratch):
    seeded = seed_source(scratch, secure=True)["secure"]
    admin = SupersetAdmin(scratch)
    assert sorted(d["dashboard_title"] for d in seeded["dashboards"]) == sorted(
        SECURE_DASHBOARD_TITLES
    )
    assert all(admin.database_connection_ok(n) for n in SECURE_DATABASE_NAMES)

    # A wrong stored password is told apart (a database import is the only way to store
    # one over an existing database), and seed.py repairs it.
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr(
            "b/metadata.yaml",
            "version: 1.0.0\ntype: Database\ntimestamp: '2025-01-01T00:00:00+00:00'\n",
        )
        zf.writestr(
            f"b/{SECURE_WAREHOUSE_KEY}",
            f"database_name: {SECURE_WAREHOUSE_DB}\nsqlalchemy_uri: {SECURE_WAREHOUSE_URI}\n"
            f"uuid: {SECURE_WAREHOUSE_UUID}\nversion: 1.0.0\nextra: {{}}\n",
        )
    r = admin.post(
        "/api/v1/database/import/",
        files={"formData": ("db.zip", bundle.getvalue(), "application/zip")},
        data={"overwrite": "true", "passwords": json.dumps({SECURE_WAREHOUSE_KEY: "wrong"})},
    )
    assert r.status_code == 200, r.text
    assert admin.database_connection_ok(SECURE_ANALYTICS_DB)
    assert not admin.database_connection_ok(SECURE_WAREHOUSE_DB)
    assert seed_source(scratch, secure=True)["secure"]["repaired_passwords"] == [
        SECURE_WAREHOUSE_DB
    ]
    assert admin.database_connection_ok(SECURE_WAREHOUSE_DB)
    with pytest.raises(SupersetServersError, match="no database named"):
        admin.database_connection_ok("no_such_database")

    before = _others(admin)
    assert before["dashboards"] and before["databases"]  # "Sales Overview", mig_public
    removed = admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, SECURE_DATABASE_NAMES)
    assert sorted(removed["dashboards"]) == sorted(SECURE_DASHBOARD_TITLES)
    assert sorted(removed["databases"]) == sorted(SECURE_DATABASE_NAMES)
    assert sorted(removed["datasets"]) == sorted(SECURE_DATASET_UUIDS)
    assert sorted(removed["charts"]) == sorted(SECURE_CHART_UUIDS)
    assert _secure_traces(admin) == []
    assert _others(admin) == before

    # Only part of it there (one database, no dashboards): also fine.
    seed_source(scratch, secure=True)
    (two,) = admin.dashboards_by_title(TWO_DATABASES_TITLE)
    (sales,) = admin.dashboards_by_title(SECURE_SALES_TITLE)
    admin.delete_dashboard(two["id"])
    admin.delete_dashboard(sales["id"])
    partial = admin.remove_dashboards_and_databases(SECURE_DASHBOARD_TITLES, [SECURE_WAREHOUSE_DB])
    assert partial == {
        "dashboards": [],
        "charts": ["Warehouse Stock"],
        "datasets": ["warehouse_stock"],
        "databases": [SECURE_WAREHOUSE_DB],
    }
    admin.remove_dashboards_and_databases([], [SECURE_ANALYTICS_DB])
    assert _secure_traces(admin) == []


# --------------------------------------------------------------------------- leak hunting
SECRET = 'Pl@nted "S3cret"\\ü/!42'


def _plant(tmp_path: Path) -> tuple[dict[str, str], list[Path], Path]:
    forms = secret_forms(SECRET)
    planted = {
        "plain": SECRET,
        "url-encoded": quote(SECRET, safe=""),
        "json-escaped": json.dumps(SECRET)[1:-1],
    }
    assert len(set(planted.values())) == 3
    assert all(forms[k] == v for k, v in planted.items())
    files = []
    for i, (form, text) in enumerate(planted.items()):
        p = tmp_path / "tree" / f"sub{i}" / f"{form}.bin"
        p.parent.mkdir(parents=True)
        # binary noise around it, and far into the file (across the 1 MiB chunk border)
        p.write_bytes(os.urandom(1 << 20)[:-5].replace(b"P", b"p") + text.encode() + b"\x00\xff")
        files.append(p)
    (tmp_path / "tree" / "clean.txt").write_text("nothing to see: Pl@nted S3cret\n")
    db = tmp_path / "app.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT, raw BLOB, n INT)")
    conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
    conn.execute(
        "INSERT INTO events (payload, raw, n) VALUES (?, ?, 1), (?, NULL, 2), ('clean', ?, 3)",
        (
            "uri=postgresql://u:" + planted["url-encoded"] + "@h/db",
            b"\x00" + planted["plain"].encode() + b"\x01",
            json.dumps({"passwords": json.dumps({"k": SECRET})}),  # JSON in JSON
            b"\x00clean\x01",
        ),
    )
    conn.execute("INSERT INTO kv VALUES ('a', ?)", ('{"p": "' + planted["json-escaped"] + '"}',))
    conn.commit()
    conn.close()
    return planted, files, db


def test_find_secret_everywhere_in_files_and_sqlite(tmp_path):
    planted, files, db = _plant(tmp_path)
    hits = find_secret_everywhere(SECRET, [tmp_path / "tree"], [db])
    text = "\n".join(hits)
    for form, path in zip(planted, files, strict=True):
        assert any(str(path) in h and h.split(": ")[1].startswith(form) for h in hits), text
    assert "clean.txt" not in text
    assert "table events, column payload, rowid 1: url-encoded" in text
    assert "table events, column raw, rowid 1: plain" in text
    assert "table events, column payload, rowid 2: json-escaped twice" in text
    assert "table kv, column v, row #1: json-escaped" in text
    assert "rowid 3" not in text
    # The SQLite file itself, read as bytes, shows the plain form as well.
    assert any(h.startswith(f"file {db}") for h in find_secret_everywhere(SECRET, [db]))
    # No leak → empty list; a missing path is an error, not a pass.
    assert find_secret_everywhere("never-written-anywhere", [tmp_path / "tree"], [db]) == []
    with pytest.raises(FileNotFoundError):
        find_secret_everywhere(SECRET, [tmp_path / "nope"], [])
    with pytest.raises(FileNotFoundError):
        find_secret_everywhere(SECRET, [], [tmp_path / "nope.db"])


def test_action_log_reader_respects_superset_home(tmp_path, monkeypatch):
    inst = tmp_path / "home" / "x"
    inst.mkdir(parents=True)
    conn = sqlite3.connect(inst / "superset.db")
    conn.execute("CREATE TABLE logs (id INTEGER PRIMARY KEY, action TEXT, json TEXT, dttm TEXT)")
    conn.execute(
        "INSERT INTO logs (action, json, dttm) VALUES ('import_', ?, '2026-01-01')",
        (json.dumps({"passwords": json.dumps({SECURE_ANALYTICS_KEY: SECRET})}),),
    )
    conn.commit()
    conn.close()
    monkeypatch.setenv("SUPERSET_HOME", str(tmp_path / "home"))
    assert metadata_db("x") == inst / "superset.db"
    (row,) = superset_action_log_texts("x")
    assert row.startswith("action=import_ | json=") and "dttm=2026-01-01" in row
    assert secret_forms(SECRET)["json-escaped twice"] in row


def test_secure_seed_passwords_are_in_the_source_action_log(secure_seed):
    """Seeding sends `passwords` as a form field, which Superset logs (SUPERSET_API.md):
    the helpers see that leak in the real `logs` table."""
    rows = superset_action_log_texts("source")
    assert any(WAREHOUSE_PASSWORD in r and "passwords" in r for r in rows)
    hits = find_secret_everywhere(WAREHOUSE_PASSWORD, [], [metadata_db("source")])
    assert any("table logs, column json" in h for h in hits), hits
    assert PASSWORD_MASK not in WAREHOUSE_PASSWORD
