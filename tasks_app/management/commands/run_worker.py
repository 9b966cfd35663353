"""A worker process: runs queued tasks until SIGTERM/SIGINT.

On SIGTERM the running tasks may finish for WORKER_SHUTDOWN_TIMEOUT seconds
(nothing new is taken meanwhile); past that, or on a second signal, the
worker hands its tasks back (requeued when their step is safe to repeat,
failed otherwise) and exits. A ``kill -9`` skips all this: the heartbeat
reaper of the other workers does the same after TASK_HEARTBEAT_TIMEOUT.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from tasks_app import engine, live
from tasks_app.worker import TaskWorker, new_worker_id, start_process_threads


class Command(BaseCommand):
    help = (
        "Run queued tasks (use with WORKER_MODE=external). Stops gracefully on SIGTERM, "
        "waiting up to WORKER_SHUTDOWN_TIMEOUT for running tasks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--threads", type=int, default=1, help="tasks run at once (default 1)")
        parser.add_argument("--worker-id", default="", help="defaults to host-pid-random")

    def handle(self, *args, threads: int, worker_id: str, **options) -> None:
        if threads < 1:
            self.stderr.write("--threads must be at least 1")
            raise SystemExit(2)
        base = worker_id or new_worker_id("worker")
        workers = [
            TaskWorker(f"{base}-{n}"[:64] if threads > 1 else base, settings.WORKER_POLL_INTERVAL)
            for n in range(threads)
        ]
        signals: list[float] = []  # when each stop signal arrived

        def stop(signum, frame) -> None:
            signals.append(time.monotonic())
            if len(signals) == 1:
                self.stdout.write(
                    f"Received {signal.strsignal(signum)}: finishing running tasks "
                    f"(at most {settings.WORKER_SHUTDOWN_TIMEOUT:g} s)…"
                )
            for worker in workers:
                worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        helpers = start_process_threads()
        pool = [
            threading.Thread(target=w.run_forever, name=w.worker_id, daemon=True) for w in workers
        ]
        for thread in pool:
            thread.start()
        self.stdout.write(f"Worker {base} running {threads} thread(s).")
        while any(thread.is_alive() for thread in pool):
            time.sleep(0.1)
            if (
                signals
                and any(w.busy for w in workers)
                and (
                    len(signals) > 1
                    or time.monotonic() - signals[0] >= settings.WORKER_SHUTDOWN_TIMEOUT
                )
            ):
                self._give_up([w.worker_id for w in workers])
        for helper in helpers:
            helper.stop()
        live.flush()
        self.stdout.write("Worker stopped.")

    def _give_up(self, worker_ids: list[str]) -> None:
        """Out of time: hand the running tasks back and leave at once."""
        released = engine.release_tasks(worker_ids)
        self.stdout.write(
            "Shutdown timeout: handed back task(s) "
            + (", ".join(f"#{pk}" for pk in released) or "none")
            + "; exiting."
        )
        live.flush()
        self.stdout.flush()
        # The task threads are still inside their steps: end the process
        # without waiting for them (they own nothing any more).
        os._exit(1)
