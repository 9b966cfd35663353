"""Migrate dashboards from the terminal: the same task as the migration page.

The task is created exactly as the page creates it (it shows in the history),
its log is printed as it is written, and when it waits for input the command
asks for each secret with a hidden prompt, or takes it from --secrets-file.

Who runs the task: with WORKER_MODE=thread (the embedded default) this
command runs it itself, in a thread of its own process, so it works whether
or not the web server is up; if the server's workers are up too, whichever
claims the task first runs it (the claim is atomic) and the other does
nothing. With WORKER_MODE=external the `run_worker` processes run it.

Exit codes: 0 succeeded; 1 failed or cancelled (an expired request too);
2 bad arguments; 3 the task needs input and there is no terminal to ask
(it keeps waiting: answer it in the web app); 4 --timeout ran out (the task
was cancelled).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from pydantic import ValidationError

from migrator import cli, passwords, sessions
from migrator.dashboards import check_connection
from migrator.forms import MigrationForm
from migrator.models import Promotion
from migrator.plan import PlanError, plan_lines
from migrator.superset.errors import SupersetError
from tasks_app import engine
from tasks_app.engine import field_id
from tasks_app.models import FINISHED_STATUSES, InputRequest, Status, Task, TaskLogEntry
from tasks_app.prompts import answer_task
from tasks_app.worker import new_worker_id

POLL_SECONDS = 0.2
PENDING_HINT_AFTER = 10.0


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a dashboard id") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{number} is not a dashboard id (ids are positive)")
    return number


def positive_seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number of seconds")
    return number


def mapping(value: str) -> tuple[str, str]:
    source, sep, target = value.partition("=")
    if not sep or not source.strip() or not target.strip():
        raise argparse.ArgumentTypeError(f"{value!r}: write SOURCE_DB=TARGET_DB")
    return source.strip(), target.strip()


def load_secrets(path: Path) -> dict[str, Any]:
    """The answers file, shaped like the resume API's body; checked, never echoed."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise cli.fail(f"--secrets-file {path}: {exc.strerror}.", cli.BAD_ARGUMENTS) from None
    except (ValueError, UnicodeDecodeError):
        raise cli.fail(f"--secrets-file {path}: not valid JSON.", cli.BAD_ARGUMENTS) from None
    if not isinstance(data, dict):
        raise cli.fail(f"--secrets-file {path}: must hold a JSON object.", cli.BAD_ARGUMENTS)
    unknown = sorted(set(data) - set(passwords.Answers.model_fields))
    if unknown:
        raise cli.fail(
            f"--secrets-file {path}: unknown key(s) {', '.join(unknown)}; "
            f"use {', '.join(sorted(passwords.Answers.model_fields))}.",
            cli.BAD_ARGUMENTS,
        )
    try:
        passwords.Answers.model_validate(data, strict=True)
    except ValidationError as exc:
        group = str(exc.errors()[0]["loc"][0])
        wanted = {
            "overwrite": "must be true or false",
            "conflicts": "must map dashboard uuids to rename, take_over or skip",
        }.get(group, 'must map bundle paths to strings, e.g. {"databases/analytics.yaml": "…"}')
        raise cli.fail(f"--secrets-file {path}: {group!r} {wanted}.", cli.BAD_ARGUMENTS) from None
    return data


class InlineRunner:
    """Runs the task in a thread of this process (WORKER_MODE=thread)."""

    def __init__(self, task_id: int) -> None:
        self.task_id = task_id
        self.worker_id = new_worker_id("cli")
        self.thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            engine.run(self.task_id, self.worker_id)
        finally:
            connection.close()

    def ensure_running(self) -> None:
        """Start a run unless one is going: the engine skips a task that is not pending."""
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(
                target=self._run, name=f"cli-task-{self.task_id}", daemon=True
            )
            self.thread.start()

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Command(BaseCommand):
    help = (
        "Migrate dashboards from one environment to another, as the migration page does: "
        "the task shows in the history, its log is printed, and passwords it needs are asked "
        "for with hidden prompts (or read from --secrets-file). Exit 0 succeeded, 1 failed "
        "or cancelled, 2 bad arguments, 3 needs input without a terminal, 4 timed out."
    )
    stealth_options = ("stdin",)

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
        parser.add_argument(
            "--secrets-file",
            type=Path,
            metavar="FILE",
            help='answers as JSON, like the resume API: {"passwords": {"databases/x.yaml": '
            '"…"}, "ssh_tunnel_passwords": {…}, …}; read once, never stored or printed',
        )
        parser.add_argument(
            "--timeout",
            type=positive_seconds,
            metavar="SECONDS",
            help="cancel the task when it has not finished after this long (exit 4)",
        )
        parser.add_argument(
            "--user", help="the task's owner (default: the first superuser)", metavar="USERNAME"
        )
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
        self.stdin = options.get("stdin") or sys.stdin
        self.verbosity = options.get("verbosity", 1)
        owner = self._owner(options["user"])
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
        self.secrets = load_secrets(options["secrets_file"]) if options["secrets_file"] else {}
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
        self.runner = InlineRunner(task.pk) if settings.WORKER_MODE == "thread" else None
        # The log is printed from the table below; the server-log copy of each
        # entry would print every line twice.
        tasklog = logging.getLogger("tasks_app.tasklog")
        previous_level = tasklog.level
        tasklog.setLevel(logging.CRITICAL)
        try:
            status = self._follow(task, owner, options["timeout"])
        finally:
            if self.runner is not None:
                self.runner.wait(timeout=settings.TASK_HEARTBEAT_TIMEOUT)
            tasklog.setLevel(previous_level)
            self.secrets.clear()
        self._finish(task, status)

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

    def _owner(self, username: str | None) -> Any:
        User = get_user_model()
        if username:
            user = User.objects.filter(**{User.USERNAME_FIELD: username}, is_active=True).first()
            if user is None:
                raise cli.fail(f"--user: no active user {username!r}.", cli.BAD_ARGUMENTS)
            return user
        user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise cli.fail(
                "No superuser to own the task: create one (manage.py createsuperuser) or "
                "pass --user.",
                cli.BAD_ARGUMENTS,
            )
        return user

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

    # --- following the task -------------------------------------------------

    def _follow(self, task: Task, owner: Any, timeout: float | None) -> str:
        started = time.monotonic()
        last_entry, last_status = 0, ""
        pending_since: float | None = None
        try:
            while True:
                task.refresh_from_db(fields=["status", "error", "step"])
                changed = task.status != last_status
                # Read in the order things happened: a task starts, then logs;
                # it logs, then stops or asks.
                starts = task.status in (Status.PENDING, Status.RUNNING)
                if changed and starts:
                    self.stdout.write(f"Status: {task.get_status_display()}")
                last_entry = self._print_entries(task, last_entry)
                if changed and not starts:
                    self.stdout.write(f"Status: {task.get_status_display()}")
                last_status = task.status
                if task.status in FINISHED_STATUSES:
                    return task.status
                if task.status != Status.PENDING:
                    pending_since = None
                elif pending_since is None:
                    pending_since = time.monotonic()
                if self.runner is not None and task.status == Status.PENDING:
                    self.runner.ensure_running()
                if task.status == Status.AWAITING_INPUT and not (self.runner and self.runner.busy):
                    self._answer(task, owner)
                    continue
                if timeout is not None and time.monotonic() - started > timeout:
                    self.stderr.write(f"--timeout: not finished after {timeout:g} s; cancelling.")
                    if self._stop(task) == Status.SUCCESS:
                        return Status.SUCCESS  # its last step ended before the cancel could
                    raise cli.fail(
                        f"Task #{task.pk} timed out and is {self._status(task)}.", cli.TIMED_OUT
                    )
                if (
                    self.runner is None
                    and pending_since is not None
                    and time.monotonic() - pending_since > PENDING_HINT_AFTER
                ):
                    pending_since = float("inf")  # once
                    self.stderr.write(
                        "Still pending: with WORKER_MODE=external, is a `manage.py run_worker` "
                        "process running?"
                    )
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self.stderr.write("Interrupted: cancelling the task (Ctrl+C again to quit now)…")
            if self._stop(task) == Status.SUCCESS:
                return Status.SUCCESS
            raise cli.fail(f"Task #{task.pk} is {self._status(task)}.", cli.FAILED) from None

    def _print_entries(self, task: Task, after: int) -> int:
        for entry in TaskLogEntry.objects.filter(task=task, id__gt=after).order_by("id"):
            self.stdout.write(entry.as_text(clock=True, context=self.verbosity >= 2))
            after = entry.pk
        return after

    def _stop(self, task: Task) -> str:
        """Cancel the task and wait until it has stopped; the status it ended in.

        A running step is not interrupted: the task stops at the step's end.
        """
        with contextlib.suppress(engine.IllegalTransition):
            task.cancel()
        # Long enough for a step to end, or for a dead worker to be reaped.
        deadline = time.monotonic() + settings.SUPERSET_TIMEOUT + settings.TASK_HEARTBEAT_TIMEOUT
        while time.monotonic() < deadline:
            task.refresh_from_db(fields=["status"])
            if task.status in FINISHED_STATUSES:
                break
            if task.status != Status.RUNNING:
                # The step ended by asking for input (or requeued): cancel now.
                with contextlib.suppress(engine.IllegalTransition):
                    task.cancel()
                continue
            time.sleep(POLL_SECONDS)
        return task.status

    @staticmethod
    def _status(task: Task) -> str:
        task.refresh_from_db(fields=["status"])
        return task.get_status_display().lower()

    def _finish(self, task: Task, status: str) -> None:
        promotion = Promotion.objects.filter(task=task).first()
        if promotion is not None and promotion.report:
            self.stdout.write("Report:")
            for entry in promotion.report["assets"]:
                self.stdout.write(
                    f"  {entry['type'][:-1]:<9} {entry['name']:<40} {entry['outcome']}"
                    + (f"  {entry['url']}" if entry.get("url") else "")
                )
        if status == Status.SUCCESS:
            self.stdout.write(self.style.SUCCESS(f"Task #{task.pk} succeeded."))
            return
        reason = f": {task.error}" if task.error else "."
        raise cli.fail(f"Task #{task.pk} {status.lower()}{reason}", cli.FAILED)

    # --- input ---------------------------------------------------------------

    def _answer(self, task: Task, owner: Any) -> None:
        request = InputRequest.objects.filter(task=task, state=InputRequest.State.OPEN).first()
        if request is None:
            time.sleep(POLL_SECONDS)  # being answered elsewhere (the web page)
            return
        self.stdout.write(f"Task #{task.pk} needs input: {request.message}")
        from_file = passwords.parse_answers(request, self.secrets)
        answers: dict[str, Any] = {}
        missing = []
        for field in request.fields:
            fid = field_id(field)
            value = from_file.pop(fid, None)
            if value is not None:
                self._forget(fid)  # a file's answer is used once (a wrong one is not retried)
            elif cli.is_terminal(self.stdin):
                value = self._prompt(task, field)
            if value is None:
                missing.append(field)
            else:
                answers[fid] = value
        from_file.clear()
        if missing:
            if answers:  # what the file had is checked and kept; the rest stays asked
                self._submit(task, answers, owner)
            self._cannot_ask(task, missing)
        self._submit(task, answers, owner)

    def _submit(self, task: Task, answers: dict[str, Any], owner: Any) -> None:
        """Check the answers on the target, as the web prompt does."""
        try:
            answer_task(task, answers, user=owner)
        except engine.AnswerRejected as exc:
            for fid, error in exc.errors.items():
                self.stdout.write(f"  Not accepted, {fid.partition(':')[2]}: {error}")
            return
        except (engine.NotAwaitingInput, engine.AlreadyAnswered):
            self.stdout.write("The request was answered elsewhere.")
            return
        self.stdout.write("Answers accepted; the task resumes.")

    def _forget(self, fid: str) -> None:
        group, _, key = passwords.answer_key(fid).partition(".")
        if group == "overwrite":
            self.secrets.pop("overwrite", None)
        elif isinstance(self.secrets.get(group), dict):
            self.secrets[group].pop(key, None)

    def _prompt(self, task: Task, field: dict[str, Any]) -> Any:
        info = passwords.field_info(field)
        where = " ".join(part for part in (info.get("subject") or "", f"({field['key']})") if part)
        self.stdout.write(f"{field.get('label', field['type'])} for {where}")
        if info.get("detail"):
            self.stdout.write(f"  {info['detail']}")
        if field.get("error"):
            self.stdout.write(f"  Last answer: {field['error']}")
        try:
            if field.get("input") == "choice":
                return self._choose(field)
            if field["type"] == "overwrite":
                if cli.ask("Overwrite it? [y/N] ").strip().lower() in ("y", "yes"):
                    return True
                self.stdout.write("Not overwriting: cancelling the task.")
                task.cancel()
                return None
            if field.get("input") == "secret_multiline":
                return cli.ask_multiline_secret(
                    "Paste it (hidden), then press Enter on an empty line:"
                )
            while True:
                value = cli.ask_secret(f"{field.get('label', 'Secret')}: ")
                if value or field.get("allow_empty"):
                    return value
                self.stdout.write("  Required (Ctrl+D to stop).")
        except EOFError:
            return None

    def _choose(self, field: dict[str, Any]) -> str | None:
        options = field.get("options", [])
        for number, (_, text) in enumerate(options, 1):
            self.stdout.write(f"  {number}. {text}")
        while True:
            answer = cli.ask(f"Choose 1-{len(options)}: ").strip()
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return options[int(answer) - 1][0]
            self.stdout.write("  Type the number of a choice (Ctrl+D to stop).")

    def _cannot_ask(self, task: Task, missing: list[dict[str, Any]]) -> None:
        task.refresh_from_db(fields=["status"])
        if task.status == Status.CANCELLED:
            raise cli.fail(f"Task #{task.pk} cancelled.", cli.FAILED)
        request = InputRequest.objects.filter(task=task, state=InputRequest.State.OPEN).first()
        if request is not None:
            missing = request.fields  # what is still asked, after the file's answers
        needed = "\n".join(
            f"  {f.get('label', f['type'])}: {f['key']}"
            + (f" ({f['database_name']})" if f.get("database_name") else "")
            for f in missing
        )
        where = "no terminal to ask" if not cli.is_terminal(self.stdin) else "no answer given"
        raise cli.fail(
            f"Task #{task.pk} needs input and there is {where}:\n{needed}\n"
            "It keeps waiting: answer it in the web app (the task's 'Provide input'), or run "
            "again with --secrets-file FILE holding "
            '{"passwords": {"<key>": "<password>"}} (the same shape as the resume API).',
            cli.NEEDS_TERMINAL,
        )
