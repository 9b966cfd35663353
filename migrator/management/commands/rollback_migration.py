"""Roll a migration back from the terminal: the same task as the page's "Roll back".

It starts the rollback task (it shows in the history, linked to the migration it
undoes) and follows it as ``migrate_dashboards`` follows a migration (``cli.TaskCommand``):
status lines and the log as it is written, prompts or --secrets-file for what it asks,
Ctrl+C and --timeout cancel it, then the report. ``--plan`` prints what it would do,
asset by asset, and starts nothing.

Exit codes: 0 succeeded (or the plan printed); 1 failed or cancelled; 2 bad arguments,
or a task that cannot be rolled back (unknown, not a migration, not finished, already
rolled back: the message says which); 3 the task needs input and there is no terminal
to ask; 4 --timeout ran out (the task was cancelled).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from migrator import cli, rollback
from migrator.superset.errors import SupersetError
from tasks_app.models import Task


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """A rollback plan as text: one line per asset it acts on or keeps, then the counts."""
    lines = [
        f"  {item['type'][:-1]:<9} {item['name']:<45} {item['action']:<10} {item['reason']}"
        + ("  WARNING" if item.get("warning") else "")
        for item in plan["assets"]
        if item["action"] != "untouched"
    ]
    counts = ", ".join(f"{n} {action}" for action, n in plan["summary"].items())
    lines.append(f"Summary: {counts}." if counts else "Summary: nothing to undo.")
    return lines


class Command(cli.TaskCommand):
    help = (
        "Roll a finished migration back, as the task page's 'Roll back' does: what it "
        "replaced is put back from its backup, what it created is deleted, what changed on "
        "the target since is kept. The rollback task shows in the history, its log is "
        "printed. Exit 0 succeeded, 1 failed or cancelled, 2 bad arguments or a task that "
        "cannot be rolled back, 3 needs input without a terminal, 4 timed out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "task_id",
            type=cli.positive_id("task"),
            metavar="TASK_ID",
            help="the migration task to roll back (its number in the history)",
        )
        parser.add_argument(
            "--plan",
            action="store_true",
            help="print what the rollback would do on the target, asset by asset, and start "
            "nothing (nothing is written anywhere)",
        )
        self.add_task_arguments(parser)  # --secrets-file, --timeout, --user

    def handle(self, *args: Any, **options: Any) -> None:
        self.prepare(options)
        owner = self.owner(options["user"])
        migration = Task.objects.filter(pk=options["task_id"]).first()
        if migration is None:
            raise cli.fail(f"There is no task #{options['task_id']}.", cli.BAD_ARGUMENTS)
        try:
            rollback.check_can_roll_back(migration)
        except rollback.CannotRollBack as exc:
            raise cli.fail(str(exc), cli.BAD_ARGUMENTS) from None
        if options["plan"]:
            self._plan(migration)
            return
        self.read_secrets(options["secrets_file"])
        try:
            task = rollback.start_rollback(migration, owner=owner)
        except rollback.CannotRollBack as exc:  # rolled back meanwhile, from elsewhere
            raise cli.fail(str(exc), cli.BAD_ARGUMENTS) from None
        target = (migration.params.get("target") or {}).get("name", "?")
        self.stdout.write(
            f"Task #{task.pk}: rolling back migration #{migration.pk} on {target} "
            f"(in the history as task #{task.pk})."
        )
        self.follow(task, owner, options["timeout"])

    def _plan(self, migration: Task) -> None:
        try:
            plan = rollback.plan_rollback(migration)
        except rollback.CannotRollBack as exc:
            raise cli.fail(str(exc), cli.BAD_ARGUMENTS) from None
        except SupersetError as exc:
            raise cli.fail(f"Could not plan: {exc.message}", cli.FAILED) from None
        backup = plan.get("backup")
        kept = f"its backup: {backup['bytes']:,} bytes" if backup else "no backup"
        self.stdout.write(
            f"Rollback plan of migration #{migration.pk} on {plan['target']['name']} "
            f"({kept}). Nothing was started."
        )
        for line in plan_lines(plan):
            self.stdout.write(line)
