"""Shared set-up of the benchmarks that drive Django in-process.

Import this module first: it points Django at a throw-away DATA_DIR. Then
``with bench_database("name") as vendor:`` gives a migrated database —
SQLite in that DATA_DIR, or, with DATABASE_URL, a PostgreSQL database of its
own that is dropped afterwards (never the configured one, nor a test run's).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migrator.settings")
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bench-")
os.environ["TASKS_EMBEDDED_WORKERS"] = "0"


@contextmanager
def bench_database(prefix: str) -> Iterator[str]:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    # The test client's host; setup_test_environment() would also slow
    # template rendering down (it instruments it), so only this.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    on_url = bool(os.environ.get("DATABASE_URL"))
    configured = connection.settings_dict["NAME"]
    if on_url:
        connection.settings_dict["TEST"]["NAME"] = f"{prefix}_{os.getpid()}"
        connection.creation.create_test_db(verbosity=0, autoclobber=True)
    else:
        call_command("migrate", verbosity=0)
    try:
        yield connection.vendor
    finally:
        if on_url:
            connection.creation.destroy_test_db(configured, verbosity=0)
