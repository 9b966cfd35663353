"""Terminal helpers for the management commands: hidden prompts, exit codes, and
following a task from the terminal (``TaskCommand``: what ``migrate_dashboards`` and
``rollback_migration`` share).

Secrets are read with ``getpass`` (not echoed, not in the shell history) or
from standard input; never from a command-line argument, which other users
of the machine can see in the process list.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from pydantic import ValidationError

from migrator import passwords
from migrator.models import Promotion
from tasks_app import engine
from tasks_app.engine import field_id, get_kind
from tasks_app.models import FINISHED_STATUSES, InputRequest, Status, Task, TaskLogEntry
from tasks_app.prompts import answer_task
from tasks_app.worker import new_worker_id

# Exit codes shared by the commands (README, "Operations").
OK, FAILED, BAD_ARGUMENTS, NEEDS_TERMINAL, TIMED_OUT = 0, 1, 2, 3, 4

POLL_SECONDS = 0.2
PENDING_HINT_AFTER = 10.0


def fail(message: str, code: int) -> CommandError:
    """A CommandError that exits with ``code`` (manage.py prints it on stderr)."""
    return CommandError(message, returncode=code)


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = sys.stdin if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def ask_secret(prompt: str) -> str:
    return getpass.getpass(prompt)


def ask_multiline_secret(prompt: str) -> str:
    """A hidden multi-line value (a PEM private key): lines until its END line or an empty one."""
    print(prompt, file=sys.stderr)
    lines: list[str] = []
    while True:
        line = getpass.getpass("")
        if not line.strip():
            if lines:
                break
            continue
        lines.append(line.rstrip("\r\n"))
        if line.startswith("-----END "):
            break
    return "\n".join(lines) + "\n"


def ask(prompt: str) -> str:
    """A visible answer (yes/no)."""
    return input(prompt)


def read_stdin_secret(stream: TextIO | None = None) -> str:
    """The whole of standard input less one trailing newline (``echo pw | …``)."""
    text = (sys.stdin if stream is None else stream).read()
    return text.removesuffix("\n").removesuffix("\r")


# --- arguments shared by the commands that start a task -------------------------------


def positive_id(what: str) -> Callable[[str], int]:
    """An argparse type: a positive integer id of ``what`` ("dashboard", "task")."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a {what} id") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"{number} is not a {what} id (ids are positive)")
        return number

    return parse


def positive_seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number of seconds")
    return number


def load_secrets(path: Path) -> dict[str, Any]:
    """The answers file, shaped like the resume API's body; checked, never echoed."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise fail(f"--secrets-file {path}: {exc.strerror}.", BAD_ARGUMENTS) from None
    except (ValueError, UnicodeDecodeError):
        raise fail(f"--secrets-file {path}: not valid JSON.", BAD_ARGUMENTS) from None
    if not isinstance(data, dict):
        raise fail(f"--secrets-file {path}: must hold a JSON object.", BAD_ARGUMENTS)
    unknown = sorted(set(data) - set(passwords.Answers.model_fields))
    if unknown:
        raise fail(
            f"--secrets-file {path}: unknown key(s) {', '.join(unknown)}; "
            f"use {', '.join(sorted(passwords.Answers.model_fields))}.",
            BAD_ARGUMENTS,
        )
    try:
        passwords.Answers.model_validate(data, strict=True)
    except ValidationError as exc:
        group = str(exc.errors()[0]["loc"][0])
        wanted = {
            "overwrite": "must be true or false",
            "conflicts": "must map dashboard uuids to rename, take_over or skip",
        }.get(group, 'must map bundle paths to strings, e.g. {"databases/analytics.yaml": "…"}')
        raise fail(f"--secrets-file {path}: {group!r} {wanted}.", BAD_ARGUMENTS) from None
    return data


# --- following a task from the terminal -----------------------------------------------


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


class TaskCommand(BaseCommand):
    """A command that starts a task and follows it to its end, as ``migrate_dashboards``
    and ``rollback_migration`` do: it prints the task's status changes and log as they
    happen, asks for what the task needs (hidden prompts, or ``--secrets-file``), cancels
    it on Ctrl+C or ``--timeout``, prints its report and exits with its outcome.

    Who runs the task: with WORKER_MODE=thread (the embedded default) the command runs
    it itself, in a thread of its own process, so it works whether or not the web server
    is up; if the server's workers are up too, whichever claims the task first runs it
    (the claim is atomic) and the other does nothing. With WORKER_MODE=external the
    ``run_worker`` processes run it.
    """

    stealth_options = ("stdin",)
    # How often the task is read again (the log, the status).
    poll_seconds = POLL_SECONDS

    def add_task_arguments(self, parser: CommandParser) -> None:
        """--secrets-file, --timeout and --user."""
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

    def prepare(self, options: dict[str, Any]) -> None:
        self.stdin = options.get("stdin") or sys.stdin
        self.verbosity = options.get("verbosity", 1)
        self.secrets: dict[str, Any] = {}

    def read_secrets(self, path: Path | None) -> None:
        self.secrets = load_secrets(path) if path else {}

    def owner(self, username: str | None) -> Any:
        """The task's owner: ``--user``, or else the first superuser."""
        User = get_user_model()
        if username:
            user = User.objects.filter(**{User.USERNAME_FIELD: username}, is_active=True).first()
            if user is None:
                raise fail(f"--user: no active user {username!r}.", BAD_ARGUMENTS)
            return user
        user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise fail(
                "No superuser to own the task: create one (manage.py createsuperuser) or "
                "pass --user.",
                BAD_ARGUMENTS,
            )
        return user

    def follow(self, task: Task, owner: Any, timeout: float | None) -> None:
        """Follow ``task`` to its end, print its report; exit as it ended."""
        self.runner = InlineRunner(task.pk) if settings.WORKER_MODE == "thread" else None
        # The log is printed from the table below; the server-log copy of each
        # entry would print every line twice.
        tasklog = logging.getLogger("tasks_app.tasklog")
        previous_level = tasklog.level
        tasklog.setLevel(logging.CRITICAL)
        try:
            status = self._follow(task, owner, timeout)
        finally:
            if self.runner is not None:
                self.runner.wait(timeout=settings.TASK_HEARTBEAT_TIMEOUT)
            tasklog.setLevel(previous_level)
            self.secrets.clear()
        self._finish(task, status)

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
                    raise fail(f"Task #{task.pk} timed out and is {self._status(task)}.", TIMED_OUT)
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
                time.sleep(self.poll_seconds)
        except KeyboardInterrupt:
            self.stderr.write("Interrupted: cancelling the task (Ctrl+C again to quit now)…")
            if self._stop(task) == Status.SUCCESS:
                return Status.SUCCESS
            raise fail(f"Task #{task.pk} is {self._status(task)}.", FAILED) from None

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
            time.sleep(self.poll_seconds)
        return task.status

    @staticmethod
    def _status(task: Task) -> str:
        task.refresh_from_db(fields=["status"])
        return task.get_status_display().lower()

    def _finish(self, task: Task, status: str) -> None:
        """The task's report, asset by asset (a migration's or a rollback's), and its end."""
        promotion = Promotion.objects.filter(task=task).first()
        if promotion is not None and promotion.report:
            self.stdout.write("Report:")
            for entry in promotion.report["assets"]:
                self.stdout.write(
                    f"  {entry['type'][:-1]:<9} {entry['name']:<40} {entry['outcome']}"
                    + (f"  {entry['url']}" if entry.get("url") else "")
                )
            for line in promotion.report.get("adapted") or []:
                self.stdout.write(f"  For the target's Superset release: {line}")
            for line in promotion.report.get("not_carried") or []:
                self.stdout.write(f"  Not carried: {line}")
        if status == Status.SUCCESS:
            self.stdout.write(self.style.SUCCESS(f"Task #{task.pk} succeeded."))
            return
        reason = f": {task.error}" if task.error else "."
        raise fail(f"Task #{task.pk} {status.lower()}{reason}", FAILED)

    # --- input ---------------------------------------------------------------

    def _answer(self, task: Task, owner: Any) -> None:
        request = InputRequest.objects.filter(task=task, state=InputRequest.State.OPEN).first()
        if request is None:
            time.sleep(self.poll_seconds)  # being answered elsewhere (the web page)
            return
        self.stdout.write(f"Task #{task.pk} needs input: {request.message}")
        from_file = get_kind(task.kind).parse_answers(request, self.secrets)
        answers: dict[str, Any] = {}
        missing = []
        for field in request.fields:
            fid = field_id(field)
            value = from_file.pop(fid, None)
            if value is not None:
                self._forget(task, fid)  # a file's answer is used once (a wrong one is not retried)
            elif is_terminal(self.stdin):
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

    def _forget(self, task: Task, fid: str) -> None:
        group, _, key = get_kind(task.kind).answer_key(fid).partition(".")
        if group == "overwrite":
            self.secrets.pop("overwrite", None)
        elif isinstance(self.secrets.get(group), dict):
            self.secrets[group].pop(key, None)

    def _prompt(self, task: Task, field: dict[str, Any]) -> Any:
        info = get_kind(task.kind).field_info(field)
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
                if ask("Overwrite it? [y/N] ").strip().lower() in ("y", "yes"):
                    return True
                self.stdout.write("Not overwriting: cancelling the task.")
                task.cancel()
                return None
            if field.get("input") == "secret_multiline":
                return ask_multiline_secret("Paste it (hidden), then press Enter on an empty line:")
            while True:
                value = ask_secret(f"{field.get('label', 'Secret')}: ")
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
            answer = ask(f"Choose 1-{len(options)}: ").strip()
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return options[int(answer) - 1][0]
            self.stdout.write("  Type the number of a choice (Ctrl+D to stop).")

    def _cannot_ask(self, task: Task, missing: list[dict[str, Any]]) -> None:
        task.refresh_from_db(fields=["status"])
        if task.status == Status.CANCELLED:
            raise fail(f"Task #{task.pk} cancelled.", FAILED)
        request = InputRequest.objects.filter(task=task, state=InputRequest.State.OPEN).first()
        if request is not None:
            missing = request.fields  # what is still asked, after the file's answers
        needed = "\n".join(
            f"  {f.get('label', f['type'])}: {f['key']}"
            + (f" ({f['database_name']})" if f.get("database_name") else "")
            for f in missing
        )
        where = "no terminal to ask" if not is_terminal(self.stdin) else "no answer given"
        raise fail(
            f"Task #{task.pk} needs input and there is {where}:\n{needed}\n"
            "It keeps waiting: answer it in the web app (the task's 'Provide input'), or run "
            "again with --secrets-file FILE holding "
            '{"passwords": {"<key>": "<password>"}} (the same shape as the resume API).',
            NEEDS_TERMINAL,
        )
