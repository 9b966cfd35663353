"""A hostile or broken Superset against the client and the bundle reader (issue 13).

``HostileSuperset`` is a stand-in on loopback (threads, real sockets) that logs in and
lists like Superset and answers the export (or the listing) as a test says: trickling,
never sending its headers, a 500 MB error, a 3 GB export, NUL bytes, something that is
not a ZIP. Each must end in a clear error within the deadline plus a few seconds, and the
big ones without memory growing (tracemalloc). The migration tasks against the same
stand-in are in tests/migrator/test_hostile_tasks.py; bench/hostile.py measures the big
ones at the default limits.

Timing asserts are generous (the suite runs on a busy 2-core machine): "failed, and
within deadline + SLACK s".
"""

from __future__ import annotations

import io
import json
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from migrator.superset.assets import scan, write_bundle
from migrator.superset.bundle import Limits, inspect_bundle
from migrator.superset.client import SupersetClient, cancellable
from migrator.superset.errors import (
    BundleTooLarge,
    InvalidBundle,
    NotASuperset,
    SupersetAPIError,
    SupersetTimeout,
    YAMLAliasRefused,
)

SLACK = 8.0  # seconds past a deadline that still count as "in time" on a busy machine
MB = 1024 * 1024
ROOT = "dashboard_export_20261129T000000"
CHUNK = b"x" * 65536  # one constant block: the stand-in itself allocates nothing per byte

# --- the stand-in ---------------------------------------------------------------------

Behaviour = Callable[["_Handler"], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: HostileSuperset

    def log_message(self, *args: Any) -> None:
        pass

    def json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.owner.requests.append(f"POST {self.path}")
        if self.path.startswith("/api/v1/security/login"):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.json(200, {"access_token": "a", "refresh_token": "r"})
        else:
            self.owner.upload(self)

    def do_GET(self) -> None:
        self.owner.requests.append(f"GET {self.path.split('?')[0]}")
        if "csrf_token" in self.path:
            self.json(200, {"result": "t"})
        elif self.path.startswith("/api/v1/dashboard/export/"):
            self.owner.export_asked.set()
            self.owner.export(self)
        elif self.path.startswith("/api/v1/dashboard/"):
            self.owner.listing(self)
        else:
            self.json(404, {"message": "Not found"})


class HostileSuperset:
    """A Superset stand-in on 127.0.0.1: ``export`` and ``listing`` say how it answers
    those two; ``sent`` counts the bytes of bodies it streamed."""

    def __init__(self) -> None:
        self.export: Behaviour = zip_answer(bundle({"metadata.yaml": {"type": "Dashboard"}}))
        self.listing: Behaviour = listing_answer("Sales")
        self.upload: Behaviour = swallow
        self.requests: list[str] = []
        self.sent = 0
        self.stop = threading.Event()
        self.export_asked = threading.Event()
        handler = type("Handler", (_Handler,), {"owner": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HostileSuperset:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()  # ends the handlers that trickle or keep silent
        self._server.shutdown()
        self._server.server_close()

    def pause(self, seconds: float) -> bool:
        """Sleep; False once the stand-in is stopping."""
        return not self.stop.wait(seconds)


# --- how it answers ---------------------------------------------------------------------


def zip_answer(data: bytes) -> Behaviour:
    def answer(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/zip")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return answer


def listing_answer(title: str) -> Behaviour:
    def answer(h: _Handler) -> None:
        row = {"id": 1, "uuid": "d-1", "dashboard_title": title, "slug": None}
        h.json(200, {"count": 1, "result": [row]})

    return answer


def json_answer(status: int, body: Any) -> Behaviour:
    return lambda h: h.json(status, body)


def trickle(every: float = 0.5, status_line: bool = False) -> Behaviour:
    """Headers at once (or the status line itself byte by byte), then a byte every ``every`` s."""

    def answer(h: _Handler) -> None:
        try:
            if status_line:
                for byte in b"HTTP/1.1 200 OK\r\n":
                    h.wfile.write(bytes([byte]))
                    if not h.owner.pause(every):
                        return
            h.send_response(200)
            h.send_header("Content-Type", "application/zip")
            h.end_headers()
            for byte in b"PK\x03\x04" + b"z" * 100_000:
                h.wfile.write(bytes([byte]))
                h.owner.sent += 1
                if not h.owner.pause(every):
                    return
        except OSError:
            return

    return answer


def swallow(h: _Handler) -> None:
    """Reads the upload, then says OK."""
    left = int(h.headers.get("Content-Length", 0))
    while left > 0:
        left -= len(h.rfile.read(min(left, 1 << 16)))
    h.json(200, {"message": "OK"})


def silent(h: _Handler) -> None:
    """Reads the request, never answers, keeps the connection open."""
    h.owner.pause(3600)
    h.close_connection = True


def endless(
    status: int, content_type: str, total: int, *, declare: bool = False, start: bytes = b""
) -> Behaviour:
    """``total`` bytes streamed (``start`` first), with or without a Content-Length."""

    def answer(h: _Handler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        if declare:
            h.send_header("Content-Length", str(total))
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        try:
            h.wfile.write(start)
            left = total - len(start)
            while left > 0 and not h.owner.stop.is_set():
                block = CHUNK if left >= len(CHUNK) else CHUNK[:left]
                h.wfile.write(block)
                h.owner.sent += len(block)
                left -= len(block)
        except OSError:
            return

    return answer


# --- bundles ---------------------------------------------------------------------------


def bundle(members: dict[str, Any], root: str = ROOT) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, document in members.items():
            text = document if isinstance(document, str | bytes) else yaml.safe_dump(document)
            archive.writestr(f"{root}/{path}", text)
    return buffer.getvalue()


# 443 bytes that PyYAML's safe_load expands into a billion strings.
ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
database_name: *i
"""


def alias_bomb(folder: str = "databases") -> bytes:
    return bundle(
        {"metadata.yaml": {"version": "1.0.0", "type": "Dashboard"}, f"{folder}/a.yaml": ALIAS_BOMB}
    )


def many_databases(count: int = 10_000) -> bytes:
    members: dict[str, Any] = {"metadata.yaml": {"version": "1.0.0", "type": "Dashboard"}}
    for n in range(count):
        members[f"databases/db_{n}.yaml"] = f"database_name: db{n}\nuuid: u-{n}\n"
    return bundle(members)


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture
def superset() -> Iterator[HostileSuperset]:
    with HostileSuperset() as server:
        yield server


def client_for(
    server: HostileSuperset, *, deadline: float = 3.0, idle: float = 60.0, **limits: Any
) -> SupersetClient:
    return SupersetClient(
        server.url,
        "admin",
        "pw",
        timeout=(2, idle),
        backoff=0,
        limits=Limits(call_deadline=deadline, **limits),
    )


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """``{"seconds", "peak_mb"}`` of the block: wall time and the Python heap's peak
    growth (tracemalloc traces every thread, the stand-in's too)."""
    result: dict[str, float] = {}
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    started = time.monotonic()
    try:
        yield result
    finally:
        result["seconds"] = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["peak_mb"] = (peak - base) / MB


# --- slow servers: one deadline per call ------------------------------------------------


def test_a_trickling_export_fails_at_the_deadline_naming_it(superset) -> None:
    superset.export = trickle(every=0.5)
    client = client_for(superset, deadline=3)
    started = time.monotonic()
    with pytest.raises(SupersetTimeout) as excinfo:
        client.export_dashboards([1], io.BytesIO())
    elapsed = time.monotonic() - started
    assert elapsed < 3 + SLACK
    assert elapsed > 2.5, "the deadline, not an earlier timeout"
    assert "did not finish answering GET /api/v1/dashboard/export/ within 3 s" in str(excinfo.value)
    assert superset.sent > 0, "it did answer, a byte at a time"


def test_headers_sent_a_byte_at_a_time_fail_at_the_deadline(superset) -> None:
    superset.export = trickle(every=0.3, status_line=True)
    started = time.monotonic()
    with pytest.raises(SupersetTimeout, match="within 2 s"):
        client_for(superset, deadline=2).export_dashboards([1], io.BytesIO())
    assert time.monotonic() - started < 2 + SLACK


def test_a_server_that_never_sends_headers_fails_at_the_deadline_without_retrying(
    superset,
) -> None:
    superset.export = silent
    started = time.monotonic()
    with pytest.raises(SupersetTimeout, match="within 2 s, the deadline of one call"):
        client_for(superset, deadline=2).export_dashboards([1], io.BytesIO())
    assert time.monotonic() - started < 2 + SLACK
    assert superset.requests.count("GET /api/v1/dashboard/export/") == 1


def test_the_idle_timeout_names_its_own_seconds_and_is_not_retried(superset) -> None:
    superset.listing = silent
    client = client_for(superset, deadline=60, idle=1.5)
    started = time.monotonic()
    with pytest.raises(SupersetTimeout) as excinfo:
        client.list_dashboards()
    assert time.monotonic() - started < 1.5 + SLACK
    assert "no answer to GET /api/v1/dashboard/ within 1.5 s" in str(excinfo.value)
    assert superset.requests.count("GET /api/v1/dashboard/") == 1, "a timeout is not retried"


def test_the_deadline_is_the_settings_name_when_it_comes_from_settings(superset) -> None:
    superset.export = silent

    class Settings:
        SUPERSET_CALL_DEADLINE = 1.0

    client = SupersetClient(
        superset.url, "a", "pw", backoff=0, limits=Limits.from_settings(Settings)
    )
    with pytest.raises(SupersetTimeout, match=r"within 1 s, .*\(SUPERSET_CALL_DEADLINE\)"):
        client.export_dashboards([1], io.BytesIO())


def test_a_target_that_stops_reading_an_upload_fails_at_the_deadline(superset, tmp_path) -> None:
    superset.upload = silent  # reads neither the bundle nor answers
    path = tmp_path / "big.zip"
    with path.open("wb") as out:
        for _ in range(64):
            out.write(CHUNK * 16)  # 64 MB: more than the socket buffers hold
    started = time.monotonic()
    with pytest.raises(SupersetTimeout, match="POST /api/v1/dashboard/import/ within 2 s"):
        client_for(superset, deadline=2).import_dashboards(path, overwrite=False)
    assert time.monotonic() - started < 2 + SLACK


def test_an_upload_and_its_answer_within_the_deadline_succeed(superset, tmp_path) -> None:
    path = tmp_path / "b.zip"
    path.write_bytes(bundle({"metadata.yaml": {"type": "Dashboard"}}))
    client_for(superset, deadline=5).import_dashboards(path, overwrite=True)
    assert "POST /api/v1/dashboard/import/" in superset.requests


# --- Cancel -------------------------------------------------------------------------------


def test_a_cancel_check_stops_a_call_stuck_on_a_slow_server(superset) -> None:
    superset.export = trickle(every=0.5)
    cancelled = threading.Event()

    class Stop(Exception):
        pass

    def check() -> None:
        if cancelled.is_set():
            raise Stop

    threading.Timer(1.0, cancelled.set).start()
    started = time.monotonic()
    with pytest.raises(Stop), cancellable(check):
        client_for(superset, deadline=120).export_dashboards([1], io.BytesIO())
    assert time.monotonic() - started < 1.0 + SLACK


def test_a_cancel_check_stops_a_call_waiting_for_headers(superset) -> None:
    superset.listing = silent
    checks: list[float] = []

    def check() -> None:
        checks.append(time.monotonic())
        if len(checks) >= 2:
            raise KeyboardInterrupt  # anything the check raises goes through

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), cancellable(check):
        client_for(superset, deadline=120).list_dashboards()
    assert time.monotonic() - started < 2 + SLACK


# --- big answers: read what is kept, no more ----------------------------------------------


def test_a_500_mb_error_body_is_read_only_for_its_start(superset) -> None:
    superset.export = endless(500, "text/html", 500 * MB)
    client = client_for(superset, deadline=30)
    with measured() as cost, pytest.raises(SupersetAPIError) as excinfo:
        client.export_dashboards([1], io.BytesIO())
    assert "failed with HTTP 500" in str(excinfo.value)
    assert cost["seconds"] < 30 + SLACK
    assert cost["peak_mb"] < 50
    assert superset.sent < 100 * MB, "the rest of the body was never asked for"


def test_a_500_mb_json_answer_is_refused(superset) -> None:
    superset.listing = endless(200, "application/json", 500 * MB, start=b'{"result": ["')
    with measured() as cost, pytest.raises(NotASuperset, match="more than 16 MB"):
        client_for(superset, deadline=30).list_dashboards()
    assert cost["peak_mb"] < 50
    assert superset.sent < 100 * MB


def test_a_3_gb_export_is_stopped_at_the_cap_and_nothing_of_it_kept(superset) -> None:
    superset.export = endless(200, "application/zip", 3 * 1024 * MB, start=b"PK\x03\x04")
    dest = io.BytesIO()
    with measured() as cost, pytest.raises(BundleTooLarge) as excinfo:
        client_for(superset, deadline=60, max_bundle_bytes=8 * MB).export_dashboards([1], dest)
    assert "larger than 8 MB" in str(excinfo.value)
    assert len(dest.getvalue()) <= 8 * MB
    assert cost["seconds"] < 60 + SLACK
    assert cost["peak_mb"] < 50 + 8, "the 8 MB written to a BytesIO, and little else"
    assert superset.sent < 100 * MB


def test_a_declared_3_gb_export_is_refused_before_reading_it(superset) -> None:
    superset.export = endless(200, "application/zip", 3 * 1024 * MB, declare=True)
    dest = io.BytesIO()
    with pytest.raises(BundleTooLarge, match="larger than 256 MB"):
        client_for(superset).export_dashboards([1], dest)
    assert dest.getvalue() == b""


# --- broken answers ----------------------------------------------------------------------


def test_a_body_that_is_not_a_zip_is_named(superset) -> None:
    superset.export = endless(200, "application/zip", 100_000, start=b"<html><body>")
    with pytest.raises(InvalidBundle, match=r"not a ZIP file \(it starts with b'<htm'\)"):
        client_for(superset).export_dashboards([1], io.BytesIO())


def test_nul_bytes_in_superset_errors_never_reach_a_message(superset) -> None:
    superset.export = json_answer(500, {"message": "Export\x00failed\x07"})
    with pytest.raises(SupersetAPIError) as excinfo:
        client_for(superset).export_dashboards([1], io.BytesIO())
    assert "Export\ufffdfailed\ufffd" in excinfo.value.message
    assert "\x00" not in excinfo.value.message
    assert "\x00" not in (excinfo.value.body or "")


# --- hostile bundles ---------------------------------------------------------------------


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path) -> None:
    path = tmp_path / "bomb.zip"
    path.write_bytes(alias_bomb())
    with measured() as cost, pytest.raises(YAMLAliasRefused) as excinfo:
        inspect_bundle(path)
    assert "databases/a.yaml in the bundle uses YAML anchors or aliases (&a, line 1)" in str(
        excinfo.value
    )
    assert cost["seconds"] < SLACK
    assert cost["peak_mb"] < 5


def test_an_alias_bomb_in_an_asset_is_refused_by_the_planner_too(tmp_path) -> None:
    path = tmp_path / "bomb.zip"
    path.write_bytes(alias_bomb("dashboards"))
    with pytest.raises(YAMLAliasRefused, match=r"dashboards/a\.yaml"):
        scan(path)


def test_an_anchor_alone_is_refused_too() -> None:
    data = bundle({"databases/a.yaml": "database_name: &n x\nuuid: u\n"})
    with pytest.raises(YAMLAliasRefused, match=r"&n"):
        inspect_bundle(io.BytesIO(data))


@pytest.mark.parametrize(
    "text", ["[" * 100_000 + "]" * 100_000, "{a: " * 100_000 + "1" + "}" * 100_000]
)
def test_yaml_nested_a_hundred_thousand_deep_is_refused_without_crashing(text) -> None:
    # libyaml's composer would recurse until the process dies (a segfault, not an error).
    data = bundle({"charts/a.yaml": text})
    with pytest.raises(InvalidBundle, match=r"charts/a\.yaml in the bundle nests more than 100"):
        scan(io.BytesIO(data))


def test_json_nested_a_hundred_thousand_deep_is_not_superset(superset) -> None:
    deep = ("[" * 100_000 + "]" * 100_000).encode()

    def answer(h: _Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(deep)))
        h.end_headers()
        h.wfile.write(deep)

    superset.listing = answer
    with pytest.raises(NotASuperset, match="not JSON"):
        client_for(superset).list_dashboards()


def test_10000_database_files_are_refused_before_any_is_parsed() -> None:
    data = many_databases()
    started = time.monotonic()
    with pytest.raises(BundleTooLarge) as excinfo:
        inspect_bundle(io.BytesIO(data))
    assert "10,001 files, more than the 5,000 allowed" in str(excinfo.value)
    assert time.monotonic() - started < SLACK
    with pytest.raises(BundleTooLarge):
        scan(io.BytesIO(data))


def test_a_zip_that_lies_about_its_count_is_still_refused() -> None:
    data = bytearray(many_databases(2_000))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (1).to_bytes(2, "little") * 2  # "1 file"
    with pytest.raises(BundleTooLarge, match="2,001 files, more than the 1,000 allowed"):
        inspect_bundle(io.BytesIO(bytes(data)), Limits(max_members=1000))


def test_a_zip_bomb_is_refused_by_its_uncompressed_size() -> None:
    data = bundle({"charts/a.yaml": "x: " + "0" * (20 * MB)})
    assert len(data) < MB
    with pytest.raises(BundleTooLarge, match="add up to 20 MB uncompressed"):
        scan(io.BytesIO(data), Limits(max_bundle_bytes=10 * MB))


def test_a_yaml_file_over_the_limit_is_refused_naming_it() -> None:
    data = bundle({"charts/a.yaml": "x: " + "0" * (2 * MB)})
    with pytest.raises(BundleTooLarge, match=r"charts/a\.yaml in the bundle is larger than 1 MB"):
        scan(io.BytesIO(data), Limits(max_yaml_bytes=MB))


def test_the_bundles_we_write_have_no_aliases_even_for_shared_values() -> None:
    shared = {"a": [1, 2]}
    source = bundle({"charts/c.yaml": {"uuid": "c-1", "slice_name": "C"}})
    out = io.BytesIO()
    write_bundle(
        io.BytesIO(source),
        out,
        "Slice",
        ["charts/c.yaml"],
        lambda p, d: d | {"x": shared, "y": shared},
    )
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
        text = archive.read(f"{ROOT}/charts/c.yaml").decode()
    assert "&id" not in text and "*id" not in text
    assert scan(io.BytesIO(out.getvalue())).assets[0].uuid == "c-1"
