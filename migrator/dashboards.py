"""Reading a source's dashboards for the picker, and checking an environment."""

from __future__ import annotations

from typing import Any

from migrator import sessions
from migrator.models import Environment, PasswordNotBound
from migrator.superset import versions
from migrator.superset.errors import (
    AuthenticationFailed,
    NotASuperset,
    SupersetError,
    SupersetTLSError,
    SupersetUnreachable,
)

PICKER_LIMIT = 500


def pick(source: Environment, search: str, selected: list[int]) -> dict[str, Any]:
    with sessions.borrow(source) as client:
        found = client.list_dashboards(search or None, limit=PICKER_LIMIT + 1)
        known = {d["id"] for d in found}
        missing = [i for i in selected if i not in known]
        chosen = client.get_dashboards(missing) if missing else []
    truncated = len(found) > PICKER_LIMIT
    return {
        "dashboards": found[:PICKER_LIMIT],
        "chosen_elsewhere": chosen,
        "truncated": truncated,
        "limit": PICKER_LIMIT,
    }


def check_connection(env: Environment) -> dict[str, Any]:
    """Log in for real and say plainly what is wrong, if anything."""
    try:
        client = env.client()
    except PasswordNotBound as exc:
        return {"ok": False, "reason": "password_needed", "message": exc.message}
    try:
        client.test_connection()
        release = client.release()
    except AuthenticationFailed as exc:
        return {
            "ok": False,
            "reason": "credentials",
            "message": f"Wrong credentials: {exc.message}",
        }
    except SupersetTLSError as exc:
        return {"ok": False, "reason": "tls", "message": f"TLS error: {exc.message}"}
    except SupersetUnreachable as exc:
        return {"ok": False, "reason": "unreachable", "message": f"Unreachable: {exc.message}"}
    except NotASuperset as exc:
        return {"ok": False, "reason": "not_superset", "message": f"Not a Superset: {exc.message}"}
    except SupersetError as exc:
        return {"ok": False, "reason": "error", "message": exc.message}
    finally:
        client.close()
    env.saw_release(release)
    return {
        "ok": True,
        "reason": "ok",
        "message": f"Connection OK: logged in to {describe_release(release)}'s API.",
        "version": release or "",
    }


def describe_release(release: str | None) -> str:
    """How a page names a server's release: "Superset 6.1.0", or why not known."""
    if not release:
        return "Superset (it does not say which release)"
    if versions.family(release) is None:
        return f"Superset {release} (a release this app was not tested with)"
    return f"Superset {release}"
