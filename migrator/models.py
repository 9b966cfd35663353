from __future__ import annotations

import hashlib
import hmac
import json

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models

from migrator.fields import EncryptedTextField
from migrator.superset.client import SupersetClient
from migrator.superset.errors import SupersetError
from migrator.validators import validate_superset_url

MANAGE_PERMISSION = "migrator.manage_environments"


def canonical_url(url: str) -> str:
    return url.strip().rstrip("/")


def credential_scope(password: str, url: str, username: str, provider: str) -> str:
    """What a stored password is bound to: the address, user and provider it was
    saved with, and a fingerprint of the password itself.

    Kept encrypted next to the password (so it cannot be forged or swapped
    between rows without the key) and checked every time a client is built.
    """
    return json.dumps(
        {
            "password": hashlib.sha256(password.encode()).hexdigest(),
            "url": canonical_url(url),
            "username": username,
            "provider": provider,
        },
        sort_keys=True,
    )


class PasswordNotBound(SupersetError):
    """The environment's URL, username or provider changed since its password was saved."""


class Environment(models.Model):
    """A Superset instance we migrate from or to."""

    class Provider(models.TextChoices):
        DB = "db", "Database (db)"
        LDAP = "ldap", "LDAP"

    name = models.CharField(max_length=100, unique=True)
    url = models.CharField(
        "URL",
        max_length=500,
        validators=[validate_superset_url],
        help_text="Superset's base URL, e.g. https://superset.example.com",
    )
    username = models.CharField(max_length=150)
    # Not editable: only set_password changes it (forms never copy it over).
    password = EncryptedTextField(editable=False, help_text="Stored encrypted; never shown again.")
    # credential_scope() of the password when it was set (see set_password).
    password_scope = EncryptedTextField(default="", editable=False)
    provider = models.CharField(max_length=10, choices=Provider.choices, default=Provider.DB)
    verify_tls = models.BooleanField(
        "verify TLS certificates",
        default=True,
        help_text="Turn off only for self-signed test servers.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("manage_environments", "Can add, change and delete Superset environments"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.url = canonical_url(self.url)
        if self._state.adding and not self.password_scope:
            # A new environment's password is for the address it is created with;
            # later changes of address need set_password.
            self.set_password(self.password)
        super().save(*args, **kwargs)

    @staticmethod
    def can_be_managed_by(user) -> bool:
        """Adding, changing and deleting environments (staff, or the permission)."""
        return user.has_perm(MANAGE_PERMISSION)

    @classmethod
    def check_manager(cls, user) -> None:
        if not cls.can_be_managed_by(user):
            raise PermissionDenied(
                "Only people who manage environments (staff, or users given the permission "
                "“Can add, change and delete Superset environments”) may add, change or delete "
                "them. Anyone may use them to migrate."
            )

    def set_password(self, password: str) -> None:
        """Store ``password`` for the URL, username and provider the environment has now."""
        self.password = password
        self.password_scope = credential_scope(password, self.url, self.username, self.provider)

    def password_applies_to(self, url: str, username: str, provider: str) -> bool:
        """Whether the stored password was saved for this address, user and provider."""
        expected = credential_scope(self.password or "", url, username, provider)
        return bool(self.password) and hmac.compare_digest(self.password_scope or "", expected)

    def client(self) -> SupersetClient:
        # The one place a stored password leaves the app: it only ever goes to
        # the address it was saved with, whoever changed the URL and however.
        if not self.password_applies_to(self.url, self.username, self.provider):
            raise PasswordNotBound(
                f"The stored password of {self.name} was saved for another URL, username or "
                "login provider, so it is not sent. Someone who manages environments must "
                "enter the password again."
            )
        return SupersetClient(
            self.url,
            self.username,
            self.password,
            self.provider,
            timeout=(settings.SUPERSET_CONNECT_TIMEOUT, settings.SUPERSET_TIMEOUT),
            verify=self.verify_tls and settings.SUPERSET_VERIFY_TLS,
        )

    @classmethod
    def from_ref(cls, ref: dict) -> Environment | None:
        """The environment a task remembered (``as_ref``), if it still exists."""
        return cls.objects.filter(pk=ref["id"]).first()

    def as_ref(self) -> dict:
        """How a task remembers this environment (it may be renamed or deleted later)."""
        return {"id": self.pk, "name": self.name, "url": self.url}
