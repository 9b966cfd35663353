"""Log entries never hold a secret: redaction before storage."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tasks_app.models import Task, TaskLogEntry
from tasks_app.tasklog import MASK, REDACTED, TaskLog, is_secret_key, redact
from tests.tasks_app.conftest import KIND

SECRET = "s3cr3t-P@ss/word"


# --- known secret values ---------------------------------------------------


def test_a_known_secret_is_replaced_anywhere_in_text():
    assert redact(f"login with {SECRET} failed ({SECRET})", [SECRET]) == (
        f"login with {REDACTED} failed ({REDACTED})"
    )


def test_a_known_secret_is_replaced_at_any_depth_of_the_context():
    context = {
        "attempt": {"answers": [{"value": SECRET}, ("tuple", f"x{SECRET}y")]},
        "note": f"typed {SECRET}",
        "set": {SECRET},
    }
    assert redact(context, [SECRET]) == {
        "attempt": {"answers": [{"value": REDACTED}, ["tuple", f"x{REDACTED}y"]]},
        "note": f"typed {REDACTED}",
        "set": [REDACTED],
    }


def test_encoded_forms_of_a_known_secret_are_replaced():
    text = (
        "url=postgresql://u:s3cr3t-P%40ss%2Fword@db/x "
        'json={"password": "s3cr3t-P@ss\\/word"} '
        'body={"v": "s3cr3t-P@ss/word"} '
        "form=s3cr3t-P%40ss%2Fword "
        "html=s3cr3t-P&amp;x"
    )
    out = redact(text, [SECRET, "s3cr3t-P&x"])
    assert "s3cr3t" not in out, out


def test_a_secret_that_contains_another_goes_whole():
    assert redact("abcdef and abc", ["abc", "abcdef"]) == f"{REDACTED} and {REDACTED}"


def test_short_secrets_are_replaced_only_as_whole_values():
    # "pw" inside words stays readable; a value that *is* "pw" does not.
    assert redact({"note": "pwned", "answer": "pw"}, ["pw"]) == {
        "note": "pwned",
        "answer": REDACTED,
    }


def test_numbers_and_bytes_secrets_are_matched_too():
    assert redact({"pin": 4321, "code": 4321.5, "raw": b"key=4321"}, [4321, b"4321.5"]) == {
        "pin": REDACTED,
        "code": REDACTED,
        "raw": f"key={REDACTED}",
    }


# --- secret-looking keys -------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "Password",
        "ssh_tunnel_password",
        "ssh_tunnel_private_key",
        "ssh_tunnel_private_key_password",
        "private-key",
        "passphrase",
        "passwd",
        "pwd",
        "db_pass",
        "secret",
        "client_secret",
        "token",
        "X-Auth-Token",
        "access_token",
        "api_key",
        "apikey",
        "aws_access_key_id",
        "credentials",
        "Authorization",
        "cookie",
        "sessionid",
        "masked_encrypted_extra",
        "basic_auth",
    ],
)
def test_values_under_secret_looking_keys_are_hidden(key):
    assert redact({key: "anything"}) == {key: REDACTED}


@pytest.mark.parametrize(
    "key", ["passed", "bypass", "compass", "provider", "auth_provider", "key", "uri", "database"]
)
def test_ordinary_keys_are_kept(key):
    assert not is_secret_key(key)
    assert redact({key: "value"}) == {key: "value"}


def test_secret_keys_are_found_at_any_depth_and_keep_their_shape():
    context = {
        "databases": [
            {
                "name": "analytics",
                "password": "pw1",
                "ssh_tunnel": {"server": "bastion", "private_key": "-----BEGIN…", "port": 22},
            }
        ],
        "passwords": {"databases/a.yaml": "pw2", "databases/b.yaml": ["pw3", 42]},
        "password_required": True,
        "token": None,
        "secret": "",
        "api_key": MASK,
    }
    assert redact(context) == {
        "databases": [
            {
                "name": "analytics",
                "password": REDACTED,
                "ssh_tunnel": {"server": "bastion", "private_key": REDACTED, "port": 22},
            }
        ],
        # Which keys there were stays visible; no value does.
        "passwords": {"databases/a.yaml": REDACTED, "databases/b.yaml": [REDACTED, REDACTED]},
        "password_required": True,
        "token": None,
        "secret": "",
        "api_key": MASK,
    }


def test_bytes_keys_and_values_become_redacted_text():
    assert redact({b"password": b"pw", b"note": "caf\u00e9 s3cr3t".encode()}, ["s3cr3t"]) == {
        "password": REDACTED,
        "note": f"caf\u00e9 {REDACTED}",
    }
    assert redact(b"\xff\xfe s3cr3t", ["s3cr3t"]) == f"\ufffd\ufffd {REDACTED}"


# --- secrets inside free text ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://admin:hunter2@db:5432/x", f"postgresql://admin:{REDACTED}@db:5432/x"),
        (
            "postgresql+psycopg2://admin:p@ss@db.example/x?sslmode=require",
            f"postgresql+psycopg2://admin:{REDACTED}@db.example/x?sslmode=require",
        ),
        (
            "mysql://u:a/b@c@host/db?email=me@example.com",
            f"mysql://u:{REDACTED}@host/db?email=me@example.com",
        ),
        ("redis://:pw123@cache:6379/0", f"redis://:{REDACTED}@cache:6379/0"),
        (
            'Connect to "postgresql://u:pw@h/db", then "x@y"',
            f'Connect to "postgresql://u:{REDACTED}@h/db", then "x@y"',
        ),
        ("postgresql://u:XXXXXXXXXX@h/db", "postgresql://u:XXXXXXXXXX@h/db"),
        ("http://host:8080/path and https://example.com/a", None),
        (
            "GET /login?user=bob&password=hunter2&next=/",
            f"GET /login?user=bob&password={REDACTED}&next=/",
        ),
        ('{"password": "hunter2", "user": "bob"}', f'{{"password": "{REDACTED}", "user": "bob"}}'),
        ("{'api_key': 'abc', 'x': 1}", f"{{'api_key': '{REDACTED}', 'x': 1}}"),
        ('{"password": "XXXXXXXXXX"}', None),
        ("Authorization: Bearer eyJhbGciOi.e30.sig", f"Authorization: Bearer {REDACTED}"),
        (
            "key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----!",
            f"key: {REDACTED}!",
        ),
        # Prose stays readable.
        ("Must provide a password for the database", None),
        ("{'password': ['Missing data for required field.']}", None),
        ("Basic authentication failed: wrong password or token expired", None),
    ],
)
def test_secrets_inside_text_are_hidden(text, expected):
    assert redact(text) == (text if expected is None else expected)


# --- anything else becomes JSON -------------------------------------------


def test_values_that_are_not_json_become_text():
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.UUID(int=7)
    out = redact(
        {
            "when": when,
            "amount": Decimal("1.50"),
            "id": ident,
            "path": Path("/tmp/b.zip"),
            "error": ValueError(f"bad {SECRET}"),
            "nan": float("nan"),
            1: "int key",
        },
        [SECRET],
    )
    assert out == {
        "when": "2025-01-02T03:04:05+00:00",
        "amount": "1.50",
        "id": str(ident),
        "path": "/tmp/b.zip",
        "error": f"bad {REDACTED}",
        "nan": "nan",
        "1": "int key",
    }
    json.dumps(out, allow_nan=False)


def test_deep_or_cyclic_values_do_not_break_the_writer():
    deep: dict = {}
    node = deep
    for _ in range(50):
        node["next"] = {}
        node = node["next"]
    cyclic: list = []
    cyclic.append(cyclic)
    json.dumps(redact({"deep": deep, "cyclic": cyclic}))


# --- the writer ----------------------------------------------------------


@pytest.mark.django_db
def test_the_writer_stores_no_known_secret_in_message_or_context(caplog):
    task = Task.objects.create(kind=KIND)
    log = TaskLog(task, secrets=[SECRET])
    log.add_secret("late-added-secret")
    with caplog.at_level(logging.INFO, logger="tasks_app.tasklog"):
        log.error(
            f"Superset said: wrong password {SECRET} / late-added-secret",
            body={"payload": [{"value": SECRET}], "password": "other"},
            uri="postgresql://admin:uri-password@db/x",
            raw=b"late-added-secret",
        )
    entry = TaskLogEntry.objects.get(task=task)
    stored = entry.message + json.dumps(entry.context)
    for secret in (SECRET, "late-added-secret", "other", "uri-password"):
        assert secret not in stored
        assert secret not in caplog.text
    assert entry.message == f"Superset said: wrong password {REDACTED} / {REDACTED}"
    assert entry.context == {
        "body": {"payload": [{"value": REDACTED}], "password": REDACTED},
        "uri": f"postgresql://admin:{REDACTED}@db/x",
        "raw": REDACTED,
    }


@pytest.mark.django_db
def test_the_writer_accepts_any_message(caplog):
    task = Task.objects.create(kind=KIND)
    entry = TaskLog(task, secrets=["pw-1234"]).warning(RuntimeError("failed with pw-1234"))
    entry.refresh_from_db()
    assert entry.message == f"failed with {REDACTED}"
