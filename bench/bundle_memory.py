"""Does a worker's memory grow with the size of a bundle? (PRODUCT.md, "How fast")

Runs the migration's real export and import steps (migrator.pipeline) against
a small stand-in Superset on loopback that serves an export ZIP of the chosen
size and swallows the import, and prints the Python heap peak (tracemalloc)
for each size. Numbers, not assertions:

    .venv/bin/python bench/bundle_memory.py --sizes 5 50 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import tracemalloc
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="bench-memory-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migrator.settings")
os.environ["TASKS_EMBEDDED_WORKERS"] = "0"


def make_bundle(path: Path, megabytes: int) -> None:
    """A valid-looking export: metadata, one database, and big chart files (random, incompressible)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        root = "dashboard_export_bench"
        archive.writestr(f"{root}/metadata.yaml", "version: 1.0.0\ntype: Dashboard\n")
        archive.writestr(
            f"{root}/databases/db.yaml",
            "database_name: db\nsqlalchemy_uri: postgresql://u@127.0.0.1/db\nuuid: 00000000-0000-0000-0000-000000000001\n",
        )
        archive.writestr(f"{root}/dashboards/d_1.yaml", "dashboard_title: Big\n")
        for n in range(megabytes):
            archive.writestr(f"{root}/charts/c_{n}.yaml", os.urandom(1024 * 1024))


class FakeSuperset(BaseHTTPRequestHandler):
    bundle: Path
    received = 0

    def log_message(self, *args) -> None:  # quiet
        pass

    def _json(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if "csrf_token" in self.path:
            self.send_header("Set-Cookie", "session=x; Path=/")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        if self.path.startswith("/api/v1/security/login"):
            self.rfile.read(length)
            return self._json({"access_token": "a", "refresh_token": "r"})
        remaining = length
        while remaining:  # swallow the upload in pieces, like a server would
            remaining -= len(self.rfile.read(min(remaining, 1 << 16)))
        FakeSuperset.received = length
        self._json({"message": "OK"})

    def do_GET(self) -> None:
        if "csrf_token" in self.path:
            return self._json({"result": "t"})
        if self.path.startswith("/api/v1/dashboard/export/"):
            size = self.bundle.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with self.bundle.open("rb") as f:
                while chunk := f.read(1 << 16):
                    self.wfile.write(chunk)
            return None
        return self._json(
            {
                "count": 1,
                "result": [{"id": 1, "uuid": "u", "dashboard_title": "Big", "slug": "big"}],
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[5, 50, 200], help="bundle sizes in MB"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from migrator.models import Environment
    from migrator.pipeline import export_step, import_step
    from tasks_app.engine import StepContext
    from tasks_app.models import Task
    from tasks_app.tasklog import TaskLog

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSuperset)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    source = Environment.objects.create(name="fake-src", url=url, username="u", password="p")
    target = Environment.objects.create(name="fake-tgt", url=url, username="u", password="p")

    print(f"{'bundle (MB)':>12}{'heap peak (MB)':>16}{'uploaded (MB)':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            FakeSuperset.bundle = Path(tmp) / f"b{size}.zip"
            make_bundle(FakeSuperset.bundle, size)
            task = Task.objects.create(
                kind="migration",
                params={
                    "source": source.as_ref(),
                    "target": target.as_ref(),
                    "dashboards": [{"id": 1, "title": "Big"}],
                    "overwrite": True,
                },
            )
            ctx = StepContext(task=task, log=TaskLog(task), checkpoint={})
            tracemalloc.start()
            export_step(ctx)
            import_step(ctx)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"{size:>12}{peak / 1e6:>16.2f}{FakeSuperset.received / 1e6:>15.1f}")
            FakeSuperset.bundle.unlink()
    server.shutdown()


if __name__ == "__main__":
    main()
