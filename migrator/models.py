from __future__ import annotations

from django.conf import settings
from django.db import models

from migrator.fields import EncryptedTextField
from migrator.superset.client import SupersetClient
from migrator.validators import validate_superset_url


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
    password = EncryptedTextField(help_text="Stored encrypted; never shown again.")
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

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.url = self.url.strip().rstrip("/")
        super().save(*args, **kwargs)

    def client(self) -> SupersetClient:
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
