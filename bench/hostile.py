"""A hostile or broken Superset at the default limits: how long until the call fails,
and how much memory it takes meanwhile (issue 13). Numbers, not assertions:

    .venv/bin/python bench/hostile.py            # every case
    .venv/bin/python bench/hostile.py --only "3 GB export, chunked"

The stand-in is tests/superset/test_hostile_client.py's ``HostileSuperset`` on loopback.
Each case runs the real client (or bundle reader) with ``Limits()`` (the settings'
defaults; the slow cases with a deadline of ``--deadline`` s instead of 300). Memory is
the Python heap's peak growth (tracemalloc) and the process's peak RSS growth (VmHWM,
reset before each case).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from migrator.superset.bundle import Limits, inspect_bundle
from migrator.superset.client import SupersetClient, cancellable
from tests.superset import test_hostile_client as hostile

MB = 1024 * 1024


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def client(server: hostile.HostileSuperset, deadline: float | None = None) -> SupersetClient:
    limits = Limits() if deadline is None else Limits(call_deadline=deadline)
    return SupersetClient(server.url, "admin", "pw", backoff=0.5, limits=limits)


class Stop(Exception):
    pass


def cases(deadline: float) -> dict[str, tuple[Callable[[hostile.HostileSuperset], None], Callable]]:
    """name -> (set the stand-in up, the call)."""

    def export(server: hostile.HostileSuperset, limit: float | None = None) -> Callable:
        def call() -> None:
            with tempfile.TemporaryFile() as dest:  # as the export step: to disk
                client(server, limit).export_dashboards([1], dest)

        return call

    def cancelled_after_1s(server: hostile.HostileSuperset) -> Callable:
        def call() -> None:
            stop = threading.Event()
            threading.Timer(1.0, stop.set).start()

            def check() -> None:
                if stop.is_set():
                    raise Stop("cancelled 1 s after the call began")

            with cancellable(check), tempfile.TemporaryFile() as dest:
                client(server).export_dashboards([1], dest)

        return call

    return {
        "trickling body (1 byte / 2 s)": (
            lambda s: setattr(s, "export", hostile.trickle(every=2)),
            lambda s: export(s, deadline),
        ),
        "headers a byte at a time": (
            lambda s: setattr(s, "export", hostile.trickle(every=0.5, status_line=True)),
            lambda s: export(s, deadline),
        ),
        "no headers ever": (
            lambda s: setattr(s, "export", hostile.silent),
            lambda s: export(s, deadline),
        ),
        "Cancel during a trickle (deadline 300 s)": (
            lambda s: setattr(s, "export", hostile.trickle(every=2)),
            cancelled_after_1s,
        ),
        "500 MB error body": (
            lambda s: setattr(s, "export", hostile.endless(500, "text/html", 500 * MB)),
            export,
        ),
        "500 MB JSON answer": (
            lambda s: setattr(
                s, "listing", hostile.endless(200, "application/json", 500 * MB, start=b"{")
            ),
            lambda s: client(s).list_dashboards,
        ),
        "3 GB export, chunked": (
            lambda s: setattr(
                s,
                "export",
                hostile.endless(200, "application/zip", 3 * 1024 * MB, start=b"PK\x03\x04"),
            ),
            export,
        ),
        "3 GB export, Content-Length": (
            lambda s: setattr(
                s,
                "export",
                hostile.endless(200, "application/zip", 3 * 1024 * MB, declare=True),
            ),
            export,
        ),
        "non-ZIP body": (
            lambda s: setattr(
                s, "export", hostile.endless(200, "application/zip", 10 * MB, start=b"<html>")
            ),
            export,
        ),
        "NUL in an error": (
            lambda s: setattr(s, "export", hostile.json_answer(500, {"message": "a\x00b"})),
            export,
        ),
        "alias bomb (443 bytes)": (
            lambda s: None,
            lambda s: lambda: inspect_bundle(io.BytesIO(hostile.alias_bomb())),
        ),
        "10,000 database YAMLs": (
            lambda s: None,
            lambda s: lambda: inspect_bundle(io.BytesIO(BIG_BUNDLE)),
        ),
    }


BIG_BUNDLE = hostile.many_databases()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=10.0, help="for the slow cases")
    parser.add_argument("--only", help="run only the case of this name")
    args = parser.parse_args()

    print(f"{'case':<42}{'fails after (s)':>16}{'heap peak (MB)':>16}{'RSS peak (MB)':>15}  error")
    for name, (arrange, make_call) in cases(args.deadline).items():
        if args.only and name != args.only:
            continue
        with hostile.HostileSuperset() as server:
            arrange(server)
            call = make_call(server)
            _reset_peak_rss()
            rss_before = _rss_kb("VmRSS")
            tracemalloc.start()
            started = time.monotonic()
            try:
                call()
                error = "(no error)"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            seconds = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss_peak = (_rss_kb("VmHWM") - rss_before) / 1024
        print(f"{name:<42}{seconds:>16.2f}{peak / MB:>16.2f}{rss_peak:>15.1f}  {error[:160]}")


if __name__ == "__main__":
    main()
