"""Migrate dashboards from the terminal: the same task as the migration page.

The task is created exactly as the page creates it (it shows in the history),
its log is printed as it is written, and when it waits for input the command
asks for each secret with a hidden prompt, or takes it from --secrets-file.

Following the task (status lines, its log, prompts, Ctrl+C and --timeout,
the report, who runs it) is ``cli.TaskCommand``'s, shared with
``rollback_migration``.

Exit codes: 0 succeeded; 1 failed or cancelled (an expired request too);
2 bad arguments; 3 the task needs input and there is no terminal to ask
(it keeps waiting: answer it in the web app); 4 --timeout ran out (the task
was cancelled).
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandParser

from migrator import cli, sessions
from migrator.dashboards import check_connection
from migrator.forms import MigrationForm
from migrator.plan import PlanError, plan_lines
from migrator.superset.errors import SupersetError

# How often the task is read again; tests shorten it.
POLL_SECONDS = cli.POLL_SECONDS
positive_int = cli.positive_id("dashboard")


def mapping(value: str) -> tuple[str, str]:
    source, sep, target = value.partition("=")
    if not sep or not source.strip() or not target.strip():
        raise argparse.ArgumentTypeError(f"{value!r}: write SOURCE_DB=TARGET_DB")
    return source.strip(), target.strip()


class Command(cli.TaskCommand):
    help = (
        "Migrate dashboards from one environment to another, as the migration page does: "
        "the task shows in the history, its log is printed, and passwords it needs are asked "
        "for with hidden prompts (or read from --secrets-file). Exit 0 succeeded, 1 failed "
        "or cancelled, 2 bad arguments, 3 needs input without a terminal, 4 timed out."
    )

    @property
    def poll_seconds(self) -> float:
        return POLL_SECONDS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, help="environment name or id")
        parser.add_argument("--target", required=True, help="environment name or id")
        parser.add_argument(
            "--dashboard",
            dest="dashboards",
            action="append",
            type=positive_int,
            required=True,
            metavar="ID",
            help="a dashboard id on the source; repeat for several",
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="replace what exists on the target"
        )
        self.add_task_arguments(parser)  # --secrets-file, --timeout, --user
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="check the environments and dashboards, start nothing",
        )
        parser.add_argument(
            "--plan",
            action="store_true",
            help="print what the migration would do on the target, asset by asset, and start "
            "nothing (nothing is written anywhere)",
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            type=mapping,
            metavar="SOURCE_DB=TARGET_DB",
            help="use the target's connection TARGET_DB for the source's SOURCE_DB "
            "(no password, the target's connection is not changed); repeatable",
        )
        parser.add_argument(
            "--create",
            action="append",
            default=[],
            metavar="SOURCE_DB",
            help="create the source's connection SOURCE_DB on the target; repeatable",
        )
        parser.add_argument(
            "--replace",
            action="append",
            default=[],
            metavar="SOURCE_DB",
            help="replace the target's connection of the same name with the source's "
            "SOURCE_DB (what the target's dashboards on it read changes); repeatable",
        )
        parser.add_argument(
            "--on-conflict",
            choices=["rename", "take_over", "skip"],
            help="when the target has its own dashboard with a chosen dashboard's slug: import "
            "under a new slug, take the target's over, or skip it (default: ask)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.prepare(options)
        owner = self.owner(options["user"])
        form = MigrationForm(
            {
                "source": options["source"],
                "target": options["target"],
                "dashboards": options["dashboards"],
                "overwrite": options["overwrite"],
            }
        )
        if not form.is_valid():
            problems = "; ".join(f"--{f}: {' '.join(e)}" for f, e in form.errors.items())
            raise cli.fail(problems.replace("--dashboards:", "--dashboard:"), cli.BAD_ARGUMENTS)
        self.read_secrets(options["secrets_file"])
        source, target = form.cleaned_data["source"], form.cleaned_data["target"]
        if options["dry_run"]:
            self._dry_run(form)
            return
        choices = self._choices(form, options)
        if options["plan"]:
            self._plan(form, choices)
            return
        task = form.start(owner, choices)
        ids = ", ".join(f"#{i}" for i in form.cleaned_data["dashboards"])
        self.stdout.write(
            f"Task #{task.pk}: migrating dashboard(s) {ids} from {source.name} to "
            f"{target.name} (in the history as task #{task.pk})."
        )
        self.follow(task, owner, options["timeout"])

    # --- arguments -----------------------------------------------------------

    def _choices(self, form: MigrationForm, options: dict[str, Any]) -> dict[str, Any]:
        """--map/--create/--replace/--on-conflict as the API's ``databases`` and ``conflicts``."""
        databases: dict[str, dict[str, Any]] = {}
        given = [
            *[(name, {"action": "map", "target": to}) for name, to in options["map"]],
            *[(name, {"action": "create"}) for name in options["create"]],
            *[(name, {"action": "replace"}) for name in options["replace"]],
        ]
        for name, choice in given:
            if name in databases:
                raise cli.fail(
                    f"{name}: give one of --map, --create, --replace.", cli.BAD_ARGUMENTS
                )
            databases[name] = choice
        conflicts = {"*": options["on_conflict"]} if options["on_conflict"] else {}
        choices = {"databases": databases, "conflicts": conflicts}
        try:
            errors = form.check(choices)  # makes "*" each dashboard's answer
        except SupersetError as exc:
            raise cli.fail(f"Could not check the choices: {exc.message}", cli.FAILED) from None
        if errors:
            problems = " ".join(m for messages in errors.values() for m in messages)
            raise cli.fail(problems, cli.BAD_ARGUMENTS)
        return choices

    def _plan(self, form: MigrationForm, choices: dict[str, Any]) -> None:
        data = form.cleaned_data
        try:
            plan = form.plan(choices)
        except PlanError as exc:
            raise cli.fail(f"The migration cannot be planned: {exc}", cli.BAD_ARGUMENTS) from None
        except SupersetError as exc:
            raise cli.fail(f"Could not plan: {exc.message}", cli.FAILED) from None
        self.stdout.write(
            f"Plan: {data['source'].name} → {data['target'].name} "
            f"({'overwrite' if data['overwrite'] else 'no overwrite'}). Nothing was started."
        )
        for line in plan_lines(plan):
            self.stdout.write(line)

    def _dry_run(self, form: MigrationForm) -> None:
        source, target = form.cleaned_data["source"], form.cleaned_data["target"]
        ids = form.cleaned_data["dashboards"]
        problems = []
        try:
            with sessions.borrow(source) as client:
                found = {row["id"]: row for row in client.get_dashboards(ids)}
        except SupersetError as exc:
            found = {}
            problems.append(f"source {source.name}: {exc.message}")
        for dashboard_id in ids:
            if dashboard_id in found:
                self.stdout.write(f"  #{dashboard_id} {found[dashboard_id]['title']}")
            elif not problems:
                problems.append(f"source {source.name} has no dashboard #{dashboard_id}")
        check = check_connection(target)
        if not check["ok"]:
            problems.append(f"target {target.name}: {check['message']}")
        overwrite = " (overwriting what exists)" if form.cleaned_data["overwrite"] else ""
        if problems:
            raise cli.fail("Dry run: this would fail: " + "; ".join(problems), cli.FAILED)
        self.stdout.write(
            f"Dry run: would migrate {len(ids)} dashboard(s) from {source.name} to "
            f"{target.name}{overwrite}. Nothing was started."
        )
