from __future__ import annotations

import pytest

from tests.appserver import AppServer
from tests.e2e.superset_servers import SupersetAdmin, ensure_servers, seed_source


@pytest.fixture(scope="session")
def superset() -> dict:
    """Two real Superset 6.1 servers; the source has "Sales Overview", 105 more, and password-protected ones."""
    urls = ensure_servers()
    seeded = seed_source(urls["source"], count=105, secure=True)
    return {**urls, "seeded": seeded}


@pytest.fixture(scope="session")
def app_server():
    server = AppServer()
    server.prepare()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def api(app_server, superset):
    session = app_server.session()
    for name, url in (("source", superset["source"]), ("target", superset["target"])):
        answer = session.post(
            "/api/environments",
            json={"name": name, "url": url, "username": "admin", "password": "admin"},
        )
        assert answer.status_code == 201, answer.text
    return session


@pytest.fixture
def target_admin(superset) -> SupersetAdmin:
    return SupersetAdmin(superset["target"])


@pytest.fixture
def source_admin(superset) -> SupersetAdmin:
    return SupersetAdmin(superset["source"])
