"""Superset sessions kept between tasks.

A login costs about a third of a second per side (PRODUCT.md, "How fast"), so
a worker keeps logged-in clients and lends them out, one borrower at a time
(``requests.Session`` is not meant to be shared between threads). A client is
keyed by everything that identifies the login, so changing an environment's
credentials or URL never reuses the old session.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from migrator.superset.client import SupersetClient, cancellable
from migrator.superset.errors import SupersetAPIError

_MAX_IDLE_PER_KEY = 4
_lock = threading.Lock()
_idle: dict[tuple, list[SupersetClient]] = {}


def _key(env) -> tuple:
    fingerprint = hashlib.sha256(env.password.encode()).hexdigest()
    return (env.pk, env.url, env.username, env.provider, env.verify_tls, fingerprint)


@contextmanager
def borrow(env, *, writing: bool = False) -> Iterator[SupersetClient]:
    """A logged-in client for ``env``, given back to the pool afterwards. ``writing``:
    one whose session has its CSRF token already, when one is idle (the reads that run
    side by side leave several sessions idle, most never wrote).

    Superset answering "no" (an import refused, a connection test failed, a
    404) leaves the session as good as it was, so the client is kept; any
    other failure (credentials, CSRF, network, a bug) may have broken the
    session, so the client is closed and the next borrower logs in anew.
    """
    key = _key(env)
    with _lock:
        pool = _idle.get(key, [])
        ready = [i for i, c in enumerate(pool) if c.can_write] if writing else []
        client = pool.pop(ready[-1] if ready else -1) if pool else None
    if client is None:
        client = env.client()
    keep = False
    try:
        yield client
        keep = True
    except SupersetAPIError:
        keep = True
        raise
    finally:
        if keep:
            with _lock:
                pool = _idle.setdefault(key, [])
                if len(pool) < _MAX_IDLE_PER_KEY:
                    pool.append(client)
                    client = None
        if client is not None:
            client.close()


def interruptible(step: Callable[[Any], None]) -> Callable[[Any], None]:
    """A task step whose Superset calls stop at a Cancel, even in the middle of a slow
    answer (the client looks at the step context's ``check_cancelled`` about once a
    second): how every step of the migration and rollback kinds is registered."""

    @functools.wraps(step)
    def run(ctx: Any) -> None:
        with cancellable(ctx.check_cancelled):
            step(ctx)

    return run
