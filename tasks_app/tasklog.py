"""Writing a task's log entries, with secrets redacted before storage.

A logging filter alone cannot keep a password out of a log *table*, so every
entry passes through ``redact`` here, where it is written: the message and
the context alike, at any depth.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import quote, quote_plus
from uuid import UUID

from tasks_app.models import LogLevel, Task, TaskLogEntry
from tasks_app.signals import log_written

REDACTED = "[redacted]"
# Superset's own mask for a password it will not export: not a secret, and
# worth keeping visible (it says "the password was left out").
MASK = "XXXXXXXXXX"
# Shorter secrets would blank out ordinary words inside text; a value that *is*
# a known secret is redacted whatever its length.
MIN_SECRET_LENGTH = 3
MAX_DEPTH = 20

# Keys whose value is a secret, whatever it looks like. Matched against the key
# in lower case with "-", "." and spaces turned into "_": "X-Auth-Token",
# "ssh_tunnel_private_key_password", "masked_encrypted_extra", "db_pass".
_SECRET_KEY = re.compile(
    r"passw|passphrase|(^|_)pwd($|_)|(^|_)pass($|_)|secret|token|private_?key|api_?key"
    r"|access_?key|credential|authori[sz]ation|cookie|session_?id|encrypted_extra"
    r"|(^|_)auth$|signature|(^|_)sig($|_)"
)
# user:password@ in a URI. The user may be empty (redis://:pw@host) and a
# password typed by a person may hold "@" or "/" unencoded, so the host is
# taken after the *last* "@" before the query: hiding too much beats a leak.
_URI_PASSWORD = re.compile(
    r"(?P<prefix>\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^\s?#\"'<>]+)"
    r"(?=@[^\s@/?#\"'<>]*(?:[/?#\s\"'<>]|$))",
    re.I,
)
# password=..., "token": "...", api_key: ... inside free text (an echoed
# payload, a query string, a connection string).
_KEY_VALUE = re.compile(
    r"(?P<key>[\w.\-]*(?:passw|passphrase|passwd|secret|token|private_?key|api_?key|access_?key)"
    r"[\w.\-]*)(?P<sep>[\"']?\s*[:=]\s*)"
    r"(?:(?P<q>[\"'])(?P<qv>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<v>(?![\[{])[^\s\"',;&}\]]+))",
    re.I,
)
_PEM = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]*PRIVATE KEY)-----.*?(?:-----END (?P=kind)-----|$)", re.S
)
# "Bearer eyJhbGciOi…", "Basic dXNlcjpwdw==": the credential has a digit or a
# symbol, which keeps prose ("Basic authentication failed") readable.
_BEARER = re.compile(
    r"\b(?P<scheme>Bearer|Basic)\s+(?=[A-Za-z._~+/=\-]*[0-9._~+/=\-])[A-Za-z0-9._~+/=\-]{8,}"
)

logger = logging.getLogger("tasks_app.tasklog")


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def is_secret_key(key: Any) -> bool:
    normal = re.sub(r"[\s.\-]+", "_", _text(key).strip().lower())
    return bool(_SECRET_KEY.search(normal))


def _variants(secret: str) -> set[str]:
    """How a secret can appear inside text: as is, URL-encoded, JSON-escaped."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _secrets(secrets: Iterable[Any]) -> tuple[frozenset[str], tuple[str, ...]]:
    """(every known secret as a string, their text forms longest first).

    Longest first, so a secret that contains another goes whole instead of
    leaving its tail behind.
    """
    values = frozenset(_text(s) for s in secrets if s not in (None, "", b""))
    forms: set[str] = set()
    for value in values:
        forms |= _variants(value)
    return values, tuple(sorted(forms, key=len, reverse=True))


def _redact_text(text: str, exact: frozenset[str], forms: tuple[str, ...]) -> str:
    if text in exact:
        return REDACTED
    for form in forms:
        text = text.replace(form, REDACTED)
    text = _PEM.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)

    def _uri(match: re.Match[str]) -> str:
        pw = match.group("pw")
        return match.group(0) if pw in (MASK, REDACTED) else match.group("prefix") + REDACTED

    text = _URI_PASSWORD.sub(_uri, text)

    def _pair(match: re.Match[str]) -> str:
        value = match.group("qv") if match.group("q") else match.group("v")
        if value in ("", MASK, REDACTED):
            return match.group(0)
        quote_ = match.group("q") or ""
        return f"{match.group('key')}{match.group('sep')}{quote_}{REDACTED}{quote_}"

    return _KEY_VALUE.sub(_pair, text)


def _everything(value: Any, exact: frozenset[str], forms: tuple[str, ...], depth: int) -> Any:
    """The value of a secret-looking key: keep its shape (which keys, how many
    items) and booleans, hide every other leaf."""
    if depth > MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            _redact_text(_text(k), exact, forms): _everything(v, exact, forms, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_everything(v, exact, forms, depth + 1) for v in value]
    if value is None or isinstance(value, bool) or value in ("", MASK):
        return value
    return REDACTED


def _redact(value: Any, exact: frozenset[str], forms: tuple[str, ...], depth: int) -> Any:
    if depth > MAX_DEPTH:
        return "[too deep]"
    if isinstance(value, str):
        return _redact_text(value, exact, forms)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return REDACTED if str(value) in exact else value
    if isinstance(value, float):
        if not math.isfinite(value):  # JSON (and PostgreSQL's jsonb) has no NaN/Infinity
            return str(value)
        return REDACTED if str(value) in exact else value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = _redact_text(_text(k), exact, forms)
            secret = is_secret_key(k) and not (v is None or isinstance(v, bool) or v == "")
            out[key] = (
                _everything(v, exact, forms, depth + 1)
                if secret
                else _redact(v, exact, forms, depth + 1)
            )
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_redact(v, exact, forms, depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _redact_text(_text(value), exact, forms)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    # Anything else (an exception, a path, an object): its text, redacted.
    return _redact_text(str(value), exact, forms)


def redact(value: Any, secrets: Iterable[Any] = ()) -> Any:
    """``value`` with every secret replaced by ``[redacted]``, ready for a JSON column.

    Known secret values are replaced wherever they appear (also URL-encoded
    or JSON-escaped inside text); values under secret-looking keys
    (password, token, private_key…) are hidden whatever they are; passwords
    in URIs, ``key=value`` pairs, bearer tokens and PEM private keys are
    hidden inside any text. bytes become text; anything not JSON becomes text.
    """
    exact, forms = _secrets(secrets)
    return _redact(value, exact, forms, 0)


class TaskLog:
    """``log.info("Exported bundle", size=1234)`` → one redacted entry."""

    def __init__(self, task: Task, secrets: Iterable[str] = ()) -> None:
        self.task = task
        self.secrets: set[str] = {s for s in secrets if s}

    def add_secret(self, value: str | None) -> None:
        if value:
            self.secrets.add(value)

    def write(self, level: int, message: Any, **context: Any) -> TaskLogEntry:
        text = redact(message, self.secrets)
        if not isinstance(text, str):
            text = str(text)
        entry = TaskLogEntry.objects.create(
            task=self.task, level=level, message=text, context=redact(context, self.secrets)
        )
        logger.log(level, "task %s: %s", self.task.pk, entry.message)
        log_written.send(sender=TaskLogEntry, entry=entry)  # published at commit
        return entry

    def debug(self, message: str, **context: Any) -> TaskLogEntry:
        return self.write(LogLevel.DEBUG, message, **context)

    def info(self, message: str, **context: Any) -> TaskLogEntry:
        return self.write(LogLevel.INFO, message, **context)

    def warning(self, message: str, **context: Any) -> TaskLogEntry:
        return self.write(LogLevel.WARNING, message, **context)

    def error(self, message: str, **context: Any) -> TaskLogEntry:
        return self.write(LogLevel.ERROR, message, **context)
