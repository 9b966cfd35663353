"""Log in to Superset environments and say plainly what is wrong, if anything."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from migrator import cli
from migrator.dashboards import check_connection
from migrator.forms import resolve_environment
from migrator.models import Environment


class Command(BaseCommand):
    help = (
        "Test the connection to environments (by name or id; all when none is named). "
        "Exit 0 when every one works, 1 when one does not, 2 for an unknown name."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("environments", nargs="*", metavar="NAME_OR_ID")
        parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")

    def handle(self, *args: Any, environments: list[str], **options: Any) -> None:
        if environments:
            found = [(ref, resolve_environment(ref)) for ref in environments]
            unknown = [ref for ref, env in found if env is None]
            if unknown:
                raise cli.fail(
                    f"No environment with the name or id {', '.join(map(repr, unknown))}.",
                    cli.BAD_ARGUMENTS,
                )
            chosen = [env for _, env in found]
        else:
            chosen = list(Environment.objects.all())
            if not chosen:
                raise cli.fail(
                    "No environments yet: add one with `manage.py add_environment`.",
                    cli.BAD_ARGUMENTS,
                )
        results = [{"name": env.name, "url": env.url, **check_connection(env)} for env in chosen]
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2))
        else:
            for row in results:
                mark = "OK  " if row["ok"] else "FAIL"
                self.stdout.write(f"{mark} {row['name']} ({row['url']}): {row['message']}")
        failed = [row["name"] for row in results if not row["ok"]]
        if failed:
            raise cli.fail(f"Connection failed: {', '.join(failed)}.", cli.FAILED)
