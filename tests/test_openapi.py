"""The OpenAPI document against the live app: schemathesis finds no 5xx and no
response the document does not describe.

The app runs as `make run` serves it (daphne, embedded workers, SQLite), in
its own process; requests carry a logged-in session and the CSRF header.
Environments point at a stub on this machine that is no Superset (it answers
404 to everything), so no request leaves the machine and every Superset call
fails at once.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.appserver import ApiSession, AppServer

# Also in the postgres stage (scripts/test.sh): 0 × 500 on PostgreSQL too, where text a
# SQLite column takes (a NUL) can be an error.
pytestmark = pytest.mark.postgres_too

# (mode, examples per operation, use the seeded objects' ids): bounded so the
# whole run stays well under a minute.
PASSES = [
    (GenerationMode.POSITIVE, 30, False),
    (GenerationMode.POSITIVE, 30, True),
    (GenerationMode.NEGATIVE, 20, False),
]


def not_a_server_error_of_ours(ctx, response, case):
    """Any 5xx is a bug, except a documented 502: the Superset behind the app
    failed (here: the environment points at a port nobody listens on)."""
    if response.status_code == 502 and "502" in case.operation.responses.status_codes:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_error_of_ours,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class NotASuperset(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"message": "Not found"}')

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def nowhere() -> Iterator[str]:
    stub = ThreadingHTTPServer(("127.0.0.1", 0), NotASuperset)
    thread = threading.Thread(target=stub.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{stub.server_address[1]}"
    stub.shutdown()


@contextmanager
def _database_of_its_own() -> Iterator[dict[str, str]]:
    """On PostgreSQL (the postgres stage), the app server gets a throw-away database;
    on SQLite it has its own file in its DATA_DIR already."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield {}
        return
    import psycopg

    name = f"openapi_{os.getpid()}"
    server = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": urlsplit(url)._replace(path=f"/{name}").geturl()}
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def live(nowhere) -> Iterator[tuple[AppServer, ApiSession]]:
    with _database_of_its_own() as database:
        server = AppServer(
            extra_env={"SUPERSET_CONNECT_TIMEOUT": "1", "SUPERSET_TIMEOUT": "5", **database}
        )
        server.prepare()
        server.start()
        try:
            yield server, server.session()
        finally:
            server.stop()


@pytest.fixture(scope="module")
def schema(live):
    _, session = live
    return schemathesis.openapi.from_dict(session.get("/api/openapi.json").json())


def _keep_local(case, nowhere: str) -> None:
    """A URL the app would accept becomes one of the stub on this machine."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        try:
            URLValidator(schemes=["http", "https"])(body["url"].strip())
        except ValidationError:
            return
        body["url"] = f"{nowhere}/{urlsplit(body['url']).path.strip('/')}"[:500]


def _call(live, schema, label: str, **parts: Any) -> requests.Response:
    """One explicit call, validated against the document like the generated ones."""
    server, session = live
    case = schema.find_operation_by_label(label).Case(**parts)
    response = case.call(base_url=server.url, session=session)
    try:
        case.validate_response(response, checks=CHECKS)
    except Exception as exc:
        raise AssertionError(f"{exc}\n\nserver log:\n{server.log()[-3000:]}") from None
    return response


def test_the_document_is_generated_and_needs_a_login(live):
    server, session = live
    anonymous = requests.get(server.url + "/api/openapi.json", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/accounts/login/")
    doc = session.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "401" in codes, f"{method} {path}"
            if method == "post":
                assert "403" in codes, f"{method} {path}"
            if "{" in path:
                assert "404" in codes, f"{method} {path}"


def test_the_live_api_keeps_to_its_document(live, schema, nowhere):
    server, session = live
    # The happy paths, explicitly, so their 2xx answers are checked too.
    envs = []
    for name in ("nowhere-a", "nowhere-b"):
        body = {"name": name, "url": nowhere, "username": "u", "password": "p"}
        answer = _call(live, schema, "POST /api/environments", body=body)
        assert answer.status_code == 201, answer.text
        envs.append(answer.json()["id"])
    answer = _call(
        live,
        schema,
        "POST /api/migrations",
        body={"source": envs[0], "target": "nowhere-b", "dashboards": [1, 2]},
    )
    assert answer.status_code == 201, answer.text
    task_id = answer.json()["id"]
    assert session.wait_for_status(task_id, {"FAILED"})["error"]  # unreachable: fails fast
    known = {"env_id": envs[0], "task_id": task_id, "source": "nowhere-a", "target": "nowhere-b"}
    for label, parts in [
        ("GET /api/environments", {}),
        ("POST /api/environments/{env_id}/test", {"path_parameters": {"env_id": envs[0]}}),
        ("GET /api/environments/{env_id}/dashboards", {"path_parameters": {"env_id": envs[0]}}),
        ("GET /api/tasks", {"query": {"status": ["FAILED"], "limit": 5}}),
        ("GET /api/tasks/{task_id}", {"path_parameters": {"task_id": task_id}}),
        ("GET /api/tasks/{task_id}/logs", {"path_parameters": {"task_id": task_id}}),
        ("POST /api/tasks/{task_id}/resume", {"path_parameters": known, "body": {}}),
        ("POST /api/tasks/{task_id}/retry", {"path_parameters": {"task_id": task_id}}),
        ("POST /api/tasks/{task_id}/cancel", {"path_parameters": {"task_id": task_id}}),
    ]:
        _call(live, schema, label, **{"path_parameters": {}, **parts})

    # Then what schemathesis makes up, with our session cookie (the document's
    # security scheme) instead of a generated one.
    cookies = {"sessionid": session.cookies["sessionid"]}
    answered: dict[int, int] = {}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        names = set(re.findall(r"{(\w+)}", operation.path))
        for mode, examples, use_known in PASSES:
            if use_known and not names:
                continue
            fixed = {n: known[n] for n in names} if use_known else None
            strategy = operation.as_strategy(
                generation_mode=mode, cookies=cookies, path_parameters=fixed
            )

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def check(case) -> None:
                _keep_local(case, nowhere)
                response = case.call(base_url=server.url, session=session)
                status = response.status_code // 100
                answered[status] = answered.get(status, 0) + 1
                case.validate_response(response, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                continue  # nothing to make invalid: no parameters, no body
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}, known ids: {use_known}):\n{exc}")
    assert not failures, "\n\n".join(failures) + f"\n\nserver log:\n{server.log()[-3000:]}"
    # The session was accepted: these were real answers, not 401s.
    assert answered.get(2, 0) >= 50 and answered.get(4, 0) >= 100, answered
