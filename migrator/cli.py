"""Terminal helpers for the management commands: hidden prompts, exit codes.

Secrets are read with ``getpass`` (not echoed, not in the shell history) or
from standard input; never from a command-line argument, which other users
of the machine can see in the process list.
"""

from __future__ import annotations

import getpass
import sys
from typing import TextIO

from django.core.management.base import CommandError

# Exit codes shared by the commands (README, "Operations").
OK, FAILED, BAD_ARGUMENTS, NEEDS_TERMINAL, TIMED_OUT = 0, 1, 2, 3, 4


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
