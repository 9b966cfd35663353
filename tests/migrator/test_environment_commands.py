"""add_environment, list_environments, test_environment."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from migrator import cli
from migrator.models import Environment

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
SECRET = "S3cret-pw!"


def _run(name: str, *args: str, stdin: str | None = None) -> str:
    out = io.StringIO()
    kwargs = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command(name, *args, stdout=out, stderr=out, **kwargs)
    return out.getvalue()


def _exit_code(name: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
    with pytest.raises(CommandError) as raised:
        _run(name, *args, stdin=stdin)
    return raised.value.returncode, str(raised.value)


@pytest.fixture
def connection_checks(monkeypatch):
    checked: list[str] = []

    def check(env):
        checked.append(env.name)
        if env.password == SECRET:
            return {"ok": True, "reason": "ok", "message": "Connection OK"}
        return {"ok": False, "reason": "credentials", "message": "Wrong credentials: 401"}

    for module in ("add_environment", "test_environment"):
        monkeypatch.setattr(f"migrator.management.commands.{module}.check_connection", check)
    return checked


# --- add_environment ---------------------------------------------------------


def test_add_reads_the_password_from_stdin(connection_checks):
    out = _run(
        "add_environment",
        "prod",
        "--url",
        "https://prod.example/",
        "--username",
        "svc",
        "--password-stdin",
        "--test",
        stdin=SECRET + "\n",
    )
    env = Environment.objects.get(name="prod")
    assert (env.url, env.username, env.password, env.provider) == (
        "https://prod.example",
        "svc",
        SECRET,
        "db",
    )
    assert "Added environment 'prod': https://prod.example as svc (db)" in out
    assert "Connection OK" in out
    assert SECRET not in out


def test_add_asks_for_the_password_with_a_hidden_prompt(terminal):
    answers, prompts = terminal
    answers.append(SECRET)
    _run(
        "add_environment",
        "dev",
        "--url",
        "http://dev.example",
        "--username",
        "admin",
        "--provider",
        "ldap",
        "--no-verify-tls",
    )
    env = Environment.objects.get(name="dev")
    assert (env.password, env.provider, env.verify_tls) == (SECRET, "ldap", False)
    assert prompts == ["Password of admin: "]


def test_add_without_a_terminal_or_stdin_password_exits_3():
    code, message = _exit_code(
        "add_environment", "dev", "--url", "http://dev.example", "--username", "u", stdin=""
    )  # stdin="": a pipe with nothing in it, no terminal
    assert code == cli.NEEDS_TERMINAL
    assert "--password-stdin" in message
    assert not Environment.objects.exists()


def test_add_dry_run_saves_nothing():
    out = _run(
        "add_environment",
        "dev",
        "--url",
        "http://dev.example",
        "--username",
        "u",
        "--password-stdin",
        "--dry-run",
        stdin="pw",
    )
    assert "Dry run: would have added environment 'dev'" in out
    assert not Environment.objects.exists()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["dev", "--url", "ftp://dev", "--username", "u", "--password-stdin"], "pw", "url:"),
        (["dev", "--username", "u", "--password-stdin"], "pw", "Give --url"),
        (["dev", "--url", "http://dev", "--username", "u", "--password-stdin"], "", "no password"),
        (["nope", "--update", "--password-stdin"], "pw", "No environment named 'nope'"),
        (["x" * 101, "--url", "http://d", "--username", "u", "--password-stdin"], "pw", "name:"),
    ],
)
def test_add_refuses_bad_arguments_with_exit_2(args, stdin, message):
    code, text = _exit_code("add_environment", *args, stdin=stdin)
    assert code == cli.BAD_ARGUMENTS
    assert message in text


def test_add_refuses_a_name_taken_unless_updating():
    Environment.objects.create(name="prod", url="http://old", username="u", password="old-pw")
    code, text = _exit_code(
        "add_environment", "prod", "--url", "http://x", "--username", "u", "--password-stdin"
    )
    assert code == cli.BAD_ARGUMENTS and "--update" in text
    # An update without a password (no terminal, no stdin flag) keeps it, while
    # the address stays (tests/migrator/test_environment_access.py: when it changes).
    _run("add_environment", "prod", "--update", "--username", "u", stdin="")
    env = Environment.objects.get(name="prod")
    assert (env.url, env.username, env.password) == ("http://old", "u", "old-pw")
    _run("add_environment", "prod", "--update", "--password-stdin", stdin="new-pw\n")
    assert Environment.objects.get(name="prod").password == "new-pw"


def test_add_test_failure_exits_1_but_keeps_the_environment(connection_checks):
    code, text = _exit_code(
        "add_environment",
        "prod",
        "--url",
        "http://prod.example",
        "--username",
        "u",
        "--password-stdin",
        "--test",
        stdin="wrong",
    )
    assert code == cli.FAILED and "connection test failed" in text
    assert Environment.objects.filter(name="prod").exists()


def test_the_password_is_never_an_argument():
    with pytest.raises(CommandError, match="unrecognized arguments"):
        _run("add_environment", "p", "--url", "http://p", "--username", "u", "--password", "x")


# --- list_environments -------------------------------------------------------


def test_list_shows_environments_without_passwords():
    Environment.objects.create(name="prod", url="https://p", username="svc", password=SECRET)
    Environment.objects.create(
        name="dev", url="http://d", username="me", password=SECRET, verify_tls=False
    )
    table = _run("list_environments")
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "NAME", "URL", "USER", "LOGIN", "VERIFY-TLS"]
    assert lines[1].split()[1:] == ["dev", "http://d", "me", "db", "no"]
    assert SECRET not in table
    rows = json.loads(_run("list_environments", "--json"))
    assert [r["name"] for r in rows] == ["dev", "prod"]
    assert all("password" not in r for r in rows)


def test_list_says_when_there_is_none():
    assert "No environments yet" in _run("list_environments")
    assert json.loads(_run("list_environments", "--json")) == []


# --- test_environment --------------------------------------------------------


def test_test_reports_each_environment_and_exits_by_the_worst(connection_checks):
    Environment.objects.create(name="good", url="http://g", username="u", password=SECRET)
    Environment.objects.create(name="bad", url="http://b", username="u", password="nope")
    assert "OK   good (http://g): Connection OK" in _run("test_environment", "good")
    code, text = _exit_code("test_environment")  # all of them
    assert code == cli.FAILED and "bad" in text
    assert connection_checks == ["good", "bad", "good"]
    results = json.loads(_run("test_environment", "--json", "good"))
    assert results == [
        {"name": "good", "url": "http://g", "ok": True, "reason": "ok", "message": "Connection OK"}
    ]


def test_test_by_id_and_unknown_names(connection_checks):
    env = Environment.objects.create(name="good", url="http://g", username="u", password=SECRET)
    assert "OK   good" in _run("test_environment", str(env.pk))
    code, text = _exit_code("test_environment", "good", "nope")
    assert code == cli.BAD_ARGUMENTS and "'nope'" in text
    assert connection_checks == ["good"]  # nothing tested when a name is wrong


def test_test_with_no_environment_exits_2():
    assert _exit_code("test_environment")[0] == cli.BAD_ARGUMENTS


# --- as an operator runs them ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_from_a_shell_with_a_pipe_and_without_a_terminal(manage):
    assert manage("migrate", "-v0").returncode == 0
    added = manage(
        "add_environment", "prod", "--url", "http://127.0.0.1:9", "--username", "svc",
        "--password-stdin", stdin=SECRET + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    no_terminal = manage("add_environment", "dev", "--url", "http://d", "--username", "u")
    assert no_terminal.returncode == 3
    assert "No terminal to ask for the password" in no_terminal.stderr
    bad = manage("add_environment", "dev", "--provider", "oauth")
    assert bad.returncode == 2 and "invalid choice: 'oauth'" in bad.stderr
    listed = manage("list_environments")
    assert "prod" in listed.stdout and SECRET not in listed.stdout + listed.stderr
    # Port 9 (discard) on loopback: refused at once, so the test fails cleanly.
    tested = manage("test_environment", "prod")
    assert tested.returncode == 1
    assert "FAIL prod (http://127.0.0.1:9): Unreachable" in tested.stdout
