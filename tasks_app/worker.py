"""Workers that take queued tasks: threads in the web process, or processes.

Both reuse django-tasks-db's ``Worker`` in batch mode (claim with its
locking, run everything ready, return) inside our own loop, which adds what
django-tasks-db lacks: an immediate wake-up when a task is queued (in this
process through an event, from other processes through PostgreSQL's
LISTEN/NOTIFY), reaping tasks whose worker died (by a housekeeping thread,
so busy workers do not delay it), and a clean stop.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections
from django_tasks_db.management.commands.db_worker import Worker

from tasks_app.prompts import expire_input_requests
from tasks_app.reaper import reap_lost_tasks
from tasks_app.wakeup import (
    NOTIFY_CHANNEL,
    listen,
    new_worker_id,
    notify_enabled,
    set_current_worker,
    wake_workers,
)

logger = logging.getLogger("tasks_app.worker")

_embedded_started = False
_embedded_lock = threading.Lock()
# One reaping pass per process per heartbeat interval, whichever thread does it.
_housekeeping_lock = threading.Lock()
_last_housekeeping = 0.0


def housekeeping(*, force: bool = False) -> None:
    """Reap tasks whose worker was lost and expire unanswered input requests, when due."""
    global _last_housekeeping
    with _housekeeping_lock:
        now = time.monotonic()
        if not force and now - _last_housekeeping < settings.TASK_HEARTBEAT_INTERVAL:
            return
        _last_housekeeping = now
    reaped = reap_lost_tasks()
    if reaped:
        logger.warning("Reaped tasks whose worker was lost: %s", reaped)
    expired = expire_input_requests()
    if expired:
        logger.warning("Tasks expired waiting for input: %s", expired)


class Housekeeper(threading.Thread):
    """Runs ``housekeeping`` on a timer, even while every worker is busy with a long task."""

    def __init__(self) -> None:
        super().__init__(name="task-housekeeper", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(settings.TASK_HEARTBEAT_INTERVAL / 2):
            try:
                housekeeping()
            except Exception:
                logger.exception("Housekeeping failed; retrying")
            finally:
                close_old_connections()

    def stop(self) -> None:
        self.stopping.set()


class NotifyListener(threading.Thread):
    """Wakes this process's workers when another process queues a task (PostgreSQL)."""

    def __init__(self) -> None:
        super().__init__(name="task-notify-listener", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            wrapper = connections.create_connection("default")
            try:
                wrapper.ensure_connection()
                raw = wrapper.connection
                raw.autocommit = True
                raw.execute(f"LISTEN {NOTIFY_CHANNEL}")
                # Whatever was queued while we were not listening.
                wake_workers()
                while not self.stopping.is_set():
                    for _ in raw.notifies(timeout=1.0):
                        wake_workers()
            except Exception:
                logger.warning("Task notifications lost; listening again", exc_info=True)
                self.stopping.wait(1.0)
            finally:
                wrapper.close()

    def stop(self) -> None:
        self.stopping.set()


def start_process_threads() -> list[Housekeeper | NotifyListener]:
    """The threads a process with workers needs besides them: housekeeping, notifications."""
    threads: list[Housekeeper | NotifyListener] = [Housekeeper()]
    if notify_enabled():
        threads.append(NotifyListener())
    for thread in threads:
        thread.start()
    return threads


class TaskWorker:
    def __init__(self, worker_id: str, poll_interval: float) -> None:
        self.worker_id = worker_id
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self.wakeup = threading.Event()
        listen(self.wakeup)
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
        self.busy = False
        self._last_reap = 0.0

    def run_once(self) -> None:
        """Reap lost tasks when due, then run every task that is ready."""
        set_current_worker(self.worker_id)
        now = time.monotonic()
        if now - self._last_reap >= settings.TASK_HEARTBEAT_INTERVAL:
            self._last_reap = now
            housekeeping(force=True)
        if self.stopping.is_set():
            return
        self._db_worker.running = True
        self.busy = True
        try:
            self._db_worker.run()
        finally:
            self.busy = False

    def run_forever(self) -> None:
        logger.info("Worker %s started", self.worker_id)
        while not self.stopping.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("Worker %s loop error; retrying", self.worker_id)
                self.stopping.wait(min(self.poll_interval, 1.0))
                continue
            finally:
                close_old_connections()
            if self.wakeup.wait(self.poll_interval):
                self.wakeup.clear()
        logger.info("Worker %s stopped", self.worker_id)

    def stop(self) -> None:
        self.stopping.set()
        self._db_worker.running = False
        self.wakeup.set()


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


def idle_here() -> bool:
    """Is a worker of this process (the embedded mode) idle? A task queued here now is
    then most likely started here, at once."""
    return any(not w.busy and not w.stopping.is_set() for w in _embedded)


_embedded: list[TaskWorker] = []


def start_embedded_workers(count: int) -> list[TaskWorker]:
    start_process_threads()
    workers = []
    for n in range(count):
        worker = TaskWorker(new_worker_id(f"embedded{n}"), settings.WORKER_POLL_INTERVAL)
        thread = threading.Thread(target=worker.run_forever, name=f"task-worker-{n}", daemon=True)
        thread.start()
        workers.append(worker)
    _embedded.extend(workers)
    return workers
