"""The client against a real HTTP server on loopback: what actually goes over the wire."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from migrator.superset.client import SupersetClient


class FakeSupersetHandler(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def log_message(self, *args: Any) -> None:
        pass

    def _json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/api/v1/security/csrf_token/":
            self._json(
                200, {"result": "csrf-token"}, {"Set-Cookie": "session=abc; HttpOnly; Path=/"}
            )
        else:
            self._json(404, {"message": "Not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.path == "/api/v1/security/login":
            self._json(200, {"access_token": "a", "refresh_token": "r"})
        elif self.path == "/api/v1/dashboard/import/":
            if self.headers.get(
                "X-CSRFToken"
            ) != "csrf-token" or "session=abc" not in self.headers.get("Cookie", ""):
                self.send_response(302)
                self.send_header("Location", "/login/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._json(200, {"message": "OK"})
        else:
            self._json(404, {"message": "Not found"})


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (FakeSupersetHandler,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()


def test_it_uploads_a_multipart_bundle_a_server_can_parse(server, tmp_path: Path) -> None:
    url, received = server
    bundle = tmp_path / "task-7.zip"
    bundle.write_bytes(bytes(range(256)) * 4000)  # ~1 MB, every byte value

    with SupersetClient(url, "admin", "pw", backoff=0) as client:
        client.import_dashboards(
            bundle, overwrite=True, passwords={"databases/analytics.yaml": "S3cret"}
        )

    (upload,) = [r for r in received if r["path"] == "/api/v1/dashboard/import/"]
    headers = upload["headers"]
    assert "Transfer-Encoding" not in headers, "sent with a Content-Length, not chunked"
    assert int(headers["Content-Length"]) == len(upload["body"])
    assert headers["Accept"] == "application/json"
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + upload["body"]
    )
    parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
    assert parts["formData"].get_filename() == "task-7.zip"
    assert parts["formData"].get_payload(decode=True) == bundle.read_bytes()
    assert parts["overwrite"].get_payload(decode=True) == b"true"
    assert json.loads(parts["passwords"].get_payload(decode=True)) == {
        "databases/analytics.yaml": "S3cret"
    }
