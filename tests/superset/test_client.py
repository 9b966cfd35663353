"""SupersetClient against a mocked Superset answering as 6.1 and 4.1 were observed to."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import zipfile
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from migrator.superset.client import SupersetClient
from migrator.superset.errors import (
    AuthenticationFailed,
    ConnectionTestFailed,
    CSRFRejected,
    ImportRejected,
    NotASuperset,
    SupersetAPIError,
    SupersetTLSError,
    SupersetUnreachable,
)

LOGIN = "/api/v1/security/login"
REFRESH = "/api/v1/security/refresh"
CSRF = "/api/v1/security/csrf_token/"
DASHBOARDS = "/api/v1/dashboard/"
EXPORT = "/api/v1/dashboard/export/"
IMPORT = "/api/v1/dashboard/import/"
DB_IMPORT = "/api/v1/database/import/"
TEST_CONNECTION = "/api/v1/database/test_connection/"

ISSUE_1010 = [
    {
        "code": 1010,
        "message": "Issue 1010 - Superset encountered an error while running a command.",
    }
]
HTML_500 = (
    "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>500</h1></body></html>"
)


def q_of(call: Any) -> str:
    """The rison ``q`` argument of a recorded call, decoded."""
    return parse_qs(urlsplit(call.request.url).query)["q"][0]


def dashboard_rows(first: int, last: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "uuid": f"00000000-0000-0000-0000-{i:012d}",
            "dashboard_title": f"Dashboard {i:03d}",
            "slug": f"d{i}",
        }
        for i in range(first, last + 1)
    ]


def listing(rows: list[dict[str, Any]], count: int) -> dict[str, Any]:
    return {"count": count, "ids": [r["id"] for r in rows], "result": rows}


def multipart_fields(call: Any) -> dict[str, bytes]:
    """Decode a recorded multipart body with the stdlib parser, as a server would."""
    content_type = call.request.headers["Content-Type"]
    raw = call.request.body if isinstance(call.request.body, bytes) else call.request.body.encode()
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


@pytest.fixture
def bundle_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("dashboard_export_x/metadata.yaml", "version: 1.0.0\ntype: Dashboard\n")
    return buffer.getvalue()


# --- URL and repr ---------------------------------------------------------------------


def test_it_normalises_the_url() -> None:
    client = SupersetClient("  https://bi.example.com/superset/ ", "admin", "pw")
    assert client.url == "https://bi.example.com/superset"


@pytest.mark.parametrize(
    "url",
    ["ftp://bi.example.com", "bi.example.com", "http://", "https://admin:pw@bi.example.com"],
)
def test_it_rejects_urls_it_cannot_use(url: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        SupersetClient(url, "admin", "pw")
    assert "pw@" not in str(excinfo.value)


def test_it_keeps_the_password_out_of_its_repr() -> None:
    client = SupersetClient("http://superset.test", "admin", "s3cret-Pa55")
    assert "s3cret" not in repr(client)
    assert "admin" in repr(client)


# --- login ----------------------------------------------------------------------------


def test_it_logs_in_with_json_and_asks_for_a_refresh_token(fake, client, sent) -> None:
    fake.login()
    client.login()
    (call,) = fake.calls_to(LOGIN)
    assert json.loads(call.request.body) == {
        "username": "admin",
        "password": fake.password,
        "provider": "db",
        "refresh": True,
    }
    assert call.request.headers["Accept"] == "application/json"
    assert sent[0]["allow_redirects"] is False


def test_it_reports_a_wrong_password(fake, client) -> None:
    fake.answer("POST", LOGIN, status=401, body={"message": "Not authorized"})
    with pytest.raises(AuthenticationFailed) as excinfo:
        client.login()
    error = excinfo.value
    assert "wrong username or password" in error.message
    assert "Not authorized" in error.message
    assert error.status == 401
    assert fake.password not in error.message
    assert fake.password not in repr(error)


def test_it_reports_a_refused_ldap_provider(fake) -> None:
    fake.answer(
        "POST",
        LOGIN,
        status=400,
        body={"message": {"provider": ["Alternative authentication provider is not allowed"]}},
    )
    client = SupersetClient(fake.url, "admin", fake.password, "ldap", backoff=0)
    with pytest.raises(AuthenticationFailed) as excinfo:
        client.login()
    assert "'ldap'" in excinfo.value.message
    assert "Alternative authentication provider is not allowed" in excinfo.value.message


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (200, "text/html", "<html><head><title>Grafana</title></head></html>"),
        (404, "text/html", "<html><head><title>404 Not Found</title></head></html>"),
        (404, "application/json", '{"message": "Not found"}'),
        (302, "text/html", ""),
        (200, "application/json", '{"status": "ok"}'),
    ],
)
def test_it_recognises_a_url_that_is_not_a_superset(
    fake, client, status: int, content_type: str, body: str
) -> None:
    fake.answer(
        "POST",
        LOGIN,
        status=status,
        body=body,
        content_type=content_type,
        headers={"Location": "https://sso.example.com/"} if status == 302 else None,
    )
    with pytest.raises(NotASuperset) as excinfo:
        client.login()
    assert fake.url in excinfo.value.message


def test_it_reports_a_500_on_login_with_supersets_message(fake, client) -> None:
    fake.answer("POST", LOGIN, status=500, body={"message": "Fatal error"})
    with pytest.raises(SupersetAPIError) as excinfo:
        client.login()
    assert "Fatal error" in excinfo.value.message


def test_it_reports_connection_refused_on_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Closed now: nothing listens on that port.
    client = SupersetClient(f"http://127.0.0.1:{port}", "admin", "pw", retries=1, backoff=0)
    with pytest.raises(SupersetUnreachable) as excinfo:
        client.test_connection()
    assert f"http://127.0.0.1:{port}" in excinfo.value.message
    assert "connection refused" in excinfo.value.message


def test_it_reports_an_unknown_host() -> None:
    client = SupersetClient("http://superset.invalid", "admin", "pw", retries=0)
    with pytest.raises(SupersetUnreachable) as excinfo:
        client.login()
    assert "http://superset.invalid" in excinfo.value.message


def test_it_names_the_timeout_when_superset_does_not_answer(fake) -> None:
    fake.answer("POST", LOGIN, body=requests.exceptions.ConnectTimeout("slow"))
    client = SupersetClient(fake.url, "admin", "pw", timeout=(3, 60), retries=0)
    with pytest.raises(SupersetUnreachable) as excinfo:
        client.login()
    assert "within 3 s" in excinfo.value.message


def test_it_reports_a_tls_failure_without_retrying(fake, client) -> None:
    fake.answer(
        "POST",
        LOGIN,
        body=requests.exceptions.SSLError("certificate verify failed: self-signed certificate"),
    )
    with pytest.raises(SupersetTLSError) as excinfo:
        client.login()
    assert "TLS connection to http://superset.test failed" in excinfo.value.message
    assert "self-signed certificate" in excinfo.value.message
    assert len(fake.calls_to(LOGIN)) == 1


def test_it_tests_a_connection_by_logging_in_and_listing(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 1), 3))
    assert client.test_connection() == {"user": "admin", "dashboard_count": 3}
    (call,) = fake.calls_to(DASHBOARDS)
    assert call.request.headers["Authorization"] == "Bearer access-1"


# --- tokens ---------------------------------------------------------------------------


def test_it_refreshes_an_expired_token_and_retries_the_call(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, status=401, body={"msg": "Token has expired"})
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 2), 2))
    fake.answer("POST", REFRESH, body={"access_token": "access-2"})

    assert [d["id"] for d in client.iter_dashboards()] == [1, 2]

    (refresh,) = fake.calls_to(REFRESH)
    assert refresh.request.headers["Authorization"] == "Bearer refresh-1"
    first, retried = fake.calls_to(DASHBOARDS)
    assert first.request.headers["Authorization"] == "Bearer access-1"
    assert retried.request.headers["Authorization"] == "Bearer access-2"
    assert len(fake.calls_to(LOGIN)) == 1


def test_it_logs_in_again_when_the_refresh_fails(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, status=401, body={"msg": "Token has expired"})
    fake.answer("POST", REFRESH, status=401, body={"msg": "Token has expired"})
    fake.login(access="access-3", refresh="refresh-3")
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 1), 1))

    assert len(client.list_dashboards()) == 1

    assert len(fake.calls_to(LOGIN)) == 2
    assert fake.calls_to(DASHBOARDS)[-1].request.headers["Authorization"] == "Bearer access-3"


def test_it_gives_up_when_a_fresh_login_is_refused_too(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, status=401, body={"msg": "Token has expired"})
    fake.answer("POST", REFRESH, status=401, body={"msg": "Token has expired"})
    fake.answer("POST", LOGIN, status=401, body={"message": "Not authorized"})
    with pytest.raises(AuthenticationFailed):
        client.list_dashboards()
    assert len(fake.calls_to(DASHBOARDS)) == 1


def test_it_logs_in_again_when_superset_cannot_decode_the_token(fake, client) -> None:
    # A Superset restarted with a new SECRET_KEY: flask-jwt-extended answers 422 {"msg"}.
    fake.login()
    fake.answer("GET", DASHBOARDS, status=422, body={"msg": "Signature verification failed"})
    fake.answer("POST", REFRESH, status=422, body={"msg": "Signature verification failed"})
    fake.login(access="access-2")
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 1), 1))
    assert len(client.list_dashboards()) == 1
    assert fake.calls_to(DASHBOARDS)[-1].request.headers["Authorization"] == "Bearer access-2"


# --- CSRF -----------------------------------------------------------------------------


def test_it_sends_the_csrf_token_and_its_cookie_on_writes(fake, client, sent, bundle_bytes) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", IMPORT, body={"message": "OK"})
    client.import_dashboards(io.BytesIO(bundle_bytes), overwrite=False)
    (call,) = fake.calls_to(IMPORT)
    assert call.request.headers["X-CSRFToken"] == "csrf-1"
    assert "session=signed-cookie" in call.request.headers["Cookie"]
    assert [s["allow_redirects"] for s in sent if s["method"] == "POST"] == [False, False]


def test_it_fetches_the_csrf_token_once(fake, client) -> None:
    fake.login()
    fake.csrf()
    fake.answer("DELETE", "/api/v1/database/7", body={"message": "OK"})
    fake.answer("DELETE", "/api/v1/database/8", body={"message": "OK"})
    client.delete_database(7)
    client.delete_database(8)
    assert len(fake.calls_to(CSRF)) == 1


def test_it_treats_an_import_redirected_to_login_as_csrf_rejected(
    fake, client, bundle_bytes
) -> None:
    fake.login()
    fake.csrf()
    fake.answer(
        "POST",
        IMPORT,
        status=302,
        body="<!doctype html><title>Redirecting...</title>",
        content_type="text/html; charset=utf-8",
        headers={"Location": "/login/?next=%2Fapi%2Fv1%2Fdashboard%2Fimport%2F"},
    )
    fake.answer("GET", "/login/", body="<html>login page</html>", content_type="text/html")

    with pytest.raises(CSRFRejected) as excinfo:
        client.import_dashboards(io.BytesIO(bundle_bytes), overwrite=True)

    assert excinfo.value.status == 302
    assert len(fake.calls_to(IMPORT)) == 2, "retried once with a fresh token"
    assert len(fake.calls_to(CSRF)) == 2
    assert fake.calls_to("/login/") == [], "the redirect is never followed"


def test_it_recognises_the_41_redirect_without_next(fake, client, bundle_bytes) -> None:
    fake.login()
    fake.csrf()
    fake.answer(
        "POST",
        IMPORT,
        status=302,
        content_type="text/html",
        headers={"Location": "http://superset.test/login/"},
    )
    with pytest.raises(CSRFRejected):
        client.import_dashboards(io.BytesIO(bundle_bytes), overwrite=True)


def test_it_retries_an_import_once_with_a_fresh_csrf_token(fake, client, bundle_bytes) -> None:
    fake.login()
    fake.csrf("csrf-old")
    fake.csrf("csrf-new")
    fake.answer(
        "POST", IMPORT, status=302, content_type="text/html", headers={"Location": "/login/"}
    )
    fake.answer("POST", IMPORT, body={"message": "OK"})

    client.import_dashboards(io.BytesIO(bundle_bytes), overwrite=True)

    first, second = fake.calls_to(IMPORT)
    assert first.request.headers["X-CSRFToken"] == "csrf-old"
    assert second.request.headers["X-CSRFToken"] == "csrf-new"
    assert multipart_fields(second)["formData"] == bundle_bytes, "the whole file sent again"


def test_it_retries_a_json_write_refused_for_csrf_then_gives_up(fake, client) -> None:
    fake.login()
    fake.csrf()
    missing = {
        "errors": [
            {
                "message": "400 Bad Request: The CSRF token is missing.",
                "error_type": "GENERIC_BACKEND_ERROR",
                "level": "error",
                "extra": {
                    "issue_codes": [
                        {
                            "code": 1011,
                            "message": "Issue 1011 - Superset encountered an unexpected error.",
                        }
                    ]
                },
            }
        ]
    }
    fake.answer("POST", TEST_CONNECTION, status=400, body=missing)
    with pytest.raises(CSRFRejected):
        client.test_database_connection("analytics", "postgresql://u:XXXXXXXXXX@db/analytics")
    assert len(fake.calls_to(TEST_CONNECTION)) == 2


# --- headers and timeouts -------------------------------------------------------------


def test_it_never_sends_accept_any_and_always_a_timeout(fake, bundle_bytes) -> None:
    client = SupersetClient(fake.url, "admin", fake.password, timeout=(4, 90), backoff=0)
    fake.login()
    fake.csrf()
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 1), 1))
    fake.answer(
        "GET",
        EXPORT,
        body=bundle_bytes,
        content_type="application/zip",
        headers={"Content-Disposition": "attachment; filename=dashboard_export_x.zip"},
    )
    fake.answer("POST", IMPORT, body={"message": "OK"})
    fake.answer("POST", DB_IMPORT, body={"message": "OK"})
    fake.answer("POST", TEST_CONNECTION, body={"message": "OK"})
    fake.answer("GET", "/api/v1/database/", body=listing([], 0))
    fake.answer("GET", "/api/v1/database/2/connection", body={"result": {"id": 2}})
    fake.answer("DELETE", "/api/v1/database/2", body={"message": "OK"})

    client.test_connection()
    client.list_dashboards()
    client.get_dashboards([1])
    client.export_dashboards([1], io.BytesIO())
    client.import_dashboards(io.BytesIO(bundle_bytes), overwrite=False)
    client.import_databases(io.BytesIO(bundle_bytes), overwrite=True)
    client.test_database_connection("analytics", "postgresql://u:XXXXXXXXXX@db/analytics")
    client.find_database("b0c8cc23-6c8b-5f51-a672-2c6173d5a2ed")
    client.get_database_connection(2)
    client.delete_database(2)

    assert len(fake.rsps.calls) >= 12
    for call in fake.rsps.calls:
        assert call.request.headers["Accept"] == "application/json", call.request.url
        assert call.request.req_kwargs["timeout"] == (4, 90), call.request.url


def test_it_logs_method_path_and_status_but_no_secrets(fake, client, caplog) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body=listing([], 0))
    with caplog.at_level(logging.DEBUG, logger="migrator.superset"):
        client.list_dashboards(search="secret search")
    text = caplog.text
    assert "POST /api/v1/security/login -> 200" in text
    assert "GET /api/v1/dashboard/ -> 200" in text
    assert fake.password not in text
    assert "secret" not in text


# --- error answers --------------------------------------------------------------------


def test_it_reads_an_html_500_as_a_readable_api_error(fake, client, bundle_bytes) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", IMPORT, status=500, body=HTML_500, content_type="text/html")
    with pytest.raises(SupersetAPIError) as excinfo:
        client.import_dashboards(io.BytesIO(bundle_bytes), overwrite=False)
    error = excinfo.value
    assert error.status == 500
    assert "HTTP 500" in error.message
    assert "500 Internal Server Error" in error.message
    assert "<html" not in error.message
    assert error.body is not None and error.body.startswith("<!DOCTYPE html>")


def test_it_reports_supersets_message_for_an_import_500(fake, client, bundle_bytes) -> None:
    fake.login()
    fake.csrf()
    body = {
        "errors": [
            {
                "message": "Import dashboard failed for an unknown reason",
                "error_type": "GENERIC_COMMAND_ERROR",
                "level": "error",
                "extra": {"issue_codes": ISSUE_1010},
            }
        ]
    }
    fake.answer("POST", IMPORT, status=500, body=body)
    with pytest.raises(SupersetAPIError) as excinfo:
        client.import_dashboards(
            io.BytesIO(bundle_bytes), overwrite=False, passwords={"databases/a.yaml": "wrong-pw"}
        )
    error = excinfo.value
    assert not isinstance(error, ImportRejected)
    assert "Import dashboard failed for an unknown reason" in error.message
    assert error.error_type == "GENERIC_COMMAND_ERROR"
    assert len(fake.calls_to(IMPORT)) == 1


def test_it_truncates_the_body_kept_on_an_error(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, status=404, body="x" * 10_000, content_type="text/plain")
    with pytest.raises(SupersetAPIError) as excinfo:
        client.list_dashboards()
    assert len(excinfo.value.body) == 2048


# --- retries --------------------------------------------------------------------------


def test_it_retries_a_get_on_503_then_succeeds(fake, client, monkeypatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("migrator.superset.client.time.sleep", sleeps.append)
    client.backoff = 0.5
    fake.login()
    fake.answer("GET", DASHBOARDS, status=503, body="busy", content_type="text/plain")
    fake.answer("GET", DASHBOARDS, status=503, body="busy", content_type="text/plain")
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 1), 1))

    assert len(client.list_dashboards()) == 1
    assert len(fake.calls_to(DASHBOARDS)) == 3
    assert sleeps == [0.5, 1.0]


def test_it_stops_retrying_a_get_after_the_configured_retries(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, status=503, body="busy", content_type="text/plain")
    with pytest.raises(SupersetAPIError) as excinfo:
        client.list_dashboards()
    assert excinfo.value.status == 503
    assert len(fake.calls_to(DASHBOARDS)) == 3  # 1 + retries=2


def test_it_does_not_retry_a_get_on_a_4xx(fake, client) -> None:
    fake.login()
    fake.answer("GET", "/api/v1/database/9/connection", status=404, body={"message": "Not found"})
    with pytest.raises(SupersetAPIError):
        client.get_database_connection(9)
    assert len(fake.calls_to("/api/v1/database/9/connection")) == 1


def test_it_retries_a_get_on_a_connection_error(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body=requests.ConnectionError("reset"))
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 1), 1))
    assert len(client.list_dashboards()) == 1


def test_it_does_not_retry_a_post_on_503(fake, client, bundle_bytes) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", IMPORT, status=503, body="busy", content_type="text/plain")
    fake.answer("POST", IMPORT, body={"message": "OK"})
    with pytest.raises(SupersetAPIError) as excinfo:
        client.import_dashboards(io.BytesIO(bundle_bytes), overwrite=False)
    assert excinfo.value.status == 503
    assert len(fake.calls_to(IMPORT)) == 1


# --- listing --------------------------------------------------------------------------


def test_it_pages_through_105_dashboards(fake, client) -> None:
    fake.login()
    rows = dashboard_rows(1, 105)

    def page(request: Any) -> tuple[int, dict[str, str], str]:
        q = parse_qs(urlsplit(request.url).query)["q"][0]
        number = int(re.search(r"page:(\d+)", q).group(1))
        size = int(re.search(r"page_size:(\d+)", q).group(1))
        chunk = rows[number * size : (number + 1) * size]
        return 200, {}, json.dumps(listing(chunk, len(rows)))

    fake.rsps.add_callback(
        "GET", fake.url + DASHBOARDS, callback=page, content_type="application/json"
    )

    found = list(client.iter_dashboards())

    assert [d["id"] for d in found] == list(range(1, 106))
    assert found[0] == {
        "id": 1,
        "uuid": "00000000-0000-0000-0000-000000000001",
        "title": "Dashboard 001",
        "slug": "d1",
    }
    calls = fake.calls_to(DASHBOARDS)
    assert [q_of(c) for c in calls] == [
        "(columns:!(id,uuid,dashboard_title,slug),order_column:dashboard_title,"
        f"order_direction:asc,page:{n},page_size:100)"
        for n in (0, 1)
    ]
    # URL-encoded on the wire: no raw rison punctuation in the query string.
    assert "(" not in urlsplit(calls[0].request.url).query


def test_it_caps_the_page_size_at_100(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 1), 1))
    list(client.iter_dashboards(page_size=1000))
    assert "page_size:100)" in q_of(fake.calls_to(DASHBOARDS)[0])


def test_it_keeps_paging_when_superset_caps_pages_lower(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 50), 60))
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(51, 60), 60))
    assert len(client.list_dashboards()) == 60


def test_it_limits_the_list(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(1, 11), 300))
    found = client.list_dashboards(limit=11)
    assert len(found) == 11
    assert len(fake.calls_to(DASHBOARDS)) == 1
    assert "page_size:11)" in q_of(fake.calls_to(DASHBOARDS)[0])


@pytest.mark.parametrize(
    ("search", "rison_value"),
    [
        ("Sales", "Sales"),
        ("sales 2024", "'sales 2024'"),
        ("2024", "'2024'"),
        ("Bob's !dash", "'Bob!'s !!dash'"),
        ("a(b),c:d", "'a(b),c:d'"),
    ],
)
def test_it_quotes_the_search_text_in_rison(fake, client, search: str, rison_value: str) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body=listing([], 0))
    client.list_dashboards(search=search)
    q = q_of(fake.calls_to(DASHBOARDS)[0])
    assert f"filters:!((col:dashboard_title,opr:title_or_slug,value:{rison_value}))" in q


def test_it_gets_dashboards_by_id_in_the_order_asked(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body=listing(dashboard_rows(2, 3), 2))
    found = client.get_dashboards([3, 99, 2])
    assert [d["id"] for d in found] == [3, 2]
    assert "filters:!((col:id,opr:in,value:!(3,99,2)))" in q_of(fake.calls_to(DASHBOARDS)[0])


def test_it_calls_a_listing_without_the_envelope_not_a_superset(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body="<html><title>App</title></html>", content_type="text/html")
    with pytest.raises(NotASuperset):
        client.list_dashboards()


# --- export ---------------------------------------------------------------------------


def test_it_streams_the_export_into_a_file(fake, client, bundle_bytes, tmp_path) -> None:
    fake.login()
    fake.answer(
        "GET",
        EXPORT,
        body=bundle_bytes,
        content_type="application/zip",
        headers={"Content-Disposition": "attachment; filename=dashboard_export_x.zip"},
    )
    target = tmp_path / "export.zip"
    with target.open("wb") as dest:
        written = client.export_dashboards([1, 2], dest, chunk_size=16)
    assert written == len(bundle_bytes)
    assert target.read_bytes() == bundle_bytes
    (call,) = fake.calls_to(EXPORT)
    assert q_of(call) == "!(1,2)"
    assert call.request.req_kwargs["stream"] is True


def test_it_refuses_an_export_that_is_not_a_zip(fake, client) -> None:
    fake.login()
    fake.answer("GET", EXPORT, body="<html>login</html>", content_type="text/html")
    dest = io.BytesIO()
    with pytest.raises(SupersetAPIError) as excinfo:
        client.export_dashboards([1], dest)
    assert "instead of a ZIP" in excinfo.value.message
    assert dest.getvalue() == b""


def test_it_reports_dashboards_missing_on_the_source(fake, client) -> None:
    fake.login()
    fake.answer("GET", EXPORT, status=404, body={"message": "Not found"})
    with pytest.raises(SupersetAPIError) as excinfo:
        client.export_dashboards([1, 42], io.BytesIO())
    assert excinfo.value.status == 404
    assert "not found on http://superset.test" in excinfo.value.message
    assert "1, 42" in excinfo.value.message


# --- import ---------------------------------------------------------------------------


def test_it_sends_the_import_form_fields(fake, client, make_bundle) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", IMPORT, body={"message": "OK"})
    path = make_bundle({"databases/analytics.yaml": "database_name: analytics\n"})

    client.import_dashboards(path, overwrite=True, passwords={"databases/analytics.yaml": "S3cret"})

    (call,) = fake.calls_to(IMPORT)
    assert call.request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert int(call.request.headers["Content-Length"]) == len(call.request.body)
    fields = multipart_fields(call)
    assert fields["formData"] == path.read_bytes()
    assert fields["overwrite"] == b"true"
    assert json.loads(fields["passwords"]) == {"databases/analytics.yaml": "S3cret"}
    for name in (
        "ssh_tunnel_passwords",
        "ssh_tunnel_private_keys",
        "ssh_tunnel_private_key_passwords",
    ):
        assert fields[name] == b"{}"


def test_it_sends_overwrite_false_in_lower_case(fake, client, bundle_bytes) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", DB_IMPORT, body={"message": "OK"})
    client.import_databases(io.BytesIO(bundle_bytes), overwrite=False)
    assert multipart_fields(fake.calls_to(DB_IMPORT)[0])["overwrite"] == b"false"


def test_it_uploads_from_the_current_position_of_a_file(fake, client, bundle_bytes) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", IMPORT, body={"message": "OK"})
    fileobj = io.BytesIO(b"HEADER" + bundle_bytes)
    fileobj.seek(6)
    client.import_dashboards(fileobj, overwrite=False)
    assert multipart_fields(fake.calls_to(IMPORT)[0])["formData"] == bundle_bytes


class ReadSpy(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(-1 if size is None else size)
        return super().read(size)


def test_it_streams_the_upload_in_chunks(fake, client) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", IMPORT, body={"message": "OK"})
    # responses reads a streamed body at once; the body object still reads the file by parts.
    spy = ReadSpy(b"z" * 300_000)
    body_reads: list[int] = []
    real_request = client.session.request

    def request(method: str, url: str, **kwargs: Any) -> requests.Response:
        data = kwargs.get("data")
        if data is not None and hasattr(data, "read"):
            chunks = []
            while chunk := data.read(65536):
                body_reads.append(len(chunk))
                chunks.append(chunk)
            kwargs["data"] = b"".join(chunks)
        return real_request(method, url, **kwargs)

    client.session.request = request  # type: ignore[method-assign]
    client.import_dashboards(spy, overwrite=False)

    assert -1 not in spy.sizes, "the file is never read whole"
    assert max(spy.sizes) <= 65536
    assert len(body_reads) > 4


@pytest.mark.parametrize(
    ("body", "needs", "others"),
    [
        pytest.param(
            {
                "errors": [
                    {
                        "message": "Error importing dashboard: databases/analytics.yaml: "
                        "{'_schema': ['Must provide a password for the database']}",
                        "error_type": "GENERIC_COMMAND_ERROR",
                        "level": "warning",
                        "extra": {
                            "databases/analytics.yaml": {
                                "_schema": ["Must provide a password for the database"]
                            },
                            "issue_codes": ISSUE_1010,
                        },
                    }
                ]
            },
            [("databases/analytics.yaml", "password")],
            [],
            id="one-database",
        ),
        pytest.param(
            {
                "errors": [
                    {
                        "message": "Error importing dashboard",
                        "error_type": "GENERIC_COMMAND_ERROR",
                        "level": "warning",
                        "extra": {
                            "dashboards/Sales_1.yaml": "Dashboard already exists and "
                            "`overwrite=true` was not passed",
                            "issue_codes": ISSUE_1010,
                        },
                    }
                ]
            },
            [("dashboards/Sales_1.yaml", "overwrite")],
            [],
            id="already-exists-4.1",
        ),
    ],
)
def test_it_raises_import_rejected_with_problems(
    fake, client, bundle_bytes, body: dict[str, Any], needs: list, others: list
) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", IMPORT, status=422, body=body)
    with pytest.raises(ImportRejected) as excinfo:
        client.import_dashboards(io.BytesIO(bundle_bytes), overwrite=False)
    error = excinfo.value
    assert [(n.key, n.kind) for n in error.problems.needs] == needs
    assert error.problems.others == others
    assert error.status == 422
    assert error.error_type == "GENERIC_COMMAND_ERROR"
    assert needs[0][0] in error.message


def test_it_keeps_import_passwords_out_of_the_error(fake, client, bundle_bytes) -> None:
    fake.login()
    fake.csrf()
    # Superset does not echo passwords here; the check guards against one that would.
    body = {"errors": [{"message": "bad value hunter2-pw", "extra": {}}]}
    fake.answer("POST", IMPORT, status=500, body=body)
    with pytest.raises(SupersetAPIError) as excinfo:
        client.import_dashboards(
            io.BytesIO(bundle_bytes),
            overwrite=False,
            passwords={"databases/a.yaml": "hunter2-pw"},
        )
    assert "hunter2-pw" not in excinfo.value.message
    assert "hunter2-pw" not in excinfo.value.body


def test_it_does_not_take_an_html_200_for_a_successful_import(fake, client, bundle_bytes) -> None:
    fake.login()
    fake.csrf()
    fake.answer(
        "POST", IMPORT, body="<html><title>Superset</title></html>", content_type="text/html"
    )
    with pytest.raises(SupersetAPIError):
        client.import_dashboards(io.BytesIO(bundle_bytes), overwrite=False)


# --- databases ------------------------------------------------------------------------


def test_it_finds_a_database_by_uuid(fake, client) -> None:
    fake.login()
    row = {"id": 2, "uuid": "b0c8cc23-6c8b-5f51-a672-2c6173d5a2ed", "database_name": "analytics"}
    fake.answer("GET", "/api/v1/database/", body=listing([row], 1))
    assert client.find_database("b0c8cc23-6c8b-5f51-a672-2c6173d5a2ed") == row
    assert (
        q_of(fake.calls_to("/api/v1/database/")[0])
        == "(filters:!((col:uuid,opr:eq,value:'b0c8cc23-6c8b-5f51-a672-2c6173d5a2ed')))"
    )


def test_it_answers_none_for_an_unknown_database(fake, client) -> None:
    fake.login()
    fake.answer("GET", "/api/v1/database/", body=listing([], 0))
    assert client.find_database("00000000-0000-0000-0000-000000000000") is None


def test_it_reads_a_database_connection(fake, client) -> None:
    fake.login()
    uri = "postgresql://report_user:XXXXXXXXXX@127.0.0.1:5432/analytics"
    fake.answer(
        "GET", "/api/v1/database/2/connection", body={"id": 2, "result": {"sqlalchemy_uri": uri}}
    )
    assert client.get_database_connection(2)["sqlalchemy_uri"] == uri


def test_it_passes_a_connection_test(fake, client) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", TEST_CONNECTION, body={"message": "OK"})
    masked = "postgresql://report_user:XXXXXXXXXX@127.0.0.1:5432/analytics"
    client.test_database_connection("analytics", masked)
    (call,) = fake.calls_to(TEST_CONNECTION)
    assert json.loads(call.request.body) == {"sqlalchemy_uri": masked, "database_name": "analytics"}
    assert call.request.headers["X-CSRFToken"] == "csrf-1"


WRONG_PASSWORD = {
    "errors": [
        {
            "message": 'The password provided for username "report_user" is incorrect.',
            "error_type": "CONNECTION_INVALID_PASSWORD_ERROR",
            "level": "error",
            "extra": {
                "invalid": ["username", "password"],
                "engine_name": "PostgreSQL",
                "issue_codes": [
                    {
                        "code": 1013,
                        "message": "Issue 1013 - The password provided when connecting to a "
                        "database is not valid.",
                    }
                ],
            },
        }
    ]
}


@pytest.mark.parametrize("status", [400, 500], ids=["6.1", "4.1"])
def test_it_fails_a_connection_test_on_any_non_200(fake, client, status: int) -> None:
    fake.login()
    fake.csrf()
    fake.answer("POST", TEST_CONNECTION, status=status, body=WRONG_PASSWORD)
    with pytest.raises(ConnectionTestFailed) as excinfo:
        client.test_database_connection(
            None, "postgresql://report_user:Wr0ngPass@127.0.0.1/analytics"
        )
    error = excinfo.value
    assert error.error_type == "CONNECTION_INVALID_PASSWORD_ERROR"
    assert 'The password provided for username "report_user" is incorrect.' in error.message
    assert error.extra["engine_name"] == "PostgreSQL"
    assert error.status == status
    assert len(fake.calls_to(TEST_CONNECTION)) == 1, "a write is not retried"
    request_body = json.loads(fake.calls_to(TEST_CONNECTION)[0].request.body)
    assert "database_name" not in request_body


def test_it_keeps_a_tested_password_out_of_the_error(fake, client) -> None:
    fake.login()
    fake.csrf()
    # A raw "@" in the password: Superset quotes the rest of it as a host name.
    body = {
        "errors": [
            {
                "message": 'could not translate host name "house!@127.0.0.1" to address',
                "error_type": "GENERIC_DB_ENGINE_ERROR",
                "level": "error",
                "extra": {},
            }
        ]
    }
    fake.answer("POST", TEST_CONNECTION, status=400, body=body)
    with pytest.raises(ConnectionTestFailed) as excinfo:
        client.test_database_connection(
            "warehouse", "postgresql://report_user:w@rehouse!@127.0.0.1/warehouse"
        )
    assert "rehouse!" not in excinfo.value.message
    assert "rehouse!" not in excinfo.value.body
    assert excinfo.value.error_type == "GENERIC_DB_ENGINE_ERROR"


def test_it_deletes_a_database_with_csrf(fake, client) -> None:
    fake.login()
    fake.csrf()
    fake.answer("DELETE", "/api/v1/database/5", body={"message": "OK"})
    client.delete_database(5)
    (call,) = fake.calls_to("/api/v1/database/5")
    assert call.request.headers["X-CSRFToken"] == "csrf-1"


def test_it_closes_its_own_session_but_not_a_callers(fake, monkeypatch) -> None:
    closed: list[str] = []
    with SupersetClient(fake.url, "admin", "pw") as own:
        monkeypatch.setattr(own.session, "close", lambda: closed.append("own"))
    callers = requests.Session()
    monkeypatch.setattr(callers, "close", lambda: closed.append("caller"))
    with SupersetClient(fake.url, "admin", "pw", session=callers):
        pass
    assert closed == ["own"]


def test_it_decodes_quoted_rison_the_way_superset_reads_it(fake, client) -> None:
    fake.login()
    fake.answer("GET", DASHBOARDS, body=listing([], 0))
    client.list_dashboards(search="ünïcode & more")
    query = urlsplit(fake.calls_to(DASHBOARDS)[0].request.url).query
    assert "%20" in query and "+" not in query
    assert "value:'ünïcode & more'" in unquote(query)


# --- release ---------------------------------------------------------------------------

VERSION_FILE = "/static/version_info.json"


@pytest.mark.parametrize("version", ["4.1.4", "5.0.0", "6.0.0", "6.1.0"])
def test_it_reads_the_release_from_the_version_file(fake, client, version) -> None:
    fake.login()
    fake.answer("GET", VERSION_FILE, body={"GIT_SHA": "", "version": version})
    assert client.release() == version


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (404, HTML_500.replace("500", "404"), "text/html"),
        (200, "<html>a proxy's page</html>", "text/html"),
        (200, {"version": "<script>"}, "application/json"),
        (200, {"GIT_SHA": ""}, "application/json"),
    ],
)
def test_a_release_it_cannot_read_is_unknown(fake, client, status, body, content_type) -> None:
    fake.login()
    fake.answer("GET", VERSION_FILE, status=status, body=body, content_type=content_type)
    assert client.release() is None
