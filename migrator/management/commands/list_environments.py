"""List the registered Superset environments (never their passwords)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from migrator.models import Environment


class Command(BaseCommand):
    help = "List the registered Superset environments (passwords are never shown)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = [
            {
                "id": env.pk,
                "name": env.name,
                "url": env.url,
                "username": env.username,
                "provider": env.provider,
                "verify_tls": env.verify_tls,
            }
            for env in Environment.objects.defer("password")
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("No environments yet: add one with `manage.py add_environment`.")
            return
        header = {"id": "ID", "name": "NAME", "url": "URL", "username": "USER"}
        header |= {"provider": "LOGIN", "verify_tls": "VERIFY-TLS"}
        table = [header] + [
            {**row, "verify_tls": "yes" if row["verify_tls"] else "no"} for row in rows
        ]
        widths = {key: max(len(str(row[key])) for row in table) for key in header}
        for row in table:
            line = "  ".join(str(row[key]).ljust(widths[key]) for key in header)
            self.stdout.write(line.rstrip())
