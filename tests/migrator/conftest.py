"""Fixtures of the migrator's tests: registered environments and a person at a terminal."""

from __future__ import annotations

import pytest

from migrator import cli
from migrator.models import Environment


@pytest.fixture
def env(db) -> Environment:
    """One registered environment, "prod", with its (write-only) password."""
    return Environment.objects.create(
        name="prod", url="https://prod.example", username="svc", password="Very-Secret-pw1"
    )


@pytest.fixture
def envs(db) -> list[Environment]:
    """A source and a target: "dev" and "prod", at http://{name}.example."""
    return [
        Environment.objects.create(
            name=n, url=f"http://{n}.example", username="u", password="hunter2-secret"
        )
        for n in ("dev", "prod")
    ]


@pytest.fixture
def terminal(monkeypatch) -> tuple[list[str], list[str]]:
    """Someone at a terminal: ``(answers, prompts)``. ``answers`` are what they type
    into hidden prompts, in order; once none is left, the prompt gets end of file
    (Ctrl+D). ``prompts`` records every prompt shown."""
    answers: list[str] = []
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        if not answers:
            raise EOFError
        return answers.pop(0)

    monkeypatch.setattr(cli, "is_terminal", lambda stream=None: True)
    monkeypatch.setattr(cli, "ask_secret", ask)
    monkeypatch.setattr("getpass.getpass", ask)
    return answers, prompts
