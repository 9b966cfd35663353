"""Settings for Superset Migrator: one module, driven by environment variables.

Defaults give the embedded mode (SQLite, in-memory channel layer, worker
threads inside the web process). Every variable is documented in the README
("Configuration"); a bad value stops start-up naming the variable.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from migrator.env import Env, database_from_url, directory

env = Env()
BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = directory("DATA_DIR", env.str("DATA_DIR", str(BASE_DIR / "data")))

# Names of the secrets read from files generated in DATA_DIR instead of the
# environment: fine on a laptop, a deploy-check warning in production
# (migrator/checks.py).
GENERATED_SECRETS: list[str] = []


def _generated_secret(setting: str, filename: str, make) -> str:
    """A secret generated once into DATA_DIR and kept there.

    Convenient on a laptop; production sets the variable instead (README,
    "Configuration").
    """
    GENERATED_SECRETS.append(setting)
    path = DATA_DIR / filename
    if not path.exists():
        # Written aside, then linked into place: several processes starting
        # together on a fresh DATA_DIR all end up with the first one's secret.
        fd, tmp = tempfile.mkstemp(dir=DATA_DIR, prefix=f".{filename}.")
        with os.fdopen(fd, "w") as f:
            f.write(make())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", False)
SECRET_KEY = env.str("SECRET_KEY") or _generated_secret(
    "SECRET_KEY", "secret_key", lambda: secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"], required=True)
CSRF_TRUSTED_ORIGINS = env.origins("CSRF_TRUSTED_ORIGINS", [])

# Fernet keys for credentials at rest: the first encrypts, all decrypt (rotation).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", []) or [
    _generated_secret(
        "FIELD_ENCRYPTION_KEYS", "field_encryption_key", lambda: Fernet.generate_key().decode()
    )
]
for _number, _key in enumerate(FIELD_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key.encode())
    except ValueError:
        # Never echo the value: it is a secret, even when malformed.
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS: key {_number} is not a Fernet key (32 url-safe "
            'base64-encoded bytes); make one with: python -c "from cryptography.fernet '
            'import Fernet; print(Fernet.generate_key().decode())"'
        ) from None

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    # Serves Swagger UI at /api/docs from its bundled copy, not from a CDN.
    "ninja",
    "django_tasks_db",
    "tasks_app",
    "migrator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "migrator.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "migrator.urls"
ASGI_APPLICATION = "migrator.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tasks_app.context_processors.awaiting_input",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        "DATABASE_URL",
        env.str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        BASE_DIR,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Background work: django.tasks on the database queue (django-tasks-db).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# "thread": worker threads inside the web process (embedded default);
# "external": run `manage.py run_worker` processes instead.
WORKER_MODE = env.choice("WORKER_MODE", "thread", ("thread", "external"))
WORKER_THREADS = env.int("WORKER_THREADS", 2, minimum=1, maximum=32)
WORKER_POLL_INTERVAL = env.float("WORKER_POLL_INTERVAL", 1.0, minimum=0.05)
TASK_HEARTBEAT_INTERVAL = env.float("TASK_HEARTBEAT_INTERVAL", 5.0, minimum=0.1)
TASK_HEARTBEAT_TIMEOUT = env.float("TASK_HEARTBEAT_TIMEOUT", 60.0, minimum=1.0)
# A task whose worker keeps dying (a bundle that crashes it, say) is requeued
# at most this many runs in all, then fails instead of looping forever.
TASK_MAX_ATTEMPTS = env.int("TASK_MAX_ATTEMPTS", 3, minimum=1, maximum=100)
if TASK_HEARTBEAT_TIMEOUT <= TASK_HEARTBEAT_INTERVAL:
    raise ImproperlyConfigured(
        "TASK_HEARTBEAT_TIMEOUT must be longer than TASK_HEARTBEAT_INTERVAL."
    )
# SIGTERM lets a worker's running tasks finish for this long; past it the
# worker hands them back (requeued, or failed when the step is not repeatable).
WORKER_SHUTDOWN_TIMEOUT = env.float("WORKER_SHUTDOWN_TIMEOUT", 30.0, minimum=0.0)
# On PostgreSQL, a queued task wakes idle workers in every process at once
# (LISTEN/NOTIFY) instead of at their next poll.
WORKER_NOTIFY = env.bool("WORKER_NOTIFY", True)

# How long a task waits for a person's answer before it expires (seconds).
INPUT_REQUEST_EXPIRY = env.int("INPUT_REQUEST_EXPIRY", 7 * 24 * 3600, minimum=60)
# `manage.py purge_tasks`: keep tasks finished within this many days, and at
# most this many tasks in all; 0 turns that rule off.
TASK_RETENTION_DAYS = env.int("TASK_RETENTION_DAYS", 30, minimum=0, maximum=36500)
TASK_RETENTION_LIMIT = env.int("TASK_RETENTION_LIMIT", 100, minimum=0)
TASK_PAGE_SIZE = env.int("TASK_PAGE_SIZE", 10, minimum=1, maximum=500)
API_MAX_LIMIT = env.int("API_MAX_LIMIT", 500, minimum=1)

# Superset calls
SUPERSET_TIMEOUT = env.float("SUPERSET_TIMEOUT", 120.0, minimum=1.0)
SUPERSET_CONNECT_TIMEOUT = env.float("SUPERSET_CONNECT_TIMEOUT", 5.0, minimum=0.5)
SUPERSET_VERIFY_TLS = env.bool("SUPERSET_VERIFY_TLS", True)
# What a Superset may make us do (migrator.superset.bundle.Limits): one call ends within
# the deadline whatever the server does; a bundle (an export on its way, too) past a
# limit is refused before it is parsed.
SUPERSET_CALL_DEADLINE = env.float("SUPERSET_CALL_DEADLINE", 300.0, minimum=1.0)
SUPERSET_MAX_BUNDLE_BYTES = env.int("SUPERSET_MAX_BUNDLE_BYTES", 256 * 1024 * 1024, minimum=1024)
SUPERSET_MAX_BUNDLE_MEMBERS = env.int("SUPERSET_MAX_BUNDLE_MEMBERS", 5000, minimum=1)
SUPERSET_MAX_YAML_BYTES = env.int("SUPERSET_MAX_YAML_BYTES", 10 * 1024 * 1024, minimum=1024)

# Channels: in-memory in one process; Redis when processes are several.
CHANNEL_LAYER_URL = env.url("CHANNEL_LAYER_URL", None, schemes=("redis", "rediss", "unix"))


def _channel_prefix(url: str) -> str:
    parts = urlsplit(url)
    db = parse_qs(parts.query).get("db", [""])[0] if parts.scheme == "unix" else parts.path
    return f"migrator{db.strip('/') or '0'}"


if CHANNEL_LAYER_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            # Redis pub/sub ignores database numbers: the prefix keeps two
            # deployments sharing a Redis (…/0, …/1) out of each other's events.
            "CONFIG": {"hosts": [CHANNEL_LAYER_URL], "prefix": _channel_prefix(CHANNEL_LAYER_URL)},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": str(directory("MEDIA_ROOT", env.str("MEDIA_ROOT", str(DATA_DIR / "files"))))
        },
    },
    "staticfiles": {
        # Scaled-out deployments run collectstatic and get hashed, compressed
        # files; the embedded mode serves straight from the source folders.
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("STATIC_MANIFEST", False)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = directory("STATIC_ROOT", env.str("STATIC_ROOT", str(DATA_DIR / "static")))
# Embedded mode serves static files from the finders, no collectstatic needed.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", True)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Staff manage environments; others when given migrator.manage_environments.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "migrator.auth.StaffManageEnvironments",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.timezone("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# HTTPS hardening, all off by default (a laptop serves plain http://127.0.0.1);
# README "Production" sets them and `manage.py check --deploy` is then clean.
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", False)
if env.bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# For a deliberate exception to a deploy check, e.g. security.W021 (HSTS preload).
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", [])

LOG_LEVEL = env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The embedded worker re-enters django-tasks-db's loop often; its
        # start/stop lines are noise.
        "django_tasks_db": {"level": "WARNING"},
        "django.tasks": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
    },
}
