"""A mocked Superset for the client tests, answering what SUPERSET_API.md recorded.

Helpers are fixtures (not imports) so the tests run under any pytest import mode.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from migrator.superset.client import SupersetClient

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "superset"
EXPORT_ROOT = "dashboard_export_20261129T044608"


class FakeSuperset:
    url = "http://superset.test"
    password = "s3cret-Pa55"
    session_cookie = "session=signed-cookie; HttpOnly; Path=/; SameSite=Lax"

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.rsps = rsps

    def recorded(self, name: str) -> dict[str, Any] | None:
        """A real answer recorded into tests/fixtures/superset/, when one was recorded."""
        path = FIXTURES / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def answer(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        body: str | dict[str, Any] | bytes | Exception = "",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Register one answer (bodies copied from SUPERSET_API.md); an exception is raised
        by the transport instead."""
        if isinstance(body, dict):
            body = json.dumps(body)
        self.rsps.add(
            method,
            self.url + path,
            body=body,
            status=status,
            content_type=content_type,
            headers=headers or {},
        )

    def replay(self, name: str) -> dict[str, Any]:
        """Answer the recorded request of fixture ``name`` with its recorded answer.

        Skips the test when the fixture has not been recorded.
        """
        saved = self.recorded(name)
        if saved is None:
            pytest.skip(f"tests/fixtures/superset/{name}.json is not recorded")
        headers: dict[str, str] = {}
        if "Location" in saved["headers"]:
            headers["Location"] = saved["headers"]["Location"]
        if "Set-Cookie" in saved["headers"]:
            # Only the cookie's name is recorded.
            headers["Set-Cookie"] = f"{saved['headers']['Set-Cookie']}=<session>; HttpOnly; Path=/"
        self.rsps.add(
            saved["request"]["method"],
            self.url + saved["request"]["path"].split("?")[0],
            body=saved["body"],
            status=saved["status"],
            content_type=saved["headers"].get("Content-Type", "text/plain"),
            headers=headers,
        )
        return saved

    def login(self, access: str = "access-1", refresh: str = "refresh-1") -> None:
        self.answer(
            "POST",
            "/api/v1/security/login",
            body={"access_token": access, "refresh_token": refresh},
        )

    def csrf(self, token: str = "csrf-1") -> None:
        self.answer(
            "GET",
            "/api/v1/security/csrf_token/",
            body={"result": token},
            headers={"Set-Cookie": self.session_cookie},
        )

    def calls_to(self, path: str) -> list[Any]:
        return [c for c in self.rsps.calls if c.request.path_url.split("?")[0] == path]


@pytest.fixture
def fake() -> Iterator[FakeSuperset]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeSuperset(rsps)


@pytest.fixture
def client(fake: FakeSuperset) -> Iterator[SupersetClient]:
    superset = SupersetClient(fake.url, "admin", fake.password, retries=2, backoff=0)
    yield superset
    superset.close()


@pytest.fixture
def sent(client: SupersetClient) -> list[dict[str, Any]]:
    """Every ``session.request`` call of ``client``: method, url and keyword arguments."""
    calls: list[dict[str, Any]] = []
    real = client.session.request

    def request(method: str, url: str, **kwargs: Any) -> Any:
        calls.append({"method": method, "url": url, **kwargs})
        return real(method, url, **kwargs)

    client.session.request = request  # type: ignore[method-assign]
    return calls


DATABASE_YAML = """\
database_name: {name}
sqlalchemy_uri: {uri}
cache_timeout: null
expose_in_sqllab: true
allow_run_async: false
allow_ctas: false
allow_cvas: false
allow_dml: false
allow_file_upload: false
extra:
  allows_virtual_table_explore: true
impersonate_user: false
configuration_method: sqlalchemy_form
uuid: {uuid}
version: 1.0.0
"""

METADATA_YAML = "version: 1.0.0\ntype: {type}\ntimestamp: '2026-11-29T04:46:08.000000+00:00'\n"


@pytest.fixture
def database_yaml() -> Callable[..., str]:
    def build(name: str, uri: str, uuid: str, ssh_tunnel: str = "") -> str:
        return DATABASE_YAML.format(name=name, uri=uri, uuid=uuid) + ssh_tunnel

    return build


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., Path]:
    """Write an export-shaped ZIP: every member under one root folder."""

    def build(
        files: dict[str, str | bytes],
        *,
        root: str | None = EXPORT_ROOT,
        bundle_type: str | None = "Dashboard",
        name: str = "bundle.zip",
    ) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            members = dict(files)
            if bundle_type is not None:
                members = {"metadata.yaml": METADATA_YAML.format(type=bundle_type), **members}
            for member, content in members.items():
                archive.writestr(f"{root}/{member}" if root else member, content)
        return path

    return build
