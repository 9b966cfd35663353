"""Deploy checks of our own (`manage.py check --deploy`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register

HINTS = {
    "SECRET_KEY": 'python -c "import secrets; print(secrets.token_urlsafe(50))"',
    "FIELD_ENCRYPTION_KEYS": (
        'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        " (to keep the stored credentials readable, use the generated key's value: "
        "cat $DATA_DIR/field_encryption_key)"
    ),
}


@register(Tags.security, deploy=True)
def secrets_come_from_the_environment(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """A secret generated into DATA_DIR is fine on a laptop, not in production.

    Several processes would each generate their own (sessions and stored
    credentials stop working across them), and a copy of DATA_DIR carries the
    keys along with the data they protect.
    """
    return [
        Warning(
            f"{name} is read from the file generated in DATA_DIR, not from the environment.",
            hint=f"Set {name} in the environment of every process; make one with: {HINTS[name]}",
            id="migrator.W001",
        )
        for name in getattr(settings, "GENERATED_SECRETS", [])
    ]
