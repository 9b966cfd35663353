"""Re-encrypt stored credentials with the first key of FIELD_ENCRYPTION_KEYS."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from migrator.models import Environment


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored credential with the first FIELD_ENCRYPTION_KEYS key. "
        "Put the new key first, keep the old ones after it, run this, then drop the old keys."
    )

    def handle(self, *args, **options) -> None:
        count = 0
        with transaction.atomic():
            for env in Environment.objects.select_for_update():
                # Reading decrypts with any key; saving encrypts with the first.
                env.save(update_fields=["password", "password_scope"])
                count += 1
        self.stdout.write(f"Re-encrypted the credentials of {count} environment(s).")
