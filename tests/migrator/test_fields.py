from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from migrator.models import Environment

pytestmark = pytest.mark.django_db


def _stored_password(env: Environment) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM migrator_environment WHERE id = %s", [env.pk])
        return cursor.fetchone()[0]


def _env() -> Environment:
    return Environment.objects.create(
        name="prod", url="https://bi.example.com", username="svc", password="S3cret-pass"
    )


def test_it_stores_the_password_encrypted(settings):
    env = _env()
    raw = _stored_password(env)
    assert "S3cret-pass" not in raw
    assert (
        Fernet(settings.FIELD_ENCRYPTION_KEYS[0].encode()).decrypt(raw.encode()) == b"S3cret-pass"
    )
    assert Environment.objects.get(pk=env.pk).password == "S3cret-pass"


def test_keys_rotate_without_losing_credentials(settings):
    env = _env()
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    assert Environment.objects.get(pk=env.pk).password == "S3cret-pass"
    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    rotated = Environment.objects.get(pk=env.pk)
    assert rotated.password == "S3cret-pass"
    # What the password is bound to is rotated with it: it still applies.
    assert rotated.password_applies_to(rotated.url, rotated.username, rotated.provider)


def test_a_removed_key_is_a_clear_error(settings):
    env = _env()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured, match="rotate_encryption_keys"):
        Environment.objects.get(pk=env.pk)


def test_a_malformed_key_is_a_clear_error(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-key"]
    with pytest.raises(ImproperlyConfigured, match="Fernet"):
        _env()
