#!/usr/bin/env python3
"""Seed a Superset 6.1 test server (the SOURCE) with content, idempotently.

1. PostgreSQL (psql -h 127.0.0.1 -U postgres, trust): role ``mig_reader`` (LOGIN, no
   password), database ``mig_public`` with table ``public.sales`` (a few rows).
2. A v1 dashboard bundle built by hand (fixed uuids): database ``mig_public``
   (``postgresql://mig_reader@127.0.0.1:5432/mig_public``), dataset ``sales``, chart
   "Sales by Region", dashboard "Sales Overview" (slug ``sales-overview``), plus with
   ``--count N`` N chart-less dashboards "Bulk 001".."Bulk N" (slug ``bulk-001``…).
3. ``POST /api/v1/dashboard/import/`` with ``overwrite=true`` (JWT + CSRF + session).

Prints JSON: {"url", "database", "dashboards": [{"id", "uuid", "dashboard_title", "slug"}]}.
Exits non-zero with Superset's answer on failure. Needs only ``requests``.

Usage: seed.py [--url http://127.0.0.1:8188] [--count N] [--user admin --password admin]
               [--skip-postgres] [--bundle-out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile

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


# --------------------------------------------------------------------------- bundle
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
    ds_uuid: str = DATASET_UUID, db_uuid: str = DATABASE_UUID, table: str = "sales"
) -> dict:
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

    return {
        "table_name": table,
        "main_dttm_col": "sold_on",
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
        "metrics": [
            {
                "metric_name": "count",
                "verbose_name": "COUNT(*)",
                "metric_type": "count",
                "expression": "COUNT(*)",
                "description": None,
                "d3format": None,
                "extra": {},
                "warning_text": None,
            },
            {
                "metric_name": "sum__amount",
                "verbose_name": "Total amount",
                "metric_type": "sum",
                "expression": "SUM(amount)",
                "description": None,
                "d3format": None,
                "extra": {},
                "warning_text": None,
            },
        ],
        "columns": [
            col("id", "INTEGER"),
            col("region", "TEXT"),
            col("product", "TEXT"),
            col("amount", "NUMERIC(10, 2)"),
            col("sold_on", "DATE", is_dttm=True),
        ],
        "version": "1.0.0",
        "database_uuid": db_uuid,
    }


def chart_yaml(
    name: str = "Sales by Region", chart_uuid: str = CHART_UUID, ds_uuid: str = DATASET_UUID
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
            "groupby": ["region"],
            "metrics": ["sum__amount"],
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

    def import_dashboards(self, bundle: bytes) -> None:
        r = self.s.post(
            f"{self.url}/api/v1/dashboard/import/",
            files={"formData": ("bundle.zip", bundle, "application/zip")},
            data={
                "overwrite": "true",
                "passwords": "{}",
                "ssh_tunnel_passwords": "{}",
                "ssh_tunnel_private_keys": "{}",
                "ssh_tunnel_private_key_passwords": "{}",
            },
            allow_redirects=False,
            timeout=self.timeout * 3,
        )
        self._check(r, "dashboard import")

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

    def database_id(self) -> int | None:
        q = f"(columns:!(id,uuid,database_name),filters:!((col:uuid,opr:eq,value:'{DATABASE_UUID}')))"
        r = self.s.get(f"{self.url}/api/v1/database/", params={"q": q}, timeout=self.timeout)
        self._check(r, "database list")
        res = r.json()["result"]
        return res[0]["id"] if res else None


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
    args = ap.parse_args(argv)
    try:
        t0 = time.monotonic()
        if not args.skip_postgres:
            ensure_postgres()
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
            "seconds": round(time.monotonic() - t0, 2),
        }
        print(json.dumps(out, indent=2))
        return 0
    except (SeedError, requests.RequestException) as exc:
        print(f"seed.py: ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
