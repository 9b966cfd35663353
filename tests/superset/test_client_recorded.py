"""The client replaying real Superset 6.1.0 answers from tests/fixtures/superset/.

Each test skips when its fixture has not been recorded (see that folder's README.md).
"""

from __future__ import annotations

import io
import json
import zipfile
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import pytest

from migrator.superset.errors import (
    AuthenticationFailed,
    ConnectionTestFailed,
    CSRFRejected,
    ImportRejected,
    SupersetAPIError,
)
from migrator.superset.problems import InputNeed

DASHBOARDS = "/api/v1/dashboard/"
IMPORT = "/api/v1/dashboard/import/"
TEST_CONNECTION = "/api/v1/database/test_connection/"
MASKED_URI = "postgresql://mig_secure:XXXXXXXXXX@127.0.0.1:5432/mig_public"


@pytest.fixture
def bundle() -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("dashboard_export_x/metadata.yaml", "version: 1.0.0\ntype: Dashboard\n")
    buffer.seek(0)
    return buffer


@pytest.fixture
def logged_in(fake, client):
    fake.replay("login_ok")
    fake.replay("csrf_token_ok")
    return client


def assert_headers_like(call: Any, recorded: dict[str, Any]) -> None:
    """Our request carries every header the recorded (working) request carried."""
    sent = call.request.headers
    for name, value in recorded["request"]["headers_sent"].items():
        assert name in sent, name
        if "<" not in value:
            assert sent[name] == value, name
        elif value.startswith("Bearer "):
            assert sent[name].startswith("Bearer "), name


def multipart_fields(call: Any) -> dict[str, bytes]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {call.request.headers['Content-Type']}\r\n\r\n".encode() + call.request.body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


def test_it_logs_in_as_recorded(fake, client) -> None:
    saved = fake.replay("login_ok")
    client.login()
    (call,) = fake.calls_to("/api/v1/security/login")
    assert set(json.loads(call.request.body)) == set(saved["request"]["body_sent"])
    assert_headers_like(call, saved)
    assert client._access_token == "<access_token>"


def test_it_reports_the_recorded_wrong_password(fake, client) -> None:
    fake.replay("login_wrong_password")
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        client.login()


def test_it_pages_the_recorded_105_dashboards(fake, client) -> None:
    fake.replay("login_ok")
    pages = [fake.replay("dashboard_list_page0"), fake.replay("dashboard_list_page1")]

    found = client.list_dashboards()

    assert len(found) == 105
    assert found[0]["title"] == "Bulk 001"
    assert found[-1]["title"] == "Bulk 105"
    assert set(found[0]) == {"id", "uuid", "title", "slug"}
    calls = fake.calls_to(DASHBOARDS)
    assert [c.request.path_url for c in calls] == [p["request"]["path"] for p in pages]
    for call, page in zip(calls, pages, strict=True):
        assert_headers_like(call, page)


def test_it_refreshes_the_recorded_expired_token(fake, client) -> None:
    fake.replay("login_ok")
    fake.replay("expired_token")
    fake.replay("refresh_ok")
    fake.replay("dashboard_list_page0")
    fake.replay("dashboard_list_page1")

    assert len(client.list_dashboards()) == 105

    (refresh,) = fake.calls_to("/api/v1/security/refresh")
    assert refresh.request.headers["Authorization"] == "Bearer <refresh_token>"
    calls = fake.calls_to(DASHBOARDS)
    assert calls[0].request.headers["Authorization"] == "Bearer <access_token>"
    assert calls[1].request.headers["Authorization"] == "Bearer <new_access_token>"


def test_it_reports_the_recorded_export_404(fake, client) -> None:
    fake.replay("login_ok")
    saved = fake.replay("export_404")
    with pytest.raises(SupersetAPIError) as excinfo:
        client.export_dashboards([999999], io.BytesIO())
    assert excinfo.value.status == 404
    assert "999999: at least one was not found on http://superset.test" in excinfo.value.message
    (call,) = fake.calls_to("/api/v1/dashboard/export/")
    assert call.request.path_url == saved["request"]["path"]


def test_it_imports_as_recorded(fake, logged_in, bundle) -> None:
    saved = fake.replay("import_ok")
    passwords = json.loads(saved["request"]["body_sent"]["passwords"])

    logged_in.import_dashboards(bundle, overwrite=False, passwords=passwords)

    (call,) = fake.calls_to(IMPORT)
    assert_headers_like(call, saved)
    assert "session=<session>" in call.request.headers["Cookie"]
    fields = multipart_fields(call)
    assert fields["formData"] == bundle.getvalue()
    assert json.loads(fields["passwords"]) == passwords


@pytest.mark.parametrize(
    ("fixture", "needs"),
    [
        ("import_422_missing_password", [InputNeed("databases/analytics.yaml", "password")]),
        (
            "import_422_missing_two_passwords",
            [
                InputNeed("databases/analytics.yaml", "password"),
                InputNeed("databases/warehouse.yaml", "password"),
            ],
        ),
        ("import_422_already_exists", [InputNeed("dashboards/Sales_1.yaml", "overwrite")]),
    ],
)
def test_it_classifies_the_recorded_import_422s(
    fake, logged_in, bundle, fixture: str, needs: list[InputNeed]
) -> None:
    fake.replay(fixture)
    with pytest.raises(ImportRejected) as excinfo:
        logged_in.import_dashboards(bundle, overwrite=False)
    problems = excinfo.value.problems
    assert problems.needs == needs
    assert problems.others == []
    assert problems.fixable_by_input


def test_it_reads_the_recorded_html_500_readably(fake, logged_in, bundle) -> None:
    fake.replay("import_accept_any_500")
    with pytest.raises(SupersetAPIError) as excinfo:
        logged_in.import_dashboards(bundle, overwrite=False)
    message = excinfo.value.message
    assert "HTTP 500" in message
    assert "500: Internal server error | Superset" in message
    assert "<" not in message


def test_it_stops_at_the_recorded_csrf_redirect(fake, logged_in, bundle) -> None:
    fake.replay("import_no_csrf")
    fake.replay("csrf_token_ok")
    with pytest.raises(CSRFRejected):
        logged_in.import_dashboards(bundle, overwrite=False)
    assert len(fake.calls_to(IMPORT)) == 2


def test_it_passes_the_recorded_connection_test(fake, logged_in) -> None:
    saved = fake.replay("test_connection_ok")
    logged_in.test_database_connection("mig_public", MASKED_URI)
    (call,) = fake.calls_to(TEST_CONNECTION)
    assert_headers_like(call, saved)


def test_it_fails_the_recorded_wrong_password_connection_test(fake, logged_in) -> None:
    fake.replay("test_connection_wrong_password")
    uri = "postgresql://mig_secure:wrong-password@127.0.0.1:5432/mig_public"
    with pytest.raises(ConnectionTestFailed) as excinfo:
        logged_in.test_database_connection(None, uri)
    error = excinfo.value
    assert error.status == 400
    assert error.error_type == "CONNECTION_INVALID_PASSWORD_ERROR"
    assert 'The password provided for username "mig_secure" is incorrect.' in error.message
    assert "wrong-password" not in error.message


def test_it_gives_up_after_the_recorded_csrf_refusal(fake, logged_in) -> None:
    fake.replay("test_connection_no_csrf")
    fake.replay("csrf_token_ok")
    with pytest.raises(CSRFRejected):
        logged_in.test_database_connection("mig_public", MASKED_URI)
    assert len(fake.calls_to(TEST_CONNECTION)) == 2
