#!/usr/bin/env python3
"""Record real Superset 6.1.0 responses into tests/fixtures/superset/*.json.

By default it starts its own throw-away instance "recorder" (fresh state in
$SUPERSET_HOME/recorder, port $SUPERSET_RECORDER_PORT or 8190) with up.sh, so counts and
ids are reproducible and the shared source/target servers are not touched, and stops it
at the end (``--keep`` leaves it running). ``--url URL --wipe`` records against an existing
server instead and EMPTIES it first (all dashboards, charts, datasets, databases).
Also runs scripts/superset/pg_auth.sh (role ``mig_secure`` / ``mig_secret`` on
``mig_public`` with a real password check) and seed.py's PostgreSQL part.

Fixture format (one case per file):
    {"request": {"method", "path", "headers_sent", "body_sent"},
     "status": int,
     "headers": {"Content-Type", "Location", "Set-Cookie" (cookie names only)},
     "body": "<response text>"}
Tokens are replaced by placeholders: <access_token>, <refresh_token>, <csrf_token>,
<session>, <expired_access_token>, <boundary>.

Usage: .venv/bin/python scripts/superset/record_fixtures.py [--keep]
           [--url URL --wipe [--secret-key-file FILE]] [--out tests/fixtures/superset]
Needs only ``requests``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import seed  # noqa: E402
from superset_servers import SupersetAdmin  # noqa: E402

SECURE_URI = "postgresql://mig_secure:mig_secret@127.0.0.1:5432/mig_public"
MASKED_URI = "postgresql://mig_secure:XXXXXXXXXX@127.0.0.1:5432/mig_public"
JSON = "application/json"

# Fixed uuids of the recording bundles ("Sales" with one database, "Ops" with two).
U = {
    k: f"7a1e0000-0000-4000-8000-00000000000{i}"
    for i, k in enumerate(
        [
            "db_analytics",
            "db_warehouse",
            "ds_orders",
            "ds_stock",
            "ch_orders",
            "ch_stock",
            "dash_sales",
            "dash_ops",
        ],
        start=1,
    )
}


def sales_bundle() -> bytes:
    return seed.zip_bundle(
        {
            "metadata.yaml": {
                "version": "1.0.0",
                "type": "Dashboard",
                "timestamp": "2025-01-01T00:00:00+00:00",
            },
            "databases/analytics.yaml": seed.database_yaml(
                "analytics", MASKED_URI, U["db_analytics"]
            ),
            "datasets/analytics/sales_1.yaml": seed.dataset_yaml(U["ds_orders"], U["db_analytics"]),
            "charts/Orders_1.yaml": seed.chart_yaml("Orders", U["ch_orders"], U["ds_orders"]),
            "dashboards/Sales_1.yaml": seed.dashboard_yaml(
                "Sales", "sales", U["dash_sales"], [(U["ch_orders"], "Orders")]
            ),
        },
        root="dashboard_export_20250101T000000",
    )


def ops_bundle() -> bytes:
    return seed.zip_bundle(
        {
            "metadata.yaml": {
                "version": "1.0.0",
                "type": "Dashboard",
                "timestamp": "2025-01-01T00:00:00+00:00",
            },
            "databases/analytics.yaml": seed.database_yaml(
                "analytics", MASKED_URI, U["db_analytics"]
            ),
            "databases/warehouse.yaml": seed.database_yaml(
                "warehouse", MASKED_URI, U["db_warehouse"]
            ),
            "datasets/analytics/sales_2.yaml": seed.dataset_yaml(U["ds_orders"], U["db_analytics"]),
            "datasets/warehouse/sales_3.yaml": seed.dataset_yaml(U["ds_stock"], U["db_warehouse"]),
            "charts/Orders_2.yaml": seed.chart_yaml("Orders", U["ch_orders"], U["ds_orders"]),
            "charts/Stock_3.yaml": seed.chart_yaml("Stock", U["ch_stock"], U["ds_stock"]),
            "dashboards/Ops_2.yaml": seed.dashboard_yaml(
                "Ops", "ops", U["dash_ops"], [(U["ch_orders"], "Orders"), (U["ch_stock"], "Stock")]
            ),
        },
        root="dashboard_export_20250101T000000",
    )


def bulk_bundle(n: int) -> bytes:
    files: dict = {
        "metadata.yaml": {
            "version": "1.0.0",
            "type": "Dashboard",
            "timestamp": "2025-01-01T00:00:00+00:00",
        }
    }
    for i, b in enumerate(seed.bulk_dashboards(n), start=1):
        files[f"dashboards/{b['title'].replace(' ', '_')}_{i}.yaml"] = seed.dashboard_yaml(
            b["title"], b["slug"], b["uuid"]
        )
    return seed.zip_bundle(files, root="bulk")


def expired_jwt(secret_key: str, sub: str = "1") -> str:
    """An HS256 access token signed like flask-jwt-extended's, expired an hour ago."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "fresh": True,
        "iat": now - 7200,
        "jti": "00000000-0000-4000-8000-000000000000",
        "type": "access",
        "sub": sub,
        "nbf": now - 7200,
        "exp": now - 3600,
    }
    signing_input = (
        b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64(json.dumps(claims, separators=(",", ":")).encode())
    )
    sig = hmac.new(secret_key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


class Recorder:
    def __init__(self, url: str, out: Path):
        self.url = url.rstrip("/")
        self.out = out
        self.secrets: dict[str, str] = {}  # real value -> placeholder
        self.written: list[str] = []

    def secret(self, value: str, placeholder: str) -> None:
        self.secrets[value] = placeholder

    def scrub(self, text: str) -> str:
        for value, placeholder in sorted(self.secrets.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(value, placeholder)
        return text

    def call(
        self,
        name: str,
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        expect: int,
        body_sent=None,
        **kw,
    ) -> requests.Response:
        r = requests.request(
            method, self.url + path, headers=headers, allow_redirects=False, timeout=120, **kw
        )
        sent = dict(r.request.headers)
        for k in ("User-Agent", "Accept-Encoding", "Connection", "Content-Length"):
            sent.pop(k, None)
        if "Content-Type" in sent and sent["Content-Type"].startswith("multipart/form-data"):
            sent["Content-Type"] = "multipart/form-data; boundary=<boundary>"
        cookies = (
            [c.split("=", 1)[0].strip() for c in r.raw.headers.getlist("Set-Cookie")]
            if r.raw
            else []
        )
        resp_headers = {k: r.headers[k] for k in ("Content-Type", "Location") if k in r.headers}
        if cookies:
            resp_headers["Set-Cookie"] = ", ".join(cookies)
        fixture = {
            "request": {
                "method": method,
                "path": self.scrub(r.request.path_url),
                "headers_sent": {k: self.scrub(v) for k, v in sent.items()},
            },
            "status": r.status_code,
            "headers": resp_headers,
            "body": r.text,
        }
        if body_sent is not None:
            fixture["request"]["body_sent"] = body_sent
        if r.status_code != expect:
            raise SystemExit(
                f"record_fixtures: {name}: expected {expect}, got {r.status_code}: {r.text[:1500]}"
            )
        self.pending = (name, fixture)
        return r

    def save(self, extra_secrets: dict[str, str] | None = None) -> None:
        name, fixture = self.pending
        for v, p in (extra_secrets or {}).items():
            self.secret(v, p)
        fixture["body"] = self.scrub(fixture["body"])
        fixture["request"]["headers_sent"] = {
            k: self.scrub(v) for k, v in fixture["request"]["headers_sent"].items()
        }
        (self.out / f"{name}.json").write_text(
            json.dumps(fixture, indent=2, ensure_ascii=False) + "\n"
        )
        self.written.append(name)
        print(f"  {name}: {fixture['status']}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    home = Path(os.environ.get("SUPERSET_HOME", REPO / ".superset"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="record against this existing server (needs --wipe)")
    ap.add_argument("--wipe", action="store_true", help="empty the --url server first")
    ap.add_argument("--secret-key-file", help="its SECRET_KEY (default: the instance's)")
    ap.add_argument("--keep", action="store_true", help="leave the recorder instance running")
    ap.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "superset"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    subprocess.run(
        ["bash", str(HERE / "pg_auth.sh"), "mig_secure", "mig_secret", "mig_public"], check=True
    )
    seed.ensure_postgres()  # public.sales in mig_public (the datasets' table)

    own = not args.url
    if own:
        port = os.environ.get("SUPERSET_RECORDER_PORT", "8190")
        args.url = f"http://127.0.0.1:{port}"
        subprocess.run(["bash", str(HERE / "down.sh"), "recorder"], check=True)
        subprocess.run(["rm", "-rf", str(home / "recorder")], check=True)
        subprocess.run(["bash", str(HERE / "up.sh"), f"recorder:{port}"], check=True)
        key_file = args.secret_key_file or str(home / "recorder" / "secret_key")
    else:
        if not args.wipe:
            ap.error("--url needs --wipe: the server is emptied before recording")
        key_file = args.secret_key_file or str(home / "target" / "secret_key")
    secret_key = Path(key_file).read_text().strip()
    try:
        return record(args.url, out, secret_key, wipe=not own)
    finally:
        if own and not args.keep:
            subprocess.run(["bash", str(HERE / "down.sh"), "recorder"], check=False)


def record(url: str, out: Path, secret_key: str, wipe: bool) -> int:
    admin = SupersetAdmin(url)
    if wipe:
        print(f"record_fixtures: emptying {url}: {admin.delete_everything()}", file=sys.stderr)

    rec = Recorder(url, out)
    aj = {"Accept": JSON}

    # --- health, auth
    rec.call("health", "GET", "/health", {}, expect=200)
    rec.save()

    login = {"username": "admin", "password": "admin", "provider": "db", "refresh": True}
    r = rec.call(
        "login_ok", "POST", "/api/v1/security/login", aj, json=login, body_sent=login, expect=200
    )
    access, refresh = r.json()["access_token"], r.json()["refresh_token"]
    rec.save({access: "<access_token>", refresh: "<refresh_token>"})

    bad = dict(login, password="wrong-password")
    rec.call(
        "login_wrong_password",
        "POST",
        "/api/v1/security/login",
        aj,
        json=bad,
        body_sent=bad,
        expect=401,
    )
    rec.save()

    r = rec.call(
        "refresh_ok",
        "POST",
        "/api/v1/security/refresh",
        {**aj, "Authorization": f"Bearer {refresh}"},
        expect=200,
    )
    rec.save({r.json()["access_token"]: "<new_access_token>"})

    bearer = {**aj, "Authorization": f"Bearer {access}"}
    r = rec.call("csrf_token_ok", "GET", "/api/v1/security/csrf_token/", bearer, expect=200)
    csrf, session = r.json()["result"], r.cookies["session"]
    rec.save({csrf: "<csrf_token>", session: "<session>"})
    writes = {**bearer, "X-CSRFToken": csrf, "Cookie": f"session={session}"}

    expired = expired_jwt(secret_key)
    rec.secret(expired, "<expired_access_token>")
    rec.call(
        "expired_token",
        "GET",
        "/api/v1/dashboard/?q=(page_size:1)",
        {**aj, "Authorization": f"Bearer {expired}"},
        expect=401,
    )
    rec.save()

    # --- listing: exactly 105 dashboards ("Bulk 001".."Bulk 105")
    r = requests.post(
        url + "/api/v1/dashboard/import/",
        headers=writes,
        timeout=300,
        files={"formData": ("bulk.zip", bulk_bundle(105), "application/zip")},
        data={"overwrite": "true"},
        allow_redirects=False,
    )
    if r.status_code != 200:
        raise SystemExit(f"record_fixtures: bulk import: {r.status_code} {r.text[:1000]}")
    for page, rows in ((0, 100), (1, 5)):
        q = (
            f"(columns:!(id,uuid,dashboard_title,slug),order_column:dashboard_title,"
            f"order_direction:asc,page:{page},page_size:100)"
        )
        r = rec.call(
            f"dashboard_list_page{page}",
            "GET",
            "/api/v1/dashboard/?q=" + requests.utils.quote(q, safe=""),
            bearer,
            expect=200,
        )
        body = r.json()
        assert body["count"] == 105 and len(body["result"]) == rows, (body["count"], rows)
        rec.save()

    # --- import
    def form(bundle: bytes, passwords: dict | None = None, overwrite: str | None = None):
        data = {"passwords": json.dumps(passwords or {})}
        if overwrite is not None:
            data["overwrite"] = overwrite
        desc = {"formData": "<zip: dashboard bundle>", **data}
        return {
            "files": {"formData": ("bundle.zip", bundle, "application/zip")},
            "data": data,
            "body_sent": desc,
        }

    imp = "/api/v1/dashboard/import/"
    rec.call("import_no_csrf", "POST", imp, bearer, expect=302, **form(sales_bundle()))
    rec.save()
    rec.call(
        "import_accept_any_500",
        "POST",
        imp,
        {**writes, "Accept": "*/*"},
        expect=500,
        **form(sales_bundle()),
    )
    rec.save()
    rec.call("import_422_missing_password", "POST", imp, writes, expect=422, **form(sales_bundle()))
    rec.save()
    rec.call(
        "import_422_missing_two_passwords", "POST", imp, writes, expect=422, **form(ops_bundle())
    )
    rec.save()
    rec.call(
        "import_ok",
        "POST",
        imp,
        writes,
        expect=200,
        **form(sales_bundle(), {"databases/analytics.yaml": "mig_secret"}),
    )
    rec.save()
    rec.call(
        "import_422_already_exists",
        "POST",
        imp,
        writes,
        expect=422,
        **form(sales_bundle(), {"databases/analytics.yaml": "mig_secret"}),
    )
    rec.save()

    # --- export
    rec.call(
        "export_404",
        "GET",
        "/api/v1/dashboard/export/?q=" + requests.utils.quote("!(999999)", safe=""),
        bearer,
        expect=404,
    )
    rec.save()

    # --- test_connection (pg_auth.sh makes PostgreSQL check mig_secure's password)
    tc = "/api/v1/database/test_connection/"
    ok = {"sqlalchemy_uri": SECURE_URI}
    rec.call("test_connection_ok", "POST", tc, writes, json=ok, body_sent=ok, expect=200)
    rec.save()
    wrong = {"sqlalchemy_uri": SECURE_URI.replace("mig_secret", "wrong-password")}
    rec.call(
        "test_connection_wrong_password",
        "POST",
        tc,
        writes,
        json=wrong,
        body_sent=wrong,
        expect=400,
    )
    rec.save()
    rec.call("test_connection_no_csrf", "POST", tc, bearer, json=wrong, body_sent=wrong, expect=400)
    rec.save()

    if wipe:
        print(f"record_fixtures: emptying again: {admin.delete_everything()}", file=sys.stderr)
    print(json.dumps({"url": url, "out": str(out), "fixtures": rec.written}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
