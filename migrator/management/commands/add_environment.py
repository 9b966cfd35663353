"""Register (or with --update, change) a Superset environment from the terminal."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from migrator import cli
from migrator.dashboards import check_connection
from migrator.forms import EnvironmentForm
from migrator.models import Environment


class Command(BaseCommand):
    help = (
        "Register a Superset environment. The password is asked for with a hidden prompt, "
        "or read from standard input with --password-stdin; never from an argument."
    )

    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="a unique name, e.g. prod")
        parser.add_argument("--url", help="Superset's base URL, e.g. https://superset.example.com")
        parser.add_argument("--username", help="the Superset user the app logs in as")
        parser.add_argument(
            "--provider", choices=[c for c, _ in Environment.Provider.choices], help="default db"
        )
        parser.add_argument(
            "--no-verify-tls",
            dest="verify_tls",
            action="store_false",
            default=None,
            help="accept self-signed certificates (test servers only)",
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input (e.g. from a secrets manager)",
        )
        parser.add_argument(
            "--update", action="store_true", help="change the environment of this name"
        )
        parser.add_argument(
            "--test", action="store_true", help="then log in to it (exit 1 when that fails)"
        )
        parser.add_argument("--dry-run", action="store_true", help="check everything, save nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdin = options.get("stdin") or sys.stdin
        name: str = options["name"]
        instance = Environment.objects.filter(name=name).first()
        if options["update"] and instance is None:
            raise cli.fail(f"No environment named {name!r} to update.", cli.BAD_ARGUMENTS)
        if not options["update"] and instance is not None:
            raise cli.fail(
                f"An environment named {name!r} exists; pass --update to change it.",
                cli.BAD_ARGUMENTS,
            )
        if instance is None:
            missing = [f"--{o}" for o in ("url", "username") if not options[o]]
            if missing:
                raise cli.fail(f"Give {' and '.join(missing)}.", cli.BAD_ARGUMENTS)
        fields = {
            "name": name,
            "url": options["url"],
            "username": options["username"],
            "provider": options["provider"],
            "verify_tls": options["verify_tls"],  # None, or False for --no-verify-tls
        }
        if instance is None:
            fields["password"] = self._password(options, fields["username"], keeps=False)
            form = EnvironmentForm(
                {
                    **fields,
                    "provider": fields["provider"] or Environment.Provider.DB,
                    "verify_tls": fields["verify_tls"] is None,
                }
            )
        else:
            # Blank keeps the stored password only while it still applies (EnvironmentForm).
            keeps = instance.password_applies_to(
                fields["url"] or instance.url,
                fields["username"] or instance.username,
                fields["provider"] or instance.provider,
                instance.verify_tls if fields["verify_tls"] is None else False,
            )
            username = fields["username"] or instance.username
            fields["password"] = self._password(options, username, keeps=keeps) or None
            form = EnvironmentForm.changing(instance, fields)
        if not form.is_valid():
            problems = "; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()
            )
            raise cli.fail(f"Not saved: {problems}", cli.BAD_ARGUMENTS)
        verb = "Updated" if instance else "Added"
        if options["dry_run"]:
            env = form.save(commit=False)
            self.stdout.write(f"Dry run: would have {verb.lower()} {self._describe(env)}.")
        else:
            env = form.save()
            self.stdout.write(f"{verb} {self._describe(env)}.")
        if options["test"]:
            result = check_connection(env)
            self.stdout.write(result["message"])
            if not result["ok"]:
                raise cli.fail(f"{env.name}: the connection test failed.", cli.FAILED)

    def _password(self, options: dict[str, Any], username: str, *, keeps: bool) -> str:
        """The password typed or piped in; empty when ``keeps`` and none was given."""
        if options["password_stdin"]:
            password = cli.read_stdin_secret(self.stdin)
            if not password and not keeps:
                raise cli.fail(
                    self._password_needed(options, "Standard input held no password") + ".",
                    cli.BAD_ARGUMENTS,
                )
            return password
        if not cli.is_terminal(self.stdin):
            if keeps:
                return ""  # an update without a password keeps the current one
            raise cli.fail(
                self._password_needed(options, "No terminal to ask for the password")
                + ": pipe it in with --password-stdin (never as an argument).",
                cli.NEEDS_TERMINAL,
            )
        keep = " (empty keeps the current one)" if keeps else ""
        try:
            password = cli.ask_secret(f"Password of {username}{keep}: ")
        except EOFError:
            raise cli.fail("No password given.", cli.NEEDS_TERMINAL) from None
        if not password and not keeps:
            raise cli.fail(
                self._password_needed(options, "No password given") + ".", cli.BAD_ARGUMENTS
            )
        return password

    @staticmethod
    def _password_needed(options: dict[str, Any], problem: str) -> str:
        if options["update"]:
            return (
                f"{problem}, and changing the URL, username, provider or TLS setting needs it again"
            )
        return problem

    @staticmethod
    def _describe(env: Environment) -> str:
        tls = "" if env.verify_tls else ", TLS not verified"
        return f"environment {env.name!r}: {env.url} as {env.username} ({env.provider}{tls})"
