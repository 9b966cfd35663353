"""Workers that take queued tasks: threads in the web process, or processes.

Both reuse django-tasks-db's ``Worker`` in batch mode (claim with its
locking, run everything ready, return) inside our own loop, which adds what
django-tasks-db lacks: an immediate wake-up when a task is queued in this
process, reaping tasks whose worker died, and a clean stop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

logger = logging.getLogger("tasks_app.worker")

_wakeup = threading.Event()
_local = threading.local()
_embedded_started = False
_embedded_lock = threading.Lock()


def new_worker_id(prefix: str) -> str:
    return f"{prefix}-{socket.gethostname()[:20]}-{os.getpid()}-{get_random_string(6)}"[:64]


def current_worker_id() -> str:
    return getattr(_local, "worker_id", "") or new_worker_id("inline")


def wake_workers() -> None:
    """Tell this process's idle workers that a task was queued."""
    _wakeup.set()


class TaskWorker:
    def __init__(self, worker_id: str, poll_interval: float) -> None:
        self.worker_id = worker_id
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self._db_worker = Worker(
            queue_names=["default"],
            interval=0,
            batch=True,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=worker_id,
            excluded_queue_names=[],
        )
        self._last_reap = 0.0

    def run_once(self) -> None:
        """Reap lost tasks when due, then run every task that is ready."""
        from tasks_app.engine import expire_input_requests, reap_lost_tasks

        _local.worker_id = self.worker_id
        now = time.monotonic()
        if now - self._last_reap >= settings.TASK_HEARTBEAT_INTERVAL:
            self._last_reap = now
            reaped = reap_lost_tasks()
            if reaped:
                logger.warning("Reaped tasks whose worker was lost: %s", reaped)
            expired = expire_input_requests()
            if expired:
                logger.warning("Tasks expired waiting for input: %s", expired)
        self._db_worker.running = True
        self._db_worker.run()

    def run_forever(self) -> None:
        logger.info("Worker %s started", self.worker_id)
        while not self.stopping.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("Worker %s loop error; retrying", self.worker_id)
                time.sleep(self.poll_interval)
            finally:
                close_old_connections()
            if _wakeup.wait(self.poll_interval):
                _wakeup.clear()
        logger.info("Worker %s stopped", self.worker_id)

    def stop(self) -> None:
        self.stopping.set()
        self._db_worker.running = False
        _wakeup.set()


def start_embedded_workers_if_configured() -> None:
    """Called when the ASGI application is built, i.e. only in a serving process."""
    global _embedded_started
    if settings.WORKER_MODE != "thread" or os.environ.get("TASKS_EMBEDDED_WORKERS") == "0":
        return
    with _embedded_lock:
        if _embedded_started:
            return
        _embedded_started = True
    start_embedded_workers(settings.WORKER_THREADS)


def start_embedded_workers(count: int) -> list[TaskWorker]:
    workers = []
    for n in range(count):
        worker = TaskWorker(new_worker_id(f"embedded{n}"), settings.WORKER_POLL_INTERVAL)
        thread = threading.Thread(target=worker.run_forever, name=f"task-worker-{n}", daemon=True)
        thread.start()
        workers.append(worker)
    return workers
