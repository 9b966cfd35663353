"""Waking workers when a task is queued, and naming them.

In this process through an event per worker; in other processes through
PostgreSQL's LISTEN/NOTIFY (``worker.NotifyListener`` listens). Below both the
queue, which rings, and the workers, which wait.
"""

from __future__ import annotations

import os
import socket
import threading
import weakref

from django.conf import settings
from django.db import connection
from django.utils.crypto import get_random_string

# One event per worker in this process: a queued task wakes them all, so two
# tasks queued together start together.
_wakeups: weakref.WeakSet[threading.Event] = weakref.WeakSet()
_local = threading.local()
# PostgreSQL channel a queued task is announced on (LISTEN/NOTIFY).
NOTIFY_CHANNEL = "migrator_tasks_queued"


def new_worker_id(prefix: str) -> str:
    return f"{prefix}-{socket.gethostname()[:20]}-{os.getpid()}-{get_random_string(6)}"[:64]


def current_worker_id() -> str:
    return getattr(_local, "worker_id", "") or new_worker_id("inline")


def set_current_worker(worker_id: str) -> None:
    _local.worker_id = worker_id


def listen(event: threading.Event) -> None:
    """``event`` is set whenever this process queues a task."""
    _wakeups.add(event)


def wake_workers() -> None:
    """Tell this process's idle workers that a task was queued."""
    for event in list(_wakeups):
        event.set()


def notify_enabled() -> bool:
    return settings.WORKER_NOTIFY and connection.vendor == "postgresql"


def notify_workers() -> None:
    """Tell workers in other processes that a task was queued.

    Sent inside the caller's transaction: PostgreSQL delivers it at commit,
    when the queued message is visible, and not at all on a rollback.
    """
    if not notify_enabled():
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
