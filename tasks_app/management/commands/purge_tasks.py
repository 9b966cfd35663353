"""Retention cleanup: delete old tasks with their logs, input requests and saved files.

Meant for cron or a systemd timer (README, "Operations"): no prompt, exit 0
when done, non-zero with a message on bad arguments.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from tasks_app import engine, retention
from tasks_app.kinds import find_kind, summary
from tasks_app.models import Task, TaskLogEntry


def whole_number(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is negative (0 turns the rule off)")
    return number


def _cleanup(task: Task) -> None:
    try:
        kind = engine.get_kind(task.kind)
    except LookupError:
        return  # a kind this server no longer knows left nothing it could clean
    kind.cleanup(task)


class Command(BaseCommand):
    help = (
        "Delete finished tasks older than TASK_RETENTION_DAYS or beyond the newest "
        "TASK_RETENTION_LIMIT, with their log entries, input requests and saved bundles. "
        "Pending, running and waiting tasks are never deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=whole_number,
            default=None,
            help="delete tasks finished more than DAYS days ago "
            f"(default TASK_RETENTION_DAYS={settings.TASK_RETENTION_DAYS}; 0: no age limit)",
        )
        parser.add_argument(
            "--keep",
            type=whole_number,
            default=None,
            help="keep at most the newest KEEP tasks "
            f"(default TASK_RETENTION_LIMIT={settings.TASK_RETENTION_LIMIT}; 0: no count limit)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would be deleted, delete nothing"
        )

    def handle(
        self, *args: Any, days: int | None, keep: int | None, dry_run: bool, **options: Any
    ) -> None:
        policy = retention.Policy(
            days=settings.TASK_RETENTION_DAYS if days is None else days,
            keep=settings.TASK_RETENTION_LIMIT if keep is None else keep,
        )
        verbosity = options.get("verbosity", 1)
        if policy.is_off:
            self.stdout.write("Both retention rules are off (--days 0 --keep 0): nothing to do.")
            return
        self.stdout.write(f"Deleting finished tasks {policy.describe()}.")
        if dry_run:
            self._dry_run(policy)
            return

        expired = engine.expire_input_requests()
        if expired:
            self.stdout.write(
                f"Failed {len(expired)} task(s) whose input request expired: "
                + ", ".join(f"#{pk}" for pk in expired)
            )

        def report(batch: list[Task]) -> None:
            if verbosity >= 2:
                for task in batch:
                    self.stdout.write(f"Deleted {self._line(task)}")

        result = retention.purge(policy.candidates(), _cleanup, on_batch=report)
        messages, _ = retention.finished_queue_messages().delete()
        self.stdout.write(
            f"Deleted {result.tasks} task(s), {result.log_entries} log entries and "
            f"{result.input_requests} input request(s); pruned {messages} finished queue "
            "message(s)."
        )
        for problem in result.cleanup_errors:
            self.stderr.write(f"Could not remove the saved files of task {problem}")

    def _dry_run(self, policy: retention.Policy) -> None:
        expiring = retention.expired_waiting(policy.now)
        if expiring:
            self.stdout.write(
                f"{len(expiring)} task(s) waiting for input have expired and would be failed "
                "first: " + ", ".join(f"#{pk}" for pk in expiring)
            )
        candidates = policy.candidates(expiring=expiring)
        count = 0
        for task in candidates.only(
            "id", "kind", "status", "params", "created_at", "finished_at"
        ).iterator(chunk_size=2000):
            self.stdout.write(f"Would delete {self._line(task)}")
            count += 1
        entries = TaskLogEntry.objects.filter(task__in=candidates.values("id")).count()
        messages = retention.finished_queue_messages().count()
        self.stdout.write(
            f"Dry run: would delete {count} task(s) with {entries} log entries, and prune "
            f"{messages} finished queue message(s). Nothing was deleted."
        )

    @staticmethod
    def _line(task: Task) -> str:
        shown = summary(task)
        what = f" {shown.route}" if shown.route else ""
        if shown.items:
            what += f" ({len(shown.items)} item(s))"
        kind = find_kind(task.kind)
        for label, size in (kind.kept_files(task) if kind else {}).items():
            what += f", {label} {size:,} bytes"
        when = timezone.localtime(task.finished_at or task.created_at).strftime("%Y-%m-%d %H:%M")
        return f"task #{task.pk} {task.kind} {task.status} {when}{what}"
