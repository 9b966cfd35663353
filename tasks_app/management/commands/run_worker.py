"""A worker process: runs queued tasks until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from tasks_app.worker import TaskWorker, new_worker_id


class Command(BaseCommand):
    help = "Run queued tasks (use with WORKER_MODE=external). Stops gracefully on SIGTERM."

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

        def stop(signum, frame) -> None:
            self.stdout.write(f"Received {signal.strsignal(signum)}: finishing running tasks…")
            for worker in workers:
                worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        pool = [threading.Thread(target=w.run_forever, name=w.worker_id) for w in workers]
        for thread in pool:
            thread.start()
        self.stdout.write(f"Worker {base} running {threads} thread(s).")
        for thread in pool:
            while thread.is_alive():
                thread.join(timeout=0.5)
        self.stdout.write("Worker stopped.")
