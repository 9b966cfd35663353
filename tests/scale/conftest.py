"""Fixtures of the scale-out tests: a cluster of real processes on PostgreSQL and Redis.

Run them with ``scripts/test.sh`` (its scale stage) or by hand:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/migrator_scale \\
    SCALE_REDIS_URL=redis://127.0.0.1:6379/5 \\
    .venv/bin/python -m pytest -m scale tests/scale

pytest-django creates (and re-creates) the test database ``test_<name>``; the
processes started here use it too, and each test's flush resets it. The test
process reads and writes the same database through the ORM, like one more
machine of the deployment. On SQLite the scale tests are skipped (tests/conftest.py).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings

from tests.appserver import ADMIN, USER
from tests.cluster import Cluster

REDIS_URL = os.environ.get("SCALE_REDIS_URL", "redis://127.0.0.1:6379/5")
# Fast failure detection for the tests (production defaults: 5 s / 60 s).
FAST_HEARTBEAT = {"TASK_HEARTBEAT_INTERVAL": "0.5", "TASK_HEARTBEAT_TIMEOUT": "3"}


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{quote(db['NAME'], safe='')}"


@pytest.fixture
def users(transactional_db, settings) -> None:
    """The personas, hashed as the server processes check them (not the tests' MD5)."""
    from django.contrib.auth.models import User

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    User.objects.create_superuser(ADMIN[0], "", ADMIN[1])
    User.objects.create_user(USER[0], "", USER[1])


def make_cluster(env: dict[str, str] | None = None, redis_url: str = REDIS_URL) -> Cluster:
    return Cluster(
        database_url=_database_url(),
        channel_layer_url=redis_url,
        data_dir=tempfile.mkdtemp(prefix="migrator-scale-"),
        env={
            # What every machine of a deployment must share (README, "Scaling out").
            "SECRET_KEY": django_settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEYS": ",".join(django_settings.FIELD_ENCRYPTION_KEYS),
            "WORKER_POLL_INTERVAL": "1",
            **FAST_HEARTBEAT,
            **(env or {}),
        },
    )


@pytest.fixture
def cluster_factory(users, request) -> Iterator:
    """Make clusters (usually one per test); every process is stopped afterwards,
    before the test database is flushed."""
    made: list[Cluster] = []

    def make(env: dict[str, str] | None = None, redis_url: str = REDIS_URL) -> Cluster:
        cluster = make_cluster(env, redis_url)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for cluster in made:
            for proc in cluster.procs:
                print(f"\n===== {proc.name} =====\n{proc.log()[-6000:]}")


@pytest.fixture
def cluster(cluster_factory) -> Cluster:
    return cluster_factory()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


@pytest.fixture(scope="session")
def superset() -> dict:
    """The two real Superset servers of the e2e tests (source seeded, secure dashboards too)."""
    from tests.e2e.superset_servers import ensure_servers, seed_source

    urls = ensure_servers()
    seeded = seed_source(urls["source"], count=0, secure=True)
    return {**urls, "seeded": seeded}


def add_environments(session, superset: dict, **extra: str) -> None:
    """Register source and target (and ``name=url`` extras) through the API."""
    for name, url in {"source": superset["source"], "target": superset["target"], **extra}.items():
        answer = session.post(
            "/api/environments",
            json={"name": name, "url": url, "username": "admin", "password": "admin"},
        )
        assert answer.status_code == 201, answer.text


def start_migration(session, source_dashboard_id: int, target: str = "target") -> int:
    answer = session.post(
        "/api/migrations",
        json={
            "source": "source",
            "target": target,
            "dashboards": [source_dashboard_id],
            "overwrite": True,
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]
