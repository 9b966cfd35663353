"""manage.py migrate_dashboards with the migration's steps faked (no Superset).

The real command against real Superset servers is in tests/e2e/test_commands.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from migrator import cli
from migrator.management.commands import migrate_dashboards
from migrator.pipeline import MIGRATION
from tasks_app import kinds, worker
from tasks_app.engine import NeedsInput, Step, TaskFailed
from tasks_app.models import Status, Task, TaskLogEntry

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
RIGHT, WRONG = "right-Secret-1", "wrong-Secret-2"
KEY = "databases/analytics.yaml"
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n"
# Dashboard ids choose what the fake import does.
OK, ASKS, FAILS, SLOW, ASKS_KEY = 1, 2, 3, 4, 5
accepted: set[int] = set()
answers_seen: list[dict] = []


def _export(ctx):
    ctx.log.info("Exported a bundle of 1,234 bytes")
    ctx.checkpoint["bundle"] = "bundles/fake.zip"


def _field(kind: str) -> dict:
    return {
        "key": KEY,
        "type": kind,
        "label": "SSH private key" if kind == "ssh_private_key" else "Database password",
        "input": "secret_multiline" if kind == "ssh_private_key" else "secret",
        "database_name": "analytics",
        "uri_masked": "postgresql://u:XXXXXXXXXX@db/analytics",
    }


def _import(ctx):
    ids = {d["id"] for d in ctx.task.params["dashboards"]}
    if FAILS in ids:
        raise TaskFailed("Target prod refused the bundle: no such database")
    if SLOW in ids:
        time.sleep(0.5)
        if ctx.task.params.get("overwrite"):
            return
        raise NeedsInput("prod needs input", {"fields": [_field("password")]})
    if (ASKS in ids or ASKS_KEY in ids) and ctx.task.pk not in accepted:
        kind = "ssh_private_key" if ASKS_KEY in ids else "password"
        raise NeedsInput("prod needs input", {"fields": [_field(kind)]})
    ctx.log.info("Imported into prod")


def _answer(task, request, given):
    answers_seen.append(dict(given))
    wanted = PEM if any(k.startswith("ssh_private_key") for k in given) else RIGHT
    errors = {
        fid: "Wrong: password authentication failed" for fid, v in given.items() if v != wanted
    }
    if not errors:
        accepted.add(task.pk)
    return errors


@pytest.fixture(autouse=True)
def _fake_migration(monkeypatch):
    accepted.clear()
    answers_seen.clear()
    fake = dataclasses.replace(
        MIGRATION,
        steps=(Step("export", _export), Step("import", _import, repeatable=False)),
        answer=_answer,
    )
    monkeypatch.setitem(kinds._KINDS, "migration", fake)
    monkeypatch.setattr(migrate_dashboards, "POLL_SECONDS", 0.02)


def migrate(*args: str) -> tuple[int, str]:
    """Run the command; (exit code, everything it printed)."""
    out = io.StringIO()
    try:
        call_command("migrate_dashboards", *args, stdout=out, stderr=out, stdin=io.StringIO(""))
    except CommandError as exc:
        out.write(f"\n{exc}")
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def _args(*dashboards: int, extra: tuple[str, ...] = ()) -> list[str]:
    args = ["--source", "dev", "--target", "prod"]
    for d in dashboards:
        args += ["--dashboard", str(d)]
    return [*args, *extra]


def _secrets(tmp_path: Path, body: dict) -> str:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_it_runs_the_same_task_as_the_page_and_prints_its_log(envs, staff):
    code, out = migrate(*_args(OK, 7, extra=("--overwrite",)))
    assert code == 0, out
    task = Task.objects.get()
    assert (task.kind, task.owner, task.status, task.attempts) == ("migration", staff, "SUCCESS", 1)
    assert task.params == {
        "source": envs[0].as_ref(),
        "target": envs[1].as_ref(),
        "dashboards": [{"id": 1, "title": ""}, {"id": 7, "title": ""}],
        "overwrite": True,
    }
    assert f"Task #{task.pk}: migrating dashboard(s) #1, #7 from dev to prod" in out
    for line in ("Status: Pending", "Exported a bundle", "Imported into prod", "Status: Succeeded"):
        assert line in out
    assert out.index("Exported a bundle") < out.index("Imported into prod")
    assert f"Task #{task.pk} succeeded." in out


def test_the_owner_can_be_chosen(envs, owner, staff):
    assert migrate(*_args(OK, extra=("--user", "owner")))[0] == 0
    assert Task.objects.get().owner == owner


def test_a_failed_task_exits_1_with_its_error(envs, staff):
    code, out = migrate(*_args(FAILS))
    assert code == cli.FAILED
    assert "Task #" in out and "failed: Target prod refused the bundle: no such database" in out
    assert Task.objects.get().status == Status.FAILED


def test_it_answers_from_the_secrets_file_and_keeps_nothing(envs, staff, tmp_path):
    path = _secrets(tmp_path, {"passwords": {KEY: RIGHT, "databases/other.yaml": "unused"}})
    code, out = migrate(*_args(ASKS, extra=("--secrets-file", path)))
    assert code == 0, out
    assert answers_seen == [{f"password:{KEY}": RIGHT}]  # only what was asked
    assert "Answers accepted; the task resumes." in out
    assert RIGHT not in out
    task = Task.objects.get()
    assert task.status == Status.SUCCESS
    assert not TaskLogEntry.objects.filter(message__contains=RIGHT).exists()
    assert RIGHT not in json.dumps(list(TaskLogEntry.objects.values("message", "context")))


def test_a_wrong_secret_from_the_file_without_a_terminal_exits_3(envs, staff, tmp_path):
    path = _secrets(tmp_path, {"passwords": {KEY: WRONG}})
    code, out = migrate(*_args(ASKS, extra=("--secrets-file", path)))
    assert code == cli.NEEDS_TERMINAL
    assert "Wrong: password authentication failed" in out
    assert answers_seen == [{f"password:{KEY}": WRONG}]  # tried once, not again
    task = Task.objects.get()
    assert task.status == Status.AWAITING_INPUT  # still waiting: the web can answer it
    assert WRONG not in out


def test_without_a_terminal_or_secrets_file_it_exits_3_and_the_task_waits(envs, staff):
    code, out = migrate(*_args(ASKS))
    assert code == cli.NEEDS_TERMINAL
    assert "needs input and there is no terminal to ask" in out
    assert f"Database password: {KEY} (analytics)" in out
    assert "--secrets-file" in out
    assert Task.objects.get().status == Status.AWAITING_INPUT


def test_at_a_terminal_it_asks_again_after_a_wrong_password(envs, staff, terminal):
    answers, prompts = terminal
    answers.extend([WRONG, RIGHT])
    code, out = migrate(*_args(ASKS))
    assert code == 0, out
    assert prompts == ["Database password: ", "Database password: "]
    assert "Database password for analytics (databases/analytics.yaml)" in out
    assert "postgresql://u:XXXXXXXXXX@db/analytics" in out
    assert "Last answer: Wrong: password authentication failed" in out
    assert WRONG not in out and RIGHT not in out
    assert Task.objects.get().status == Status.SUCCESS


def test_a_private_key_is_read_over_several_hidden_lines(envs, staff, terminal):
    answers, _ = terminal
    answers.extend(PEM.splitlines())
    code, out = migrate(*_args(ASKS_KEY))
    assert code == 0, out
    assert answers_seen == [{f"ssh_private_key:{KEY}": PEM}]
    assert "b3BlbnNzaC1rZXk" not in out


def test_giving_up_at_the_prompt_leaves_the_task_waiting(envs, staff, terminal):
    code, out = migrate(*_args(ASKS))  # Ctrl+D at once
    assert code == cli.NEEDS_TERMINAL
    assert "no answer given" in out
    assert Task.objects.get().status == Status.AWAITING_INPUT


def test_the_timeout_cancels_the_task_and_exits_4(envs, staff):
    code, out = migrate(*_args(SLOW, extra=("--timeout", "0.2")))
    assert code == cli.TIMED_OUT
    assert "not finished after 0.2 s; cancelling" in out
    assert "timed out and is cancelled" in out
    assert Task.objects.get().status == Status.CANCELLED


def test_a_task_whose_last_step_ends_despite_the_timeout_succeeded(envs, staff):
    code, out = migrate(*_args(SLOW, extra=("--timeout", "0.2", "--overwrite")))
    assert code == 0, out
    assert Task.objects.get().status == Status.SUCCESS


def test_with_external_workers_it_waits_for_them(envs, staff, settings):
    settings.WORKER_MODE = "external"
    pool = worker.TaskWorker("external-1", poll_interval=0.05)
    thread = threading.Thread(target=pool.run_forever, daemon=True)
    thread.start()
    try:
        code, out = migrate(*_args(OK))
    finally:
        pool.stop()
        thread.join(timeout=5)
    assert code == 0, out
    task = Task.objects.get()
    assert task.worker_id == "" and task.attempts == 1
    assert TaskLogEntry.objects.filter(task=task, message="Imported into prod").count() == 1


def test_with_external_workers_down_the_timeout_cancels_the_pending_task(envs, staff, settings):
    settings.WORKER_MODE = "external"
    code, _ = migrate(*_args(OK, extra=("--timeout", "0.2")))
    assert code == cli.TIMED_OUT
    assert Task.objects.get().status == Status.CANCELLED


def test_with_a_server_running_too_the_task_runs_once(envs, staff):
    server = worker.TaskWorker("server-embedded", poll_interval=0.01)
    thread = threading.Thread(target=server.run_forever, daemon=True)
    thread.start()
    try:
        code, out = migrate(*_args(OK))
    finally:
        server.stop()
        thread.join(timeout=5)
    assert code == 0, out
    task = Task.objects.get()
    assert task.attempts == 1
    assert TaskLogEntry.objects.filter(task=task, message__startswith="Exported").count() == 1


def test_a_dry_run_checks_everything_and_starts_nothing(envs, staff, monkeypatch):
    class Client:
        def get_dashboards(self, ids):
            return [{"id": i, "title": f"Dash {i}"} for i in ids if i != 404]

    class Borrow:
        def __init__(self, env):
            pass

        def __enter__(self):
            return Client()

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(migrate_dashboards.sessions, "borrow", Borrow)
    monkeypatch.setattr(
        migrate_dashboards, "check_connection", lambda env: {"ok": True, "message": "OK"}
    )
    code, out = migrate(*_args(1, 2, extra=("--dry-run", "--overwrite")))
    assert code == 0, out
    assert "#1 Dash 1" in out and "#2 Dash 2" in out
    assert "would migrate 2 dashboard(s) from dev to prod (overwriting what exists)" in out
    code, out = migrate(*_args(1, 404, extra=("--dry-run",)))
    assert code == cli.FAILED and "source dev has no dashboard #404" in out
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*_args(1)[:2], "--target", "nope", "--dashboard", "1"], "--target: No environment"),
        (["--source", "dev", "--target", "dev", "--dashboard", "1"], "different from the source"),
        (_args(1, extra=("--user", "ghost")), "--user: no active user 'ghost'"),
    ],
)
def test_bad_arguments_exit_2(envs, staff, args, message):
    code, out = migrate(*args)
    assert code == cli.BAD_ARGUMENTS
    assert message in out
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must hold a JSON object"),
        ('{"password": {}}', "unknown key(s) password"),
        ('{"passwords": {"databases/a.yaml": 42}}', "'passwords' must map bundle paths"),
        ('{"overwrite": "yes"}', "'overwrite' must be true or false"),
    ],
)
def test_a_bad_secrets_file_exits_2_without_echoing_it(envs, staff, tmp_path, body, message):
    path = tmp_path / "secrets.json"
    path.write_text(body)
    code, out = migrate(*_args(1, extra=("--secrets-file", str(path))))
    assert code == cli.BAD_ARGUMENTS
    assert message in out
    assert not Task.objects.exists()


def test_a_missing_secrets_file_exits_2(envs, staff, tmp_path):
    code, out = migrate(*_args(1, extra=("--secrets-file", str(tmp_path / "nope.json"))))
    assert code == cli.BAD_ARGUMENTS and "No such file" in out


def test_without_any_superuser_it_asks_for_user(envs, owner):
    code, out = migrate(*_args(1))
    assert code == cli.BAD_ARGUMENTS and "pass --user" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "dev", "--target", "prod"], "the following arguments are required"),
        ([*_args()[:4], "--dashboard", "abc"], "'abc' is not a dashboard id"),
        ([*_args()[:4], "--dashboard", "0"], "ids are positive"),
        (_args(1, extra=("--timeout", "-3")), "must be a positive number"),
    ],
)
def test_malformed_arguments_are_refused(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("migrate_dashboards", *args)


def test_from_a_shell_bad_arguments_exit_2_and_no_terminal_exits_3(manage):
    assert manage("migrate", "-v0").returncode == 0
    bad = manage("migrate_dashboards", "--source", "a", "--target", "b", "--dashboard", "x")
    assert bad.returncode == 2 and "'x' is not a dashboard id" in bad.stderr
    unknown = manage("migrate_dashboards", "--source", "a", "--target", "b", "--dashboard", "1")
    assert unknown.returncode == 2 and "No superuser" in unknown.stderr
