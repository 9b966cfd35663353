#!/usr/bin/env python3
"""Seed a Superset 6.1 test server (the SOURCE) with content, idempotently.

1. PostgreSQL (psql -h 127.0.0.1 -U postgres, trust): role ``mig_reader`` (LOGIN, no
   password), database ``mig_public`` with table ``public.sales`` (a few rows).
2. A v1 dashboard bundle built by hand (fixed uuids): database ``mig_public``
   (``postgresql://mig_reader@127.0.0.1:5432/mig_public``), dataset ``sales``, chart
   "Sales by Region", dashboard "Sales Overview" (slug ``sales-overview``), plus with
   ``--count N`` N chart-less dashboards "Bulk 001".."Bulk N" (slug ``bulk-001``…).
3. ``POST /api/v1/dashboard/import/`` with ``overwrite=true`` (JWT + CSRF + session).

With ``--secure`` also (for "interactive password resolution" tests):

4. PostgreSQL roles whose passwords PostgreSQL really checks (pg_auth.sh: scram-sha-256
   lines above the trust lines): ``mig_secure`` / ``mig_secret`` on ``mig_public`` and
   ``mig_wh`` / ``wh-Secret!42`` on ``mig_warehouse`` (created, table ``public.warehouse_stock``; ``public.secure_sales`` in ``mig_public``).
5. ONE dashboard import with ``passwords`` (keys ``databases/secure_analytics.yaml``,
   ``databases/secure_warehouse.yaml``): dashboard "Secure Sales" (slug ``secure-sales``,
   one chart on database ``secure_analytics`` = ``postgresql://mig_secure:…/mig_public``)
   and "Two Databases" (slug ``two-databases``, one chart on ``secure_analytics`` and one on
   ``secure_warehouse`` = ``postgresql://mig_wh:…/mig_warehouse``). Fixed uuids.
6. Checks: ``test_connection`` with database_name + the masked URI from ``/connection``
   answers 200 for both databases (the stored passwords are right; a wrong stored
   password, e.g. from an older seed, is repaired once through ``/api/v1/database/import/``
   with ``overwrite=true``); a wrong password is refused by PostgreSQL (psql) and by
   Superset's ``test_connection`` (400); the source's own export names the databases
   ``databases/secure_*.yaml`` (the ``passwords`` keys a migration must send) with masked
   URIs. Note: the import's ``passwords`` form field lands in the SOURCE's ``logs`` table.

Prints JSON: {"url", "database", "dashboards": [{"id", "uuid", "dashboard_title", "slug"}],
"secure": {...} (with --secure: "dashboards", "databases" with "bundle_key", "checks")}.
Exits non-zero with Superset's answer on failure. Needs only ``requests``.
Concurrent runs against one server are serialized (flock on $SUPERSET_HOME/seed-<port>.lock).

Usage: seed.py [--url http://127.0.0.1:8188] [--count N] [--user admin --password admin]
               [--skip-postgres] [--bundle-out FILE] [--secure [--secure-bundle-out FILE]]
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import requests

PG = [
    "psql",
    "-h",
    os.environ.get("PGHOST", "127.0.0.1"),
    "-p",
    os.environ.get("PGPORT", "5432"),
    "-U",
    os.environ.get("PGUSER", "postgres"),
    "-v",
    "ON_ERROR_STOP=1",
    "-q",
    "-At",
]

DB_NAME = "mig_public"
DB_ROLE = "mig_reader"
DB_URI = f"postgresql://{DB_ROLE}@127.0.0.1:5432/{DB_NAME}"

# Fixed uuids: re-running updates the same objects.
DATABASE_UUID = "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0001"
DATASET_UUID = "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0002"
CHART_UUID = "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0003"
DASHBOARD_UUID = "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0004"
BULK_NAMESPACE = uuid.UUID("5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a00ff")

SALES_ROWS = [
    (1, "North", "Widget", 120.50, "2025-01-15"),
    (2, "South", "Widget", 80.00, "2025-01-20"),
    (3, "North", "Gadget", 310.25, "2025-02-03"),
    (4, "East", "Gizmo", 55.75, "2025-02-11"),
    (5, "West", "Gadget", 199.99, "2025-03-01"),
]


SALES_COLUMNS = [
    ("id", "INTEGER", False),
    ("region", "TEXT", False),
    ("product", "TEXT", False),
    ("amount", "NUMERIC(10, 2)", False),
    ("sold_on", "DATE", True),
]
SALES_METRICS = [("count", "COUNT(*)", "COUNT(*)"), ("sum__amount", "Total amount", "SUM(amount)")]

# --------------------------------------------------------------------------- --secure
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MASK = "XXXXXXXXXX"  # how Superset masks a stored password in URIs and exports
WAREHOUSE_PG_DB = "mig_warehouse"
STOCK_ROWS = [
    (1, "Berlin", "Widget", 40, "2025-01-31"),
    (2, "Berlin", "Gadget", 12, "2025-01-31"),
    (3, "Lyon", "Widget", 25, "2025-02-28"),
    (4, "Porto", "Gizmo", 7, "2025-02-28"),
]
STOCK_COLUMNS = [
    ("id", "INTEGER", False),
    ("warehouse", "TEXT", False),
    ("item", "TEXT", False),
    ("units", "INTEGER", False),
    ("counted_on", "DATE", True),
]
STOCK_METRICS = [("count", "COUNT(*)", "COUNT(*)"), ("sum__units", "Units", "SUM(units)")]

_U = "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0{}"
# Superset databases of the secure seed. The password goes to Superset only through the
# import's `passwords` field (keyed by bundle_key) and to PostgreSQL through pg_auth.sh.
SECURE_DATABASES = [
    {
        "database_name": "secure_analytics",
        "uuid": _U.format("101"),
        "role": "mig_secure",
        "password": "mig_secret",
        "pg_database": "mig_public",
        "bundle_key": "databases/secure_analytics.yaml",
    },
    {
        "database_name": "secure_warehouse",
        "uuid": _U.format("102"),
        "role": "mig_wh",
        "password": "wh-Secret!42",
        "pg_database": WAREHOUSE_PG_DB,
        "bundle_key": "databases/secure_warehouse.yaml",
    },
]
for _db in SECURE_DATABASES:  # they go into URIs unencoded
    assert not set(_db["password"]) & set("@:/"), _db["database_name"]
# Dataset table names must be unique on the whole server: Superset's SQLite metadata DB
# keeps a legacy UNIQUE (table_name) on `tables`, and a clash makes an import a bare 500
# "Import dashboard failed for an unknown reason" (both servers already hold `sales`).
SECURE_DATASETS = {  # key -> (uuid, database_name, table, columns, metrics, main_dttm_col)
    "sales": (
        _U.format("111"),
        "secure_analytics",
        "secure_sales",
        SALES_COLUMNS,
        SALES_METRICS,
        "sold_on",
    ),
    "stock": (
        _U.format("112"),
        "secure_warehouse",
        "warehouse_stock",
        STOCK_COLUMNS,
        STOCK_METRICS,
        "counted_on",
    ),
}
SECURE_CHARTS = {  # key -> (uuid, slice_name, dataset key, groupby, metric)
    "sales_region": (_U.format("121"), "Secure Sales by Region", "sales", "region", "sum__amount"),
    "sales_product": (
        _U.format("122"),
        "Secure Sales by Product",
        "sales",
        "product",
        "sum__amount",
    ),
    "stock": (_U.format("123"), "Warehouse Stock", "stock", "warehouse", "sum__units"),
}
SECURE_DASHBOARDS = [
    {
        "dashboard_title": "Secure Sales",
        "slug": "secure-sales",
        "uuid": _U.format("131"),
        "charts": ["sales_region"],
    },
    {
        "dashboard_title": "Two Databases",
        "slug": "two-databases",
        "uuid": _U.format("132"),
        "charts": ["sales_product", "stock"],
    },
]
WRONG_PASSWORD = "not-the-password"  # shares nothing with the real ones


def masked_uri(db: dict, password: str = MASK) -> str:
    return f"postgresql://{db['role']}:{password}@127.0.0.1:5432/{db['pg_database']}"


class SeedError(Exception):
    pass


# --------------------------------------------------------------------------- PostgreSQL
def psql(sql: str, db: str = "postgres") -> str:
    try:
        proc = subprocess.run(
            [*PG, "-d", db], input=sql, capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError as exc:
        raise SeedError("psql not found (apt-get install postgresql-client)") from exc
    if proc.returncode != 0:
        raise SeedError(f"psql failed on {db}: {proc.stderr.strip()}")
    return proc.stdout


def ensure_postgres() -> None:
    psql(f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{DB_ROLE}') THEN
    CREATE ROLE {DB_ROLE} LOGIN;
  END IF;
END $$;
""")
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'").strip() != "1":
        try:
            psql(f"CREATE DATABASE {DB_NAME}")
        except SeedError as exc:  # a parallel run created it first
            if "already exists" not in str(exc):
                raise
    values = ",\n".join(f"({i}, '{r}', '{p}', {a}, DATE '{d}')" for i, r, p, a, d in SALES_ROWS)
    psql(
        f"""
BEGIN;
-- Seeds of several servers share these tables: one at a time (else a duplicate key).
SELECT pg_advisory_xact_lock(5303001);
CREATE TABLE IF NOT EXISTS public.sales (
    id integer PRIMARY KEY,
    region text NOT NULL,
    product text NOT NULL,
    amount numeric(10, 2) NOT NULL,
    sold_on date NOT NULL
);
DELETE FROM public.sales;
INSERT INTO public.sales (id, region, product, amount, sold_on) VALUES
{values};
COMMIT;
GRANT CONNECT ON DATABASE {DB_NAME} TO {DB_ROLE};
GRANT USAGE ON SCHEMA public TO {DB_ROLE};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {DB_ROLE};
""",
        db=DB_NAME,
    )


def ensure_secure_postgres() -> None:
    """Tables of the --secure datasets (as postgres, trust): public.secure_sales in
    mig_public and public.warehouse_stock in the new database mig_warehouse. Run before
    pg_auth.sh, which grants SELECT on the tables that exist."""
    sales = ",\n".join(f"({i}, '{r}', '{p}', {a}, DATE '{d}')" for i, r, p, a, d in SALES_ROWS)
    psql(
        f"""
BEGIN;
-- Seeds of several servers share these tables: one at a time (else a duplicate key).
SELECT pg_advisory_xact_lock(5303001);
CREATE TABLE IF NOT EXISTS public.secure_sales (
    id integer PRIMARY KEY,
    region text NOT NULL,
    product text NOT NULL,
    amount numeric(10, 2) NOT NULL,
    sold_on date NOT NULL
);
DELETE FROM public.secure_sales;
INSERT INTO public.secure_sales (id, region, product, amount, sold_on) VALUES
{sales};
COMMIT;
""",
        db=DB_NAME,
    )
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{WAREHOUSE_PG_DB}'").strip() != "1":
        try:
            psql(f"CREATE DATABASE {WAREHOUSE_PG_DB}")
        except SeedError as exc:  # a parallel run created it first
            if "already exists" not in str(exc):
                raise
    stock = ",\n".join(f"({i}, '{w}', '{it}', {u}, DATE '{d}')" for i, w, it, u, d in STOCK_ROWS)
    psql(
        f"""
BEGIN;
-- Seeds of several servers share these tables: one at a time (else a duplicate key).
SELECT pg_advisory_xact_lock(5303001);
CREATE TABLE IF NOT EXISTS public.warehouse_stock (
    id integer PRIMARY KEY,
    warehouse text NOT NULL,
    item text NOT NULL,
    units integer NOT NULL,
    counted_on date NOT NULL
);
DELETE FROM public.warehouse_stock;
INSERT INTO public.warehouse_stock (id, warehouse, item, units, counted_on) VALUES
{stock};
COMMIT;
""",
        db=WAREHOUSE_PG_DB,
    )


def ensure_pg_auth() -> None:
    """pg_auth.sh for every secure role: password set, scram-sha-256 line, grants, check."""
    for db in SECURE_DATABASES:
        proc = subprocess.run(
            ["bash", str(HERE / "pg_auth.sh"), db["role"], db["password"], db["pg_database"]],
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise SeedError(
                f"pg_auth.sh {db['role']} {db['pg_database']} failed: {proc.stderr.strip()}"
            )


def psql_login(role: str, password: str, database: str) -> tuple[bool, str]:
    """Log in as `role` over TCP with `password` (never from ~/.pgpass). (ok, error text)"""
    env = {**os.environ, "PGPASSWORD": password, "PGPASSFILE": os.devnull}
    env.pop("PGSERVICE", None)
    proc = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", os.environ.get("PGPORT", "5432"), "-U", role,
         "-d", database, "-w", "-qAt", "-c", "SELECT 1"],
        capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr.strip()


def check_pg_passwords() -> dict[str, dict[str, str]]:
    """The right password logs in, a wrong one is refused BY POSTGRESQL (not trust)."""
    out: dict[str, dict[str, str]] = {"psql_right_password": {}, "psql_wrong_password": {}}
    for db in SECURE_DATABASES:
        who = f"{db['role']}@{db['pg_database']}"
        ok, err = psql_login(db["role"], db["password"], db["pg_database"])
        if not ok:
            raise SeedError(f"{who}: the right password does not log in: {err}")
        out["psql_right_password"][who] = "ok"
        ok, err = psql_login(db["role"], WRONG_PASSWORD, db["pg_database"])
        if ok:
            raise SeedError(f"{who}: a WRONG password is accepted (trust auth still wins)")
        if "password authentication failed" not in err:
            raise SeedError(f"{who}: wrong password failed for another reason: {err}")
        out["psql_wrong_password"][who] = "refused: password authentication failed"
    return out


# --------------------------------------------------------------------------- bundle
def _unknown_fields(r: requests.Response) -> dict[str, dict]:
    """{bundle path: {key: ["Unknown field."] or nested}}: what an import 422 reports as
    "Unknown field." (Superset 4.1 refusing keys of a newer bundle); {} when nothing."""
    try:
        extra = dict(r.json()["errors"][0]["extra"])
    except (ValueError, KeyError, IndexError, TypeError):
        return {}

    def unknown_part(v: object) -> object:
        if v == ["Unknown field."]:
            return v
        if isinstance(v, dict):
            parts = {k: unknown_part(x) for k, x in v.items()}
            return {k: x for k, x in parts.items() if x} or None
        return None

    found = {path: unknown_part(v) for path, v in extra.items() if path != "issue_codes"}
    return {path: v for path, v in found.items() if isinstance(v, dict)}


def _strip(obj: object, problems: dict) -> None:
    for key, v in problems.items():
        if isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            target, k = obj, int(key)
        elif isinstance(obj, dict) and key in obj:
            target, k = obj, key
        else:
            continue
        if v == ["Unknown field."]:
            del target[k]
        else:
            _strip(target[k], v)


def _strip_bundle(bundle: bytes, unknown: dict[str, dict]) -> bytes:
    """The bundle with the keys of `unknown` (paths without the root folder) removed.
    Only for seed.py's own bundles, whose YAML files are JSON."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(bundle)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            rel = info.filename.split("/", 1)[-1]
            if rel in unknown:
                obj = json.loads(data)
                _strip(obj, unknown[rel])
                data = _yaml(obj).encode()
            zout.writestr(info, data)
    return out.getvalue()


# Every YAML file is written as JSON, which is valid YAML (no PyYAML needed).
def _yaml(obj: dict) -> str:
    return json.dumps(obj, indent=2) + "\n"


def database_yaml(name: str = DB_NAME, uri: str = DB_URI, db_uuid: str = DATABASE_UUID) -> dict:
    return {
        "database_name": name,
        "sqlalchemy_uri": uri,
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_file_upload": False,
        "extra": {"allows_virtual_table_explore": True},
        "impersonate_user": False,
        "uuid": db_uuid,
        "version": "1.0.0",
    }


def dataset_yaml(
    ds_uuid: str = DATASET_UUID,
    db_uuid: str = DATABASE_UUID,
    table: str = "sales",
    columns: list[tuple[str, str, bool]] | None = None,
    metrics: list[tuple[str, str, str]] | None = None,
    main_dttm_col: str = "sold_on",
) -> dict:
    """columns: (name, type, is_dttm); metrics: (metric_name, verbose_name, expression).
    Defaults: the columns and metrics of public.sales."""

    def col(name, typ, is_dttm=False):
        return {
            "column_name": name,
            "verbose_name": None,
            "is_dttm": is_dttm,
            "is_active": True,
            "type": typ,
            "advanced_data_type": None,
            "groupby": True,
            "filterable": True,
            "expression": None,
            "description": None,
            "python_date_format": None,
            "extra": {},
        }

    def metric(name, verbose, expression):
        return {
            "metric_name": name,
            "verbose_name": verbose,
            "metric_type": expression.split("(")[0].lower(),
            "expression": expression,
            "description": None,
            "d3format": None,
            "extra": {},
            "warning_text": None,
        }

    return {
        "table_name": table,
        "main_dttm_col": main_dttm_col,
        "description": None,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "schema": "public",
        "sql": None,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "uuid": ds_uuid,
        "metrics": [metric(*m) for m in (metrics or SALES_METRICS)],
        "columns": [col(n, t, is_dttm=d) for n, t, d in (columns or SALES_COLUMNS)],
        "version": "1.0.0",
        "database_uuid": db_uuid,
    }


def chart_yaml(
    name: str = "Sales by Region",
    chart_uuid: str = CHART_UUID,
    ds_uuid: str = DATASET_UUID,
    groupby: str = "region",
    metric: str = "sum__amount",
) -> dict:
    return {
        "slice_name": name,
        "description": None,
        "certified_by": None,
        "certification_details": None,
        "viz_type": "table",
        "params": {
            "datasource": "1__table",
            "viz_type": "table",
            "query_mode": "aggregate",
            "groupby": [groupby],
            "metrics": [metric],
            "adhoc_filters": [],
            "row_limit": 100,
            "order_desc": True,
        },
        "query_context": None,
        "cache_timeout": None,
        "uuid": chart_uuid,
        "version": "1.0.0",
        "dataset_uuid": ds_uuid,
    }


def dashboard_yaml(
    title: str, slug: str, dash_uuid: str, charts: list[tuple[str, str]] = ()
) -> dict:
    """charts: (chart uuid, slice name) pairs, one row each."""
    position: dict = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": title}},
    }
    for n, (chart_uuid, slice_name) in enumerate(charts, start=1):
        row, chart = f"ROW-{n}", f"CHART-{n}"
        position["GRID_ID"]["children"].append(row)
        position[row] = {
            "type": "ROW",
            "id": row,
            "children": [chart],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        position[chart] = {
            "type": "CHART",
            "id": chart,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID", row],
            "meta": {
                "width": 6,
                "height": 50,
                "chartId": n,
                "sliceName": slice_name,
                "uuid": chart_uuid,
            },
        }
    return {
        "dashboard_title": title,
        "description": None,
        "css": "",
        "slug": slug,
        "certified_by": None,
        "certification_details": None,
        "published": True,
        "uuid": dash_uuid,
        "position": position,
        "metadata": {
            "color_scheme": "",
            "refresh_frequency": 0,
            "expanded_slices": {},
            "label_colors": {},
            "timed_refresh_immune_slices": [],
            "cross_filters_enabled": True,
            "default_filters": "{}",
            "chart_configuration": {},
            "native_filter_configuration": [],
        },
        "version": "1.0.0",
    }


def bulk_dashboards(count: int) -> list[dict]:
    out = []
    for i in range(1, count + 1):
        title = f"Bulk {i:03d}"
        out.append(
            {
                "title": title,
                "slug": f"bulk-{i:03d}",
                "uuid": str(uuid.uuid5(BULK_NAMESPACE, title)),
            }
        )
    return out


def build_bundle(count: int = 0, root: str = "mig_seed_bundle") -> bytes:
    files = {
        "metadata.yaml": _yaml(
            {"version": "1.0.0", "type": "Dashboard", "timestamp": "2025-01-01T00:00:00+00:00"}
        ),
        f"databases/{DB_NAME}.yaml": _yaml(database_yaml()),
        f"datasets/{DB_NAME}/sales.yaml": _yaml(dataset_yaml()),
        "charts/Sales_by_Region_1.yaml": _yaml(chart_yaml()),
        "dashboards/Sales_Overview_1.yaml": _yaml(
            dashboard_yaml(
                "Sales Overview",
                "sales-overview",
                DASHBOARD_UUID,
                [(CHART_UUID, "Sales by Region")],
            )
        ),
    }
    for n, b in enumerate(bulk_dashboards(count), start=2):
        files[f"dashboards/{b['title'].replace(' ', '_')}_{n}.yaml"] = _yaml(
            dashboard_yaml(b["title"], b["slug"], b["uuid"])
        )
    return zip_bundle(files, root)


def zip_bundle(files: dict[str, str | dict], root: str = "bundle") -> bytes:
    """ZIP {bundle path: text or dict} under one root folder (Superset strips it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, text in files.items():
            zf.writestr(f"{root}/{path}", text if isinstance(text, str) else _yaml(text))
    return buf.getvalue()


def _file_stem(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def build_secure_bundle(root: str = "mig_secure_bundle") -> tuple[bytes, dict[str, str]]:
    """The --secure bundle and its `passwords` field ({bundle_key: password})."""
    dbs = {db["database_name"]: db for db in SECURE_DATABASES}
    files: dict[str, str | dict] = {
        "metadata.yaml": {
            "version": "1.0.0",
            "type": "Dashboard",
            "timestamp": "2025-01-01T00:00:00+00:00",
        }
    }
    for db in SECURE_DATABASES:
        files[db["bundle_key"]] = database_yaml(db["database_name"], masked_uri(db), db["uuid"])
    for ds_uuid, db_name, table, columns, metrics, dttm in SECURE_DATASETS.values():
        files[f"datasets/{db_name}/{table}.yaml"] = dataset_yaml(
            ds_uuid, dbs[db_name]["uuid"], table, columns, metrics, dttm
        )
    for n, (ch_uuid, name, ds_key, groupby, metric) in enumerate(SECURE_CHARTS.values(), 1):
        files[f"charts/{_file_stem(name)}_{120 + n}.yaml"] = chart_yaml(
            name, ch_uuid, SECURE_DATASETS[ds_key][0], groupby, metric
        )
    for n, d in enumerate(SECURE_DASHBOARDS, 1):
        charts = [(SECURE_CHARTS[k][0], SECURE_CHARTS[k][1]) for k in d["charts"]]
        files[f"dashboards/{_file_stem(d['dashboard_title'])}_{130 + n}.yaml"] = dashboard_yaml(
            d["dashboard_title"], d["slug"], d["uuid"], charts
        )
    passwords = {db["bundle_key"]: db["password"] for db in SECURE_DATABASES}
    return zip_bundle(files, root), passwords


def build_database_bundle(dbs: list[dict], root: str = "mig_secure_databases") -> bytes:
    """metadata `type: Database` + the databases' YAML (for /api/v1/database/import/)."""
    files: dict[str, str | dict] = {
        "metadata.yaml": {
            "version": "1.0.0",
            "type": "Database",
            "timestamp": "2025-01-01T00:00:00+00:00",
        }
    }
    for db in dbs:
        files[db["bundle_key"]] = database_yaml(db["database_name"], masked_uri(db), db["uuid"])
    return zip_bundle(files, root)


# --------------------------------------------------------------------------- Superset
class Superset:
    def __init__(self, url: str, user: str, password: str, timeout: float = 120):
        self.url = url.rstrip("/")
        self.s = requests.Session()
        self.s.headers["Accept"] = "application/json"
        self.timeout = timeout
        r = self.s.post(
            f"{self.url}/api/v1/security/login",
            timeout=timeout,
            json={"username": user, "password": password, "provider": "db", "refresh": True},
        )
        self._check(r, "login")
        self.s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        r = self.s.get(f"{self.url}/api/v1/security/csrf_token/", timeout=timeout)
        self._check(r, "csrf_token")
        self.s.headers["X-CSRFToken"] = r.json()["result"]

    @staticmethod
    def _check(r: requests.Response, what: str) -> None:
        if r.status_code != 200:
            raise SeedError(
                f"{what}: HTTP {r.status_code} {r.headers.get('Location', '')} {r.text[:4000]}"
            )

    def import_dashboards(
        self, bundle: bytes, passwords: dict[str, str] | None = None, kind: str = "dashboard"
    ) -> None:
        """POST /api/v1/<kind>/import/ with overwrite=true (kind: dashboard or database).

        An older Superset (4.1) answers 422 "Unknown field." for keys it does not know
        (e.g. ``impersonate_user``): those keys are removed and the import is sent again."""
        r = self._post_import(bundle, passwords, kind)
        unknown = _unknown_fields(r) if r.status_code == 422 else {}
        if unknown:
            r = self._post_import(_strip_bundle(bundle, unknown), passwords, kind)
        self._check(r, f"{kind} import")

    def _post_import(
        self, bundle: bytes, passwords: dict[str, str] | None, kind: str
    ) -> requests.Response:
        return self.s.post(
            f"{self.url}/api/v1/{kind}/import/",
            files={"formData": ("bundle.zip", bundle, "application/zip")},
            data={
                "overwrite": "true",
                "passwords": json.dumps(passwords or {}),
                "ssh_tunnel_passwords": "{}",
                "ssh_tunnel_private_keys": "{}",
                "ssh_tunnel_private_key_passwords": "{}",
            },
            allow_redirects=False,
            timeout=self.timeout * 3,
        )

    def dashboards(self, rison_filters: str) -> list[dict]:
        rows, page = [], 0
        while True:
            q = (
                f"(columns:!(id,uuid,dashboard_title,slug),filters:!({rison_filters}),"
                f"order_column:dashboard_title,order_direction:asc,page:{page},page_size:100)"
            )
            r = self.s.get(f"{self.url}/api/v1/dashboard/", params={"q": q}, timeout=self.timeout)
            self._check(r, "dashboard list")
            body = r.json()
            rows += body["result"]
            if len(body["result"]) < 100 or len(rows) >= body["count"]:
                return rows
            page += 1

    def get_json(self, path: str, **kw) -> dict:
        r = self.s.get(f"{self.url}{path}", timeout=self.timeout, allow_redirects=False, **kw)
        self._check(r, f"GET {path}")
        return r.json()

    def database_by_uuid(self, db_uuid: str) -> dict | None:
        q = f"(columns:!(id,uuid,database_name),filters:!((col:uuid,opr:eq,value:'{db_uuid}')))"
        res = self.get_json("/api/v1/database/", params={"q": q})["result"]
        return res[0] if res else None

    def test_connection(self, body: dict) -> requests.Response:
        return self.s.post(
            f"{self.url}/api/v1/database/test_connection/",
            json=body,
            timeout=self.timeout,
            allow_redirects=False,
        )

    def stored_password_ok(self, database_id: int) -> tuple[int, str]:
        """test_connection with database_name + the masked URI: the STORED password."""
        conn = self.get_json(f"/api/v1/database/{database_id}/connection")["result"]
        body = {"database_name": conn["database_name"], "sqlalchemy_uri": conn["sqlalchemy_uri"]}
        r = self.test_connection(body)
        return r.status_code, r.text[:1000]

    def export_listing(self, dashboard_ids: list[int]) -> dict[str, str]:
        """{bundle path without the root folder: text} of the server's own export."""
        r = self.s.get(
            f"{self.url}/api/v1/dashboard/export/",
            params={"q": f"!({','.join(map(str, dashboard_ids))})"},
            timeout=self.timeout,
        )
        self._check(r, "dashboard export")
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            return {n.split("/", 1)[1]: zf.read(n).decode() for n in zf.namelist() if "/" in n}

    def database_id(self) -> int | None:
        q = f"(columns:!(id,uuid,database_name),filters:!((col:uuid,opr:eq,value:'{DATABASE_UUID}')))"
        r = self.s.get(f"{self.url}/api/v1/database/", params={"q": q}, timeout=self.timeout)
        self._check(r, "database list")
        res = r.json()["result"]
        return res[0]["id"] if res else None


def seed_secure(api: Superset, bundle_out: str | None = None) -> dict:
    """Import the --secure bundle (one import, with passwords) and prove it works."""
    bundle, passwords = build_secure_bundle()
    if bundle_out:
        Path(bundle_out).write_bytes(bundle)
    api.import_dashboards(bundle, passwords)

    dashboards = []
    for d in SECURE_DASHBOARDS:
        row = api.get_json(f"/api/v1/dashboard/{d['uuid']}")["result"]
        charts = api.get_json(f"/api/v1/dashboard/{row['id']}/charts")["result"]
        datasets = api.get_json(f"/api/v1/dashboard/{row['id']}/datasets")["result"]
        names = sorted(c["slice_name"] for c in charts)
        want = sorted(SECURE_CHARTS[k][1] for k in d["charts"])
        if row["dashboard_title"] != d["dashboard_title"] or names != want:
            raise SeedError(
                f"dashboard {d['uuid']}: got {row['dashboard_title']!r} with charts {names}, "
                f"want {d['dashboard_title']!r} with {want} (a dataset without its database "
                "is skipped silently)"
            )
        dashboards.append(
            {
                "id": row["id"],
                "uuid": d["uuid"],
                "dashboard_title": row["dashboard_title"],
                "slug": row["slug"],
                "charts": names,
                "databases": sorted({ds["database"]["name"] for ds in datasets}),
            }
        )

    databases, checks, repaired = [], {"test_connection_stored_password": {}}, []
    checks["test_connection_wrong_password"] = {}
    for db in SECURE_DATABASES:
        row = api.database_by_uuid(db["uuid"])
        if row is None:
            raise SeedError(f"database {db['database_name']} ({db['uuid']}) missing after import")
        status, body = api.stored_password_ok(row["id"])
        uri_now = api.get_json(f"/api/v1/database/{row['id']}/connection")["result"][
            "sqlalchemy_uri"
        ]
        # A URI stored with the password in it (Superset 4.1.4 keeps a password written
        # into an imported YAML's URI as it is, and shows and exports it): repaired the
        # same way, and said in the output ("repaired_passwords").
        if status != 200 or uri_now != masked_uri(db):
            # Dashboard import never overwrites an existing database: a stale stored
            # password (older seed, other role password) is fixed by a database import.
            api.import_dashboards(
                build_database_bundle([db]), {db["bundle_key"]: db["password"]}, kind="database"
            )
            repaired.append(db["database_name"])
            status, body = api.stored_password_ok(row["id"])
            if status != 200:
                raise SeedError(
                    f"{db['database_name']}: test_connection with the stored password: "
                    f"HTTP {status} {body}"
                )
        checks["test_connection_stored_password"][db["database_name"]] = status
        r = api.test_connection({"sqlalchemy_uri": masked_uri(db, WRONG_PASSWORD)})
        kinds = [e.get("error_type") for e in (r.json().get("errors") or [])] if r.text else []
        if r.status_code == 200 or "CONNECTION_INVALID_PASSWORD_ERROR" not in kinds:
            raise SeedError(
                f"{db['database_name']}: test_connection with a wrong password: "
                f"HTTP {r.status_code} {r.text[:500]} (want 400 CONNECTION_INVALID_PASSWORD_ERROR)"
            )
        checks["test_connection_wrong_password"][db["database_name"]] = (
            f"{r.status_code} CONNECTION_INVALID_PASSWORD_ERROR"
        )
        conn = api.get_json(f"/api/v1/database/{row['id']}/connection")["result"]
        databases.append(
            {
                "id": row["id"],
                "uuid": db["uuid"],
                "database_name": row["database_name"],
                "sqlalchemy_uri": conn["sqlalchemy_uri"],
                "bundle_key": db["bundle_key"],
                "role": db["role"],
                "pg_database": db["pg_database"],
                "connection_ok": True,
            }
        )
        if conn["sqlalchemy_uri"] != masked_uri(db):
            raise SeedError(f"{db['database_name']}: /connection URI {conn['sqlalchemy_uri']}")

    # The keys a migration must use are the source's own export paths.
    listing = api.export_listing([d["id"] for d in dashboards])
    export_keys = sorted(k for k in listing if k.startswith("databases/"))
    for db in SECURE_DATABASES:
        text = listing.get(db["bundle_key"], "")
        if f"sqlalchemy_uri: {masked_uri(db)}" not in text:
            raise SeedError(f"source export: {db['bundle_key']} missing or unmasked: {text[:300]}")
    checks.update(check_pg_passwords())
    return {
        "dashboards": dashboards,
        "databases": databases,
        "passwords_keys": sorted(passwords),
        "export_database_keys": export_keys,
        "repaired_passwords": repaired,
        "checks": checks,
    }


def _lock(url: str):
    """Serialize seed runs against one server (parallel test sessions)."""
    home = Path(os.environ.get("SUPERSET_HOME") or REPO / ".superset")
    home.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() else "_" for c in url.split("://")[-1])
    fh = open(home / f"seed-{name}.lock", "w")  # noqa: SIM115 (held until exit)
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=os.environ.get("SUPERSET_SOURCE_URL", "http://127.0.0.1:8188"))
    ap.add_argument("--count", type=int, default=0, help="extra dashboards Bulk 001..Bulk N")
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", default="admin")
    ap.add_argument(
        "--skip-postgres",
        action="store_true",
        help="do not create the mig_public database (import works without it)",
    )
    ap.add_argument("--bundle-out", help="also write the bundle ZIP to this file")
    ap.add_argument(
        "--secure",
        action="store_true",
        help="also seed password-protected databases and the dashboards "
        "'Secure Sales' and 'Two Databases' (changes pg_hba.conf through pg_auth.sh)",
    )
    ap.add_argument("--secure-bundle-out", help="also write the --secure bundle ZIP here")
    args = ap.parse_args(argv)
    if args.secure and args.skip_postgres:
        ap.error("--secure needs PostgreSQL (the passwords must really be checked)")
    try:
        t0 = time.monotonic()
        lock = _lock(args.url)  # noqa: F841 (released at exit)
        if not args.skip_postgres:
            ensure_postgres()
        if args.secure:
            ensure_secure_postgres()
            ensure_pg_auth()
        bundle = build_bundle(args.count)
        if args.bundle_out:
            with open(args.bundle_out, "wb") as fh:
                fh.write(bundle)
        api = Superset(args.url, args.user, args.password)
        api.import_dashboards(bundle)
        wanted = {DASHBOARD_UUID} | {b["uuid"] for b in bulk_dashboards(args.count)}
        rows = api.dashboards("(col:dashboard_title,opr:eq,value:'Sales Overview')")
        if args.count:
            rows += api.dashboards("(col:dashboard_title,opr:sw,value:'Bulk ')")
        rows = [r for r in rows if r["uuid"] in wanted]
        missing = wanted - {r["uuid"] for r in rows}
        if missing:
            raise SeedError(
                f"import said OK but {len(missing)} dashboards are missing, "
                f"e.g. {sorted(missing)[:3]}"
            )
        out = {
            "url": args.url,
            "database": {
                "id": api.database_id(),
                "uuid": DATABASE_UUID,
                "database_name": DB_NAME,
                "sqlalchemy_uri": DB_URI,
            },
            "dataset_uuid": DATASET_UUID,
            "chart_uuid": CHART_UUID,
            "dashboards": rows,
        }
        if args.secure:
            out["secure"] = seed_secure(api, args.secure_bundle_out)
        out["seconds"] = round(time.monotonic() - t0, 2)
        print(json.dumps(out, indent=2))
        return 0
    except (SeedError, requests.RequestException) as exc:
        print(f"seed.py: ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
