from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest

from tests.appserver import AppServer
from tests.e2e.superset_servers import (
    SupersetAdmin,
    ensure_servers,
    ensure_version_server,
    seed_source,
    version_server,
)


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


class VersionEnv(NamedTuple):
    """A Superset server of one release, registered in the app as environment `name`."""

    name: str
    url: str
    admin: SupersetAdmin


@pytest.fixture(scope="session")
def version_env(api) -> Callable[..., VersionEnv]:
    """version_env("5.0") -> (env name, url, SupersetAdmin): the 5.0 test server
    (tests/e2e/superset_servers.VERSION_SERVERS), started and seeded (seed.py --secure) if
    needed and registered in the app under its instance name ("superset50"), once per
    session: later calls return the same VersionEnv (and its logged-in admin).
    version_env("6.1", "target") is the 6.1 target ("target"); the role matters only for
    6.1, whose source and target are two servers."""
    envs: dict[str, VersionEnv] = {}  # server name -> its env

    def get(family: str, role: str = "source") -> VersionEnv:
        server = version_server(family, role)
        if server.name not in envs:
            url = ensure_version_server(family, role)
            names = {e["name"] for e in api.get("/api/environments").json()}
            if server.name not in names:
                answer = api.post(
                    "/api/environments",
                    json={
                        "name": server.name,
                        "url": url,
                        "username": "admin",
                        "password": "admin",
                    },
                )
                assert answer.status_code == 201, answer.text
            envs[server.name] = VersionEnv(server.name, url, SupersetAdmin(url))
        return envs[server.name]

    return get
