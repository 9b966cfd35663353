from __future__ import annotations

import os
import subprocess

import pytest
from django.contrib.auth.models import User

from tests.processes import app_env, run_manage

# Tests drive workers themselves; importing the ASGI app must not start any.
os.environ.setdefault("TASKS_EMBEDDED_WORKERS", "0")


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "files")},
        },
    }
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def manage(tmp_path):
    """``manage("cmd", "--flag", stdin="…")``: run manage.py in its own process, as an
    operator would, on a fresh SQLite database in ``tmp_path`` (no terminal)."""
    env = app_env(
        str(tmp_path),
        {"DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "TASKS_EMBEDDED_WORKERS": "0"},
    )

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return run_manage(env, *args, input=stdin, timeout=60)

    return run


# Personas shared by the tests: the task owner, another user, staff, and an
# environment manager (not staff; in a group given migrator.manage_environments).
@pytest.fixture
def owner(db) -> User:
    return User.objects.create_user("owner", password="pw-owner-123")


@pytest.fixture
def other_user(db) -> User:
    return User.objects.create_user("other", password="pw-other-123")


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_user(
        "staff", password="pw-staff-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def manager(db) -> User:
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.create(name="Environment managers")
    group.permissions.add(Permission.objects.get(codename="manage_environments"))
    user = User.objects.create_user("manager", password="pw-manager-123")
    user.groups.add(group)
    return user


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def other_client(client, other_user):
    client.force_login(other_user)
    return client


# Markers of tests that need PostgreSQL, and how to run them: on SQLite they are skipped.
NEEDS_POSTGRESQL = {
    "postgres": "needs PostgreSQL: run with DATABASE_URL=postgres://… -m postgres",
    "scale": "scale tests need PostgreSQL: DATABASE_URL=postgres://… pytest -m scale tests/scale",
}


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    for item in items:
        for marker, reason in NEEDS_POSTGRESQL.items():
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
