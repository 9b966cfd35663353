from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models

from migrator.fields import EncryptedTextField
from migrator.superset.bundle import Limits
from migrator.superset.client import SupersetClient
from migrator.superset.errors import SupersetError
from migrator.validators import validate_superset_url
from tasks_app.models import StorableJSONField

MANAGE_PERMISSION = "migrator.manage_environments"


def canonical_url(url: str) -> str:
    return url.strip().rstrip("/")


def credential_scope(
    password: str, url: str, username: str, provider: str, verify_tls: bool = True
) -> str:
    """What a stored password is bound to: the address, user, provider and TLS
    checking it was saved with, and a fingerprint of the password itself (turning
    certificate checks off would let another server answer for the same address).

    Kept encrypted next to the password (so it cannot be forged or swapped
    between rows without the key) and checked every time a client is built.
    """
    return json.dumps(
        {
            "password": hashlib.sha256(password.encode()).hexdigest(),
            "url": canonical_url(url),
            "username": username,
            "provider": provider,
            **({} if verify_tls else {"verify_tls": False}),
        },
        sort_keys=True,
    )


class PasswordNotBound(SupersetError):
    """The environment's URL, username, provider or TLS setting changed since its
    password was saved."""


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
    superset_version = models.CharField(
        "Superset release",
        max_length=50,
        blank=True,
        editable=False,
        help_text="As the server said when last tested or migrated with; empty when unknown.",
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
        self.password_scope = credential_scope(
            password, self.url, self.username, self.provider, self.verify_tls
        )

    def password_applies_to(
        self, url: str, username: str, provider: str, verify_tls: bool = True
    ) -> bool:
        """Whether the stored password was saved for this address, user, provider and
        TLS checking."""
        expected = credential_scope(self.password or "", url, username, provider, verify_tls)
        return bool(self.password) and hmac.compare_digest(self.password_scope or "", expected)

    def client(self) -> SupersetClient:
        # The one place a stored password leaves the app: it only ever goes to
        # the address it was saved with, whoever changed the URL and however.
        if not self.password_applies_to(self.url, self.username, self.provider, self.verify_tls):
            raise PasswordNotBound(
                f"The stored password of {self.name} was saved for another URL, username, "
                "login provider or TLS setting, so it is not sent. Someone who manages environments must "
                "enter the password again."
            )
        return SupersetClient(
            self.url,
            self.username,
            self.password,
            self.provider,
            timeout=(settings.SUPERSET_CONNECT_TIMEOUT, settings.SUPERSET_TIMEOUT),
            verify=self.verify_tls and settings.SUPERSET_VERIFY_TLS,
            limits=Limits.from_settings(settings),
        )

    def saw_release(self, version: str | None) -> None:
        """Remember the release the server said it runs (tests and migrations read it)."""
        version = version or ""
        if self.pk and version != self.superset_version:
            Environment.objects.filter(pk=self.pk).update(superset_version=version)
        self.superset_version = version

    @classmethod
    def from_ref(cls, ref: dict) -> Environment | None:
        """The environment a task remembered (``as_ref``), if it still exists."""
        return cls.objects.filter(pk=ref["id"]).first()

    def as_ref(self) -> dict:
        """How a task remembers this environment (it may be renamed or deleted later)."""
        return {"id": self.pk, "name": self.name, "url": self.url}


class DatabaseMapping(models.Model):
    """A remembered choice: what a source connection becomes on a target.

    Saved per (source, target) pair when a migration is started with an explicit
    choice, or edited under Environments; the next migration between the two
    uses it by default. Replacing is never remembered: it is asked for each time.
    """

    class Action(models.TextChoices):
        MAP = "map", "Use a target connection"
        CREATE = "create", "Create it on the target"

    source = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    source_database = models.CharField(
        "source connection", max_length=250, help_text="Its name on the source Superset."
    )
    action = models.CharField(max_length=10, choices=Action.choices)
    target_database = models.CharField(
        "target connection",
        max_length=250,
        blank=True,
        help_text="Its name on the target Superset (when mapping).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source__name", "target__name", "source_database"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "target", "source_database"], name="one_mapping_per_database"
            )
        ]

    def __str__(self) -> str:
        if self.action == self.Action.MAP:
            return f"{self.source_database} → {self.target_database}"
        return f"{self.source_database}: create on the target"

    def as_choice(self) -> dict[str, str]:
        if self.action == self.Action.MAP:
            return {"action": "map", "target": self.target_database}
        return {"action": "create"}

    @classmethod
    def choices_for(cls, source: Environment, target: Environment) -> dict[str, dict[str, str]]:
        """Source connection name -> choice, as ``POST /api/migrations`` takes them."""
        return {
            m.source_database: m.as_choice()
            for m in cls.objects.filter(source=source, target=target)
        }

    @classmethod
    def replace_all(
        cls, source: Environment, target: Environment, choices: dict[str, dict[str, str]]
    ) -> None:
        cls.objects.filter(source=source, target=target).exclude(
            source_database__in=list(choices)
        ).delete()
        cls.remember(source, target, choices)

    @classmethod
    def remember(
        cls, source: Environment, target: Environment, choices: dict[str, dict[str, str]]
    ) -> None:
        for name, choice in choices.items():
            if choice.get("action") not in (cls.Action.MAP, cls.Action.CREATE):
                continue
            cls.objects.update_or_create(
                source=source,
                target=target,
                source_database=name,
                defaults={
                    "action": choice["action"],
                    "target_database": str(choice.get("target", ""))
                    if choice["action"] == cls.Action.MAP
                    else "",
                },
            )


class PromotedAsset(models.Model):
    """What a migration last wrote to a target for one asset (by the target's uuid).

    ``source_hash`` is the source's document as exported, ``target_changed_on``
    the target's ``changed_on`` of the asset right after the import. When both
    are still the same, nobody changed it on either side since, and it is not
    imported again.
    """

    target = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    asset_type = models.CharField(max_length=20)
    uuid = models.CharField(max_length=36)
    source_hash = models.CharField(max_length=64)
    target_changed_on = models.CharField(max_length=64)
    task = models.ForeignKey(
        "tasks_app.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["target", "asset_type", "uuid"], name="one_record_per_target_asset"
            )
        ]

    def __str__(self) -> str:
        return f"{self.asset_type} {self.uuid} on {self.target_id}"


class Promotion(models.Model):
    """A migration's plan (what it will do on the target) and report (what it did)."""

    task = models.OneToOneField(
        "tasks_app.Task", on_delete=models.CASCADE, related_name="promotion"
    )
    plan = StorableJSONField(null=True, blank=True)
    report = StorableJSONField(null=True, blank=True)
    # What the target held before the first write, for a rollback: ``{"file": saved
    # export of the target, "bytes", "assets": {kind: [{uuid, name, id}]}}``.
    backup = StorableJSONField(null=True, blank=True)
    # The one task that rolls this migration back (a migration is rolled back once).
    rolled_back_by = models.OneToOneField(
        "tasks_app.Task",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rolls_back",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Promotion of task #{self.task_id}"

    @classmethod
    def of(cls, task: Any) -> Promotion:
        """The plan, report and backup of ``task`` (a migration, or a rollback's own)."""
        return cls.objects.get_or_create(task=task)[0]
