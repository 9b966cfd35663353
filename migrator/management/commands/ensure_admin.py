"""Create the first admin account if there is none (run by `make run`)."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create a superuser when none exists, from DJANGO_SUPERUSER_USERNAME / "
        "DJANGO_SUPERUSER_PASSWORD, or with a generated password printed once."
    )

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser(
            username=username, email=os.environ.get("DJANGO_SUPERUSER_EMAIL", ""), password=password
        )
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created the admin account {username!r} with password {password}\n"
                    "It is shown only this once: note it, or change it with "
                    f"`manage.py changepassword {username}`."
                )
            )
        else:
            self.stdout.write(f"Created the admin account {username!r}.")
