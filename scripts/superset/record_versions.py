#!/usr/bin/env python3
"""Record, per Superset version, what the product's table of keys per version is pinned
against (tests/fixtures/superset/versions/<version>/):

- ``version_probe.json``: the answers of the calls that can tell a server's version
  (status + trimmed body), asked as an anonymous client and as the admin.
- ``export/``: the YAML files of that version's OWN export of the dashboard "Versions
  Probe", built on it through its API: a dataset whose metric has a currency (set with
  ``PUT /api/v1/dataset/{id}``), on 6.x also dataset folders and a theme on the
  dashboard, on a database with a password (``mig_secure``, see seed.py --secure).
- ``import_422_<from-version>.json``: the exact 422 body this version answers when it
  imports another version's export above as it is (``overwrite=true``, right password),
  e.g. ``import_422_6.1.0.json``; and ``import_<from>_<status>.json`` when it takes it.

Needs only ``requests``, PostgreSQL prepared by seed.py --secure (role mig_secure), and
the servers running (scripts/superset/up.sh; the test servers of every version:
``up.sh $(python -m tests.e2e.superset_servers specs)``).

Usage: record_versions.py [--out DIR] [--probe-only] VERSION=URL ...
       e.g. 4.1.4=http://127.0.0.1:8192 5.0.0=http://127.0.0.1:8193
            6.0.0=http://127.0.0.1:8194 6.1.0=http://127.0.0.1:8189
Exports are recorded first (all servers), then every export is imported into every other
server (the 422 bodies). The objects it creates have fixed uuids and the title
"Versions Probe"; they are deleted from a server before its own are built again.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = REPO / "tests" / "fixtures" / "superset" / "versions"

TITLE, SLUG = "Versions Probe", "versions-probe"
DB_NAME = "versions_probe_db"
ROLE, PASSWORD, PG_DB = "mig_secure", "mig_secret", "mig_public"  # seed.py --secure
MASK = "XXXXXXXXXX"
# A virtual dataset over seed.py's table: dataset table names must be unique on a whole
# server (SQLite metadata DB: legacy UNIQUE (table_name); see seed.py).
TABLE = "versions_probe_sales"
SQL = "SELECT id, region, product, amount, sold_on FROM public.secure_sales"
CURRENCY = {"symbol": "USD", "symbolPosition": "prefix"}
THEME_NAME = "Versions Probe Theme"
TRIM = 3000  # characters of a recorded body


def trimmed(text: str, limit: int = TRIM) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more]"


def answer(r: requests.Response, keep: int = TRIM) -> dict:
    """status, content type, body (JSON when it is, trimmed text otherwise)."""
    out: dict = {"status": r.status_code, "content_type": r.headers.get("Content-Type", "")}
    if r.is_redirect:
        out["location"] = r.headers.get("Location", "")
    try:
        body = r.json()
    except ValueError:
        out["body_text"] = trimmed(r.text, keep)
        return out
    text = json.dumps(body)
    if len(text) > keep:
        out["body_trimmed"] = trimmed(text, keep)
    else:
        out["body"] = body
    return out


class Api:
    def __init__(self, url: str, login: bool = True):
        self.url = url.rstrip("/")
        self.s = requests.Session()
        self.s.headers["Accept"] = "application/json"
        if login:
            r = self.s.post(
                f"{self.url}/api/v1/security/login",
                json={"username": "admin", "password": "admin", "provider": "db"},
                timeout=60,
            )
            r.raise_for_status()
            self.s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            r = self.s.get(f"{self.url}/api/v1/security/csrf_token/", timeout=60)
            r.raise_for_status()
            self.s.headers["X-CSRFToken"] = r.json()["result"]

    def call(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 180)
        kw.setdefault("allow_redirects", False)
        return self.s.request(method, f"{self.url}{path}", **kw)

    def ok(self, method: str, path: str, **kw) -> dict:
        r = self.call(method, path, **kw)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {r.status_code} {r.text[:2000]}")
        return r.json() if r.content else {}

    def rows(self, resource: str, columns: str) -> list[dict]:
        out, page = [], 0
        while True:
            q = f"(columns:!({columns}),page:{page},page_size:100)"
            body = self.ok("GET", f"/api/v1/{resource}/", params={"q": q})
            out += body["result"]
            if len(body["result"]) < 100:
                return out
            page += 1


# --------------------------------------------------------------------------- probing
def probe(url: str) -> dict:
    """The calls that may tell the version, anonymous and as admin."""
    anon, admin = Api(url, login=False), Api(url)
    calls = {
        "GET /health": (anon, "/health", {}),
        "GET /static/version_info.json (anonymous)": (anon, "/static/version_info.json", {}),
        "GET /static/version_info.json (admin)": (admin, "/static/version_info.json", {}),
        "GET /api/v1/theme/ (admin)": (admin, "/api/v1/theme/", {}),
        "GET /api/v1/theme/_info (admin)": (admin, "/api/v1/theme/_info", {}),
        "GET /api/v1/dataset/_info?q=(keys:!(edit_columns)) (admin)": (
            admin,
            "/api/v1/dataset/_info",
            {"params": {"q": "(keys:!(edit_columns))"}},
        ),
        "GET /api/v1/dataset/_info?q=(keys:!(add_columns)) (admin)": (
            admin,
            "/api/v1/dataset/_info",
            {"params": {"q": "(keys:!(add_columns))"}},
        ),
        "GET /api/v1/database/_info?q=(keys:!(add_columns)) (admin)": (
            admin,
            "/api/v1/database/_info",
            {"params": {"q": "(keys:!(add_columns))"}},
        ),
        "GET /api/v1/dashboard/_info?q=(keys:!(edit_columns)) (admin)": (
            admin,
            "/api/v1/dashboard/_info",
            {"params": {"q": "(keys:!(edit_columns))"}},
        ),
        "GET /api/v1/menu/ (admin)": (admin, "/api/v1/menu/", {}),
        "GET /api/v1/_openapi (admin)": (admin, "/api/v1/_openapi", {}),
        "GET /api/v1/_openapi (anonymous)": (anon, "/api/v1/_openapi", {}),
        "GET /api/v1/me/ (admin)": (admin, "/api/v1/me/", {}),
        "GET /superset/welcome/ (admin)": (admin, "/superset/welcome/", {}),
        "GET /login/ (anonymous)": (anon, "/login/", {}),
    }
    out: dict = {}
    for name, (api, path, kw) in calls.items():
        try:
            r = api.call("GET", path, **kw)
        except requests.RequestException as exc:
            out[name] = {"error": str(exc)}
            continue
        out[name] = answer(r)
        text = r.text
        if path == "/api/v1/_openapi" and r.status_code == 200:
            out[name] = {"status": r.status_code, **_openapi_summary(r.json())}
        elif path.endswith("/_info") and r.status_code == 200:
            body = r.json()
            # Only the field names (the bodies carry long translated descriptions).
            out[name] = {
                "status": r.status_code,
                "names": {
                    k: [c.get("name") for c in v] if isinstance(v, list) else v
                    for k, v in body.items()
                    if k in ("add_columns", "edit_columns")
                },
            }
        if "version_string" in text or "version_sha" in text:
            out[name]["mentions"] = _fragments(text, ("version_string", "version_sha"))
    return out


def _openapi_summary(spec: dict) -> dict:
    """What of /api/v1/_openapi could tell the version: info, paths, and the fields of
    the schemas that differ between releases."""
    schemas = spec.get("components", {}).get("schemas", {})
    paths = sorted(spec.get("paths", {}))

    def props(name: str) -> list[str] | None:
        return sorted(schemas[name].get("properties", {})) if name in schemas else None

    metrics_put = schemas.get("DatasetMetricsPut", {}).get("properties", {})
    return {
        "info": spec.get("info"),
        "openapi": spec.get("openapi"),
        "paths_count": len(paths),
        "theme_paths": [p for p in paths if p.startswith("/api/v1/theme/")],
        "paths": paths,
        "schemas_count": len(schemas),
        "schemas_with_Import_Folder_Currency": sorted(
            k for k in schemas if any(w in k for w in ("Import", "Folder", "Currency"))
        ),
        "properties": {
            n: props(n)
            for n in (
                "ImportV1Database",
                "DatasetRestApi.put",
                "DashboardRestApi.put",
                "DatabaseRestApi.post",
            )
        },
        "DatasetMetricsPut.currency": metrics_put.get("currency"),
        "release_string_anywhere": [
            v for v in ("4.1.4", "5.0.0", "6.0.0", "6.1.0") if f'"{v}"' in json.dumps(spec)
        ],
    }


def _fragments(text: str, words: tuple[str, ...], width: int = 120) -> list[str]:
    found = []
    for w in words:
        i = text.find(w)
        if i >= 0:
            found.append(text[max(0, i - 20) : i + width])
    return found


# --------------------------------------------------------------------------- building
def _uri(password: str = PASSWORD) -> str:
    return f"postgresql://{ROLE}:{password}@127.0.0.1:5432/{PG_DB}"


def cleanup(api: Api) -> None:
    """Delete the objects of an earlier run (dashboard, chart, dataset, database, theme)."""
    for d in api.rows("dashboard", "id,dashboard_title"):
        if d["dashboard_title"] == TITLE:
            api.call("DELETE", f"/api/v1/dashboard/{d['id']}")
    dbs = [d for d in api.rows("database", "id,database_name") if d["database_name"] == DB_NAME]
    db_ids = {d["id"] for d in dbs}
    datasets = [
        d
        for d in api.rows("dataset", "id,table_name,database.id")
        if (d.get("database") or {}).get("id") in db_ids
    ]
    ds_ids = {d["id"] for d in datasets}
    for c in api.rows("chart", "id,datasource_id,datasource_type"):
        if c.get("datasource_id") in ds_ids and c.get("datasource_type") == "table":
            api.call("DELETE", f"/api/v1/chart/{c['id']}")
    for d in datasets:
        api.call("DELETE", f"/api/v1/dataset/{d['id']}")
    for d in dbs:
        api.call("DELETE", f"/api/v1/database/{d['id']}")
    r = api.call("GET", "/api/v1/theme/", params={"q": "(page_size:100)"})
    if r.status_code == 200:
        for t in r.json().get("result", []):
            if t.get("theme_name") == THEME_NAME:
                api.call("DELETE", f"/api/v1/theme/{t['id']}")


def build(api: Api, version: str) -> dict:
    """Create the probe dashboard on this server; returns what was done per feature."""
    done: dict = {}
    cleanup(api)
    db = api.ok(
        "POST",
        "/api/v1/database/",
        json={"database_name": DB_NAME, "sqlalchemy_uri": _uri(), "expose_in_sqllab": True},
    )
    db_id = db["id"]
    ds = api.ok(
        "POST",
        "/api/v1/dataset/",
        json={"database": db_id, "schema": "public", "table_name": TABLE, "sql": SQL},
    )
    ds_id = ds["id"]
    detail = api.ok("GET", f"/api/v1/dataset/{ds_id}")["result"]
    metric = {"metric_name": "sum__amount", "expression": "SUM(amount)", "verbose_name": "Total"}
    # Currency: an object on 6.x; 5.0 may want it as a JSON string.
    tries = [("object", CURRENCY), ("json string", json.dumps(CURRENCY))]
    done["currency"] = []
    for kind, value in tries:
        r = api.call(
            "PUT",
            f"/api/v1/dataset/{ds_id}",
            params={"override_columns": "false"},
            json={"metrics": [{**metric, "currency": value}]},
        )
        done["currency"].append({"sent_as": kind, **answer(r, 1500)})
        if r.status_code == 200:
            break
    # Folders (6.x; the dataset's GET does not show them): a folder holding the metric
    # and a column. 4.1/5.0 answer 400 "Unknown field." (recorded).
    detail = api.ok("GET", f"/api/v1/dataset/{ds_id}")["result"]
    metric_uuid = next(
        m.get("uuid") for m in detail["metrics"] if m["metric_name"] == "sum__amount"
    )
    column_uuid = next(c.get("uuid") for c in detail["columns"] if c["column_name"] == "region")
    folders = [
        {
            "uuid": "5e3d1c0a-4b1f-4c6e-9a51-6d0c2f1a0901",
            "type": "folder",
            "name": "Money",
            "children": [
                {"uuid": metric_uuid, "type": "metric"},
                {"uuid": column_uuid, "type": "column"},
            ],
        }
    ]
    r = api.call("PUT", f"/api/v1/dataset/{ds_id}", json={"folders": folders})
    done["folders"] = answer(r, 1500)
    chart = api.ok(
        "POST",
        "/api/v1/chart/",
        json={
            "slice_name": "Versions Probe Total",
            "viz_type": "big_number_total",
            "datasource_id": ds_id,
            "datasource_type": "table",
            "params": json.dumps(
                {
                    "viz_type": "big_number_total",
                    "metric": "sum__amount",
                    "datasource": f"{ds_id}__table",
                }
            ),
        },
    )
    chart_id = chart["id"]
    position = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": ["ROW-1"], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": TITLE}},
        "ROW-1": {
            "type": "ROW",
            "id": "ROW-1",
            "children": ["CHART-1"],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        },
        "CHART-1": {
            "type": "CHART",
            "id": "CHART-1",
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID", "ROW-1"],
            "meta": {"width": 4, "height": 50, "chartId": chart_id},
        },
    }
    dash = api.ok(
        "POST",
        "/api/v1/dashboard/",
        json={
            "dashboard_title": TITLE,
            "slug": SLUG,
            "published": True,
            "position_json": json.dumps(position),
        },
    )
    dash_id = dash["id"]
    # Link the chart to the dashboard (position alone does not).
    r = api.call("PUT", f"/api/v1/chart/{chart_id}", json={"dashboards": [dash_id]})
    done["chart_on_dashboard"] = r.status_code
    # Theme (6.x): /api/v1/theme/, then the dashboard's theme_id.
    r = api.call(
        "POST",
        "/api/v1/theme/",
        json={
            "theme_name": THEME_NAME,
            "json_data": json.dumps({"token": {"colorPrimary": "#2f6f4e"}}),
        },
    )
    done["theme_create"] = answer(r, 1500)
    if r.status_code in (200, 201):
        theme_id = r.json()["id"]
        r = api.call("PUT", f"/api/v1/dashboard/{dash_id}", json={"theme_id": theme_id})
        done["theme_on_dashboard"] = answer(r, 1500)
    detail = api.ok("GET", f"/api/v1/dataset/{ds_id}")["result"]
    done["dataset_metrics_after"] = [
        {k: m.get(k) for k in ("metric_name", "currency")} for m in detail["metrics"]
    ]
    done["dashboard_id"] = dash_id
    return done


def export(api: Api, dash_id: int) -> bytes:
    r = api.call("GET", "/api/v1/dashboard/export/", params={"q": f"!({dash_id})"})
    if r.status_code != 200:
        raise RuntimeError(f"export: HTTP {r.status_code} {r.text[:1000]}")
    return r.content


def write_export(zip_bytes: bytes, folder: Path) -> list[str]:
    if folder.exists():
        for p in sorted(folder.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    names = []
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        for n in zf.namelist():
            rel = n.split("/", 1)[1] if "/" in n else n
            dest = folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(zf.read(n))
            names.append(rel)
    return sorted(names)


def import_into(api: Api, zip_bytes: bytes) -> requests.Response:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        keys = [n.split("/", 1)[1] for n in zf.namelist() if "/databases/" in f"/{n}"]
    return api.call(
        "POST",
        "/api/v1/dashboard/import/",
        files={"formData": ("bundle.zip", zip_bytes, "application/zip")},
        data={"overwrite": "true", "passwords": json.dumps(dict.fromkeys(keys, PASSWORD))},
        timeout=300,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("servers", nargs="+", help="VERSION=URL")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--probe-only", action="store_true")
    args = ap.parse_args(argv)
    servers = dict(s.split("=", 1) for s in args.servers)
    out = Path(args.out)
    for version, url in servers.items():
        d = out / version
        d.mkdir(parents=True, exist_ok=True)
        result = {"version": version, "recorded": time.strftime("%Y-%m-%d"), "calls": probe(url)}
        (d / "version_probe.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"{version}: probe recorded", file=sys.stderr)
    if args.probe_only:
        return 0
    exports: dict[str, bytes] = {}
    for version, url in servers.items():
        api = Api(url)
        done = build(api, version)
        exports[version] = export(api, done["dashboard_id"])
        names = write_export(exports[version], out / version / "export")
        (out / version / "build.json").write_text(
            json.dumps({"version": version, "steps": done, "files": names}, indent=2) + "\n"
        )
        print(f"{version}: export recorded ({len(names)} files)", file=sys.stderr)
    for target, url in servers.items():
        api = Api(url)
        for source, bundle in exports.items():
            if source == target:
                continue
            cleanup(api)
            r = import_into(api, bundle)
            name = (
                f"import_422_{source}.json"
                if r.status_code == 422
                else f"import_{source}_{r.status_code}.json"
            )
            for old in (out / target).glob(f"import_*{source}*.json"):
                old.unlink()
            (out / target / name).write_text(json.dumps(answer(r, 20000), indent=2) + "\n")
            print(f"{source} -> {target}: HTTP {r.status_code}", file=sys.stderr)
            if r.status_code == 422:
                retry = import_stripped(api, bundle, r)
                if retry is not None:
                    (
                        out
                        / target
                        / f"import_{source}_unknown_fields_removed_{retry.status_code}.json"
                    ).write_text(json.dumps(answer(retry, 20000), indent=2) + "\n")
                    print(
                        f"  without the unknown fields: HTTP {retry.status_code}", file=sys.stderr
                    )
            cleanup(api)
    return 0


def _unknown(extra: object) -> object:
    if extra == ["Unknown field."]:
        return extra
    if isinstance(extra, dict):
        parts = {k: _unknown(v) for k, v in extra.items()}
        return {k: v for k, v in parts.items() if v} or None
    return None


def _strip(obj: object, problems: dict) -> None:
    for key, v in problems.items():
        if isinstance(obj, list) and key.isdigit() and int(key) < len(obj):
            holder, k = obj, int(key)
        elif isinstance(obj, dict) and key in obj:
            holder, k = obj, key
        else:
            continue
        if v == ["Unknown field."]:
            del holder[k]
        else:
            _strip(holder[k], v)


def import_stripped(api: Api, bundle: bytes, refused: requests.Response):
    """Import again without what the 422 called "Unknown field." (what else is left, e.g.
    5.0's currency "Not a valid string."); None when nothing was unknown or without PyYAML
    (run with the app's .venv/bin/python)."""
    try:
        import yaml
    except ImportError:
        return None
    extra = refused.json()["errors"][0].get("extra", {})
    unknown = {p: _unknown(v) for p, v in extra.items() if p != "issue_codes"}
    unknown = {p: v for p, v in unknown.items() if isinstance(v, dict)}
    if not unknown:
        return None
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(bundle)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            rel = info.filename.split("/", 1)[-1]
            if rel in unknown:
                doc = yaml.safe_load(data)
                _strip(doc, unknown[rel])
                data = yaml.safe_dump(doc, sort_keys=False).encode()
            zout.writestr(info, data)
    cleanup(api)
    return import_into(api, buf.getvalue())


if __name__ == "__main__":
    sys.exit(main())
