"""Settings from environment variables: strict parsing, documented, deploy-clean.

Most tests run migrator/settings.py afresh with a given environment (fast);
a few start `manage.py` for real, as an operator would.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from tests.processes import run_manage

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "migrator" / "settings.py"
# Everything the test process inherited that settings.py reads.
_OURS = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', SETTINGS.read_text()))


def load(tmp_path: Path, **environ: str) -> dict:
    """Run settings.py with exactly these variables (plus DATA_DIR in tmp_path)."""
    saved = dict(os.environ)
    for name in _OURS:
        os.environ.pop(name, None)
    os.environ["DATA_DIR"] = str(tmp_path / "data")
    os.environ.update(environ)
    try:
        return runpy.run_path(str(SETTINGS))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_defaults_make_the_embedded_mode(tmp_path):
    s = load(tmp_path)
    assert s["DEBUG"] is False
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"].endswith("InMemoryChannelLayer")
    assert (s["WORKER_MODE"], s["WORKER_THREADS"]) == ("thread", 2)
    assert (s["TASK_RETENTION_DAYS"], s["TASK_RETENTION_LIMIT"]) == (30, 100)
    assert (s["TASK_PAGE_SIZE"], s["INPUT_REQUEST_EXPIRY"]) == (10, 7 * 24 * 3600)
    assert s["TASK_HEARTBEAT_TIMEOUT"] == 60
    assert s["GENERATED_SECRETS"] == ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS"]
    # Generated once, then the same on every start.
    assert load(tmp_path)["SECRET_KEY"] == s["SECRET_KEY"]
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600


def test_values_from_the_environment_are_used(tmp_path):
    key = Fernet.generate_key().decode()
    s = load(
        tmp_path,
        SECRET_KEY="k" * 60,
        FIELD_ENCRYPTION_KEYS=f"{key}, {Fernet.generate_key().decode()}",
        DATABASE_URL="postgres://mig:pw@db:5432/mig",
        CHANNEL_LAYER_URL="redis://redis:6379/0",
        ALLOWED_HOSTS="migrator.example.com",
        CSRF_TRUSTED_ORIGINS="https://migrator.example.com",
        TASK_RETENTION_DAYS="7",
        TASK_RETENTION_LIMIT="0",
        WORKER_THREADS="4",
        DEBUG="yes",
        TIME_ZONE="Europe/Paris",
    )
    assert s["GENERATED_SECRETS"] == []
    assert s["FIELD_ENCRYPTION_KEYS"][0] == key
    assert s["DATABASES"]["default"]["HOST"] == "db"
    assert s["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == ["redis://redis:6379/0"]
    assert s["ALLOWED_HOSTS"] == ["migrator.example.com"]
    assert (s["TASK_RETENTION_DAYS"], s["TASK_RETENTION_LIMIT"]) == (7, 0)
    assert (s["WORKER_THREADS"], s["DEBUG"], s["TIME_ZONE"]) == (4, True, "Europe/Paris")


BAD_VALUES = {
    "DEBUG": "maybe",
    "ALLOWED_HOSTS": " , ",
    "CSRF_TRUSTED_ORIGINS": "migrator.example.com",
    "FIELD_ENCRYPTION_KEYS": "not-a-fernet-key",
    "DATABASE_URL": "mysql://user:pw@host/db",
    "CHANNEL_LAYER_URL": "http://redis:6379",
    "WORKER_MODE": "process",
    "WORKER_THREADS": "0",
    "WORKER_POLL_INTERVAL": "soon",
    "WORKER_SHUTDOWN_TIMEOUT": "-1",
    "WORKER_NOTIFY": "sometimes",
    "TASK_HEARTBEAT_INTERVAL": "-1",
    "TASK_HEARTBEAT_TIMEOUT": "2",
    "TASK_MAX_ATTEMPTS": "0",
    "INPUT_REQUEST_EXPIRY": "a week",
    "TASK_RETENTION_DAYS": "-1",
    "TASK_RETENTION_LIMIT": "many",
    "TASK_PAGE_SIZE": "0",
    "API_MAX_LIMIT": "0",
    "SUPERSET_TIMEOUT": "0",
    "SUPERSET_CONNECT_TIMEOUT": "inf",
    "SUPERSET_VERIFY_TLS": "sometimes",
    "SUPERSET_CALL_DEADLINE": "0.5",
    "SUPERSET_MAX_BUNDLE_BYTES": "1GB",
    "SUPERSET_MAX_BUNDLE_MEMBERS": "0",
    "SUPERSET_MAX_YAML_BYTES": "-1",
    "STATIC_MANIFEST": "2",
    "WHITENOISE_USE_FINDERS": "y?",
    "TIME_ZONE": "Mars/Olympus_Mons",
    "LOG_LEVEL": "LOUD",
    "SECURE_COOKIES": "always",
    "SECURE_SSL_REDIRECT": "nope",
    "SECURE_HSTS_SECONDS": "-5",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "all",
    "SECURE_HSTS_PRELOAD": "please",
    "BEHIND_TLS_PROXY": "nginx",
    "DATA_DIR": "/proc/migrator-data",
    "MEDIA_ROOT": "/proc/migrator-files",
    "STATIC_ROOT": "/proc/migrator-static",
}


def test_every_variable_has_a_bad_value_case_here():
    assert set(BAD_VALUES) >= _OURS - {"SECRET_KEY", "SILENCED_SYSTEM_CHECKS"}


@pytest.mark.parametrize(("name", "value"), sorted(BAD_VALUES.items()))
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path, name, value):
    if name not in _OURS:
        pytest.skip(f"settings.py no longer reads {name}")
    with pytest.raises(ImproperlyConfigured, match=rf"\b{name}\b"):
        load(tmp_path, **{name: value})


def test_secrets_are_never_echoed_in_errors(tmp_path):
    with pytest.raises(ImproperlyConfigured) as bad_db:
        load(tmp_path, DATABASE_URL="mysql://user:Hunter2Secret@host/db")
    assert "Hunter2Secret" not in str(bad_db.value)
    with pytest.raises(ImproperlyConfigured) as bad_key:
        load(tmp_path, FIELD_ENCRYPTION_KEYS="Hunter2Secret")
    assert "Hunter2Secret" not in str(bad_key.value)


def test_every_variable_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = sorted(name for name in _OURS if f"`{name}`" not in readme)
    assert missing == []


def _manage(*args: str, **environ: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _OURS}
    return run_manage({**env, **environ}, *args, timeout=60)


def test_manage_py_refuses_to_start_with_a_bad_value(tmp_path):
    result = _manage("check", DATA_DIR=str(tmp_path), WORKER_THREADS="lots")
    assert result.returncode != 0
    assert "WORKER_THREADS='lots' is not a whole number" in result.stderr


def production_environ(data_dir: Path) -> dict[str, str]:
    """The variables README "Production" tells an operator to set."""
    return {
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": "a-long-random-secret-key-for-tests-" + "x" * 40,
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "migrator.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://migrator.example.com",
        "BEHIND_TLS_PROXY": "true",
        "SECURE_COOKIES": "true",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
    }


def test_check_deploy_is_clean_when_configured_for_production(tmp_path):
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **production_environ(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_about_generated_secrets(tmp_path):
    environ = production_environ(tmp_path)
    del environ["SECRET_KEY"], environ["FIELD_ENCRYPTION_KEYS"]
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **environ)
    assert result.returncode != 0
    assert "(migrator.W001) SECRET_KEY is read from the file generated in DATA_DIR" in result.stderr
    assert "(migrator.W001) FIELD_ENCRYPTION_KEYS is read from the file" in result.stderr
