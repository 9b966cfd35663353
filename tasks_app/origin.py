"""WebSockets only from the app's own pages: the Origin must be this very site.

Channels' ``AllowedHostsOriginValidator`` compares the Origin's host with
ALLOWED_HOSTS and ignores scheme and port, so another service on the same
machine (``http://127.0.0.1:9000``) could open a socket with the user's cookie
and read live rows and logs. Here the Origin must equal the scheme, host and
port the browser used to reach the app (the Host header, and https when the
socket is wss or, with BEHIND_TLS_PROXY, when the proxy says so), or be one of
CSRF_TRUSTED_ORIGINS, like Django's own check of a form's Origin.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import validate_host


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def allowed(scope: dict[str, Any]) -> bool:
    origin = _header(scope, b"origin").lower().rstrip("/")
    host = _header(scope, b"host").lower()
    if not origin or not host or not validate_host(_hostname(host), settings.ALLOWED_HOSTS):
        return False
    if origin in {o.lower().rstrip("/") for o in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    secure = scope.get("scheme") == "wss" or (
        getattr(settings, "SECURE_PROXY_SSL_HEADER", None) is not None
        and _header(scope, b"x-forwarded-proto").lower() == "https"
    )
    return origin == f"{'https' if secure else 'http'}://{host}"


def _hostname(host: str) -> str:
    """``127.0.0.1:8000`` -> ``127.0.0.1``; ``[::1]:8000`` -> ``[::1]``."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SameOriginValidator:
    """ASGI middleware: a WebSocket whose Origin is not this site is refused (403)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
