"""Typed failures of talking to a Superset, each carrying a sentence a person can act on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrator.superset.problems import ImportProblems

BODY_LIMIT = 2048
REDACTED = "********"
# NUL and the other C0 controls (but tab and newline) in what a Superset says: PostgreSQL
# refuses NUL in text, and none of them means anything in a sentence.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """``text`` with control characters (NUL…) replaced by U+FFFD."""
    return _CONTROLS.sub("\ufffd", text)


# Shorter fragments would blank out ordinary words in Superset's messages.
_MIN_SECRET_LENGTH = 3


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (longest first, so a secret containing another goes whole)."""
    for secret in sorted(
        {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH},
        key=len,
        reverse=True,
    ):
        text = text.replace(secret, REDACTED)
    return text


class SupersetError(Exception):
    """Base of every failure raised by ``migrator.superset``.

    ``str(error)`` is ``message``; ``body`` keeps (at most 2 KB of) what Superset answered,
    for logs and for a person triaging a task.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | None = None,
        url: str | None = None,
    ) -> None:
        message = printable(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = printable(body[:BODY_LIMIT]) if body is not None else None
        self.url = url

    def __str__(self) -> str:
        return self.message


class InvalidBundle(SupersetError):
    """The file is not a Superset export bundle we can work with."""


class BundleTooLarge(InvalidBundle):
    """A bundle (or an export on its way) goes past one of the limits (``bundle.Limits``):
    its bytes, its number of files, or the size of one YAML file."""


class YAMLAliasRefused(InvalidBundle):
    """A YAML file of the bundle uses an anchor or an alias (``&a`` / ``*a``). Superset's
    exports never do, and aliases can expand a few hundred bytes into gigabytes."""


class SupersetUnreachable(SupersetError):
    """No HTTP answer at all: connection refused, unknown host, timeout, connection dropped."""


class SupersetTimeout(SupersetUnreachable):
    """A call did not end in time: no byte for the idle timeout, or not finished (connect,
    headers and the whole body) within the deadline of one call."""


class SupersetTLSError(SupersetError):
    """The TLS handshake failed (untrusted certificate, wrong host name, protocol mismatch)."""


class NotASuperset(SupersetError):
    """Something answers at the URL, but not Superset's REST API."""


class AuthenticationFailed(SupersetError):
    """Superset refused the credentials or the authentication provider."""


class CSRFRejected(SupersetError):
    """Superset refused a write for a missing or invalid CSRF token, even with a fresh one."""


class SupersetAPIError(SupersetError):
    """Any other answer that is not a success.

    ``error_type`` and ``extra`` come from Superset's ``{"errors": [...]}`` envelope when
    there is one; ``extra`` is an empty dict otherwise.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | None = None,
        url: str | None = None,
        error_type: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body, url=url)
        self.error_type = error_type
        self.extra = extra if extra is not None else {}


class ImportRejected(SupersetAPIError):
    """An import answered 422; ``problems`` says which bundle files need what."""

    def __init__(
        self,
        message: str,
        *,
        problems: ImportProblems,
        status: int | None = None,
        body: str | None = None,
        url: str | None = None,
        error_type: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            body=body,
            url=url,
            error_type=error_type,
            extra=extra,
        )
        self.problems = problems


class ConnectionTestFailed(SupersetAPIError):
    """``test_connection`` did not answer 200 (6.1 says 400, 4.1 says 500 for the same failure)."""


def parse_error_body(text: str | None) -> tuple[str | None, str | None, dict[str, Any]]:
    """Read Superset's three error shapes into ``(message, error_type, extra)``.

    Superset uses ``{"errors": [{message, error_type, level, extra}]}``, Flask-AppBuilder
    ``{"message": str | dict}`` and flask-jwt-extended ``{"msg": str}``.
    """
    if not text:
        return None, None, {}
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return None, None, {}
    if not isinstance(data, dict):
        return None, None, {}
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        messages = [str(e["message"]) for e in errors if isinstance(e, dict) and e.get("message")]
        extra = first.get("extra")
        error_type = first.get("error_type")
        return (
            "; ".join(messages) or None,
            str(error_type) if error_type else None,
            extra if isinstance(extra, dict) else {},
        )
    for key in ("message", "msg"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value, None, {}
        if isinstance(value, dict | list) and value:
            return flatten_messages(value), None, {}
    return None, None, {}


def flatten_messages(value: Any, prefix: str = "") -> str:
    """Turn marshmallow-style ``{"field": ["msg"]}`` trees into ``field: msg; other: msg``."""
    parts: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list) and all(isinstance(item, str) for item in node):
            text = " ".join(node)
            parts.append(f"{path}: {text}" if path else text)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}.{index}" if path else str(index))
        else:
            parts.append(f"{path}: {node}" if path else str(node))

    walk(value, prefix)
    return "; ".join(parts)


_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def html_title(text: str | None) -> str | None:
    if not text:
        return None
    match = _TITLE_RE.search(text)
    if not match:
        return None
    title = " ".join(match.group(1).split())
    return title[:200] or None
