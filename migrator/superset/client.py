"""A Superset REST client for migrations, shaped by how Superset 6.1 and 4.1 really answer.

See SUPERSET_API.md for the observations behind the choices here: ``Accept`` is always
``application/json`` (with ``*/*`` Superset turns import 422s into HTML 500 pages), writes
never follow redirects (a missing CSRF token is a 302 to the login page that would
otherwise end as a 200), and errors are read from all three shapes Superset uses.

A server cannot hold a call for longer than its deadline (``Limits.call_deadline``), nor
make us read more than we keep: every call (its retries, a fresh login and CSRF token
included) has one deadline for connecting, sending, the headers and the whole body, and a
body is read only up to what is kept of it (an error's first 1 MB, a JSON answer's first
16 MB, an export up to ``Limits.max_bundle_bytes``). The sockets are waited on in slices:
between two slices the deadline, the idle timeout and, inside ``cancellable(check)``,
``check`` (a task's Cancel) are looked at, so a call stuck on a server that trickles or
never answers ends when any of them says so.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import copy
import http.client
import io
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import islice
from types import TracebackType
from typing import IO, Any, Literal, Self
from urllib.parse import quote, urlsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
from urllib3.util.wait import wait_for_read, wait_for_write

from migrator.superset.bundle import DEFAULT_LIMITS, Limits, size_text, split_uri_password
from migrator.superset.errors import (
    AuthenticationFailed,
    BundleTooLarge,
    ConnectionTestFailed,
    CSRFRejected,
    ImportRejected,
    InvalidBundle,
    NotASuperset,
    SupersetAPIError,
    SupersetError,
    SupersetTimeout,
    SupersetTLSError,
    SupersetUnreachable,
    flatten_messages,
    html_title,
    parse_error_body,
    redact,
)
from migrator.superset.problems import parse_import_error
from migrator.superset.rison import RisonValue
from migrator.superset.rison import dumps as rison_dumps

logger = logging.getLogger("migrator.superset")

JSON = "application/json"
LOGIN_PATH = "/api/v1/security/login"
REFRESH_PATH = "/api/v1/security/refresh"
CSRF_PATH = "/api/v1/security/csrf_token/"
# Served with the app's static files by every release (4.1 to 6.1): {"version": "6.1.0", ...}.
VERSION_PATH = "/static/version_info.json"
# Superset's FAB_API_MAX_PAGE_SIZE default; larger page sizes are capped silently.
MAX_PAGE_SIZE = 100
DASHBOARD_COLUMNS = ["id", "uuid", "dashboard_title", "slug"]

# What is read of an answer: an error's start (its message is in the first few KB; an
# import's 422 lists every refused file), and a JSON answer (a page of 100 rows is tens of KB).
ERROR_BODY_BYTES = 1024 * 1024
JSON_BODY_BYTES = 16 * 1024 * 1024
# How often a call waiting on a socket looks at the cancel check (seconds).
CANCEL_POLL = 1.0
# The first bytes of a ZIP: a local file header, or the end record of an empty archive.
_ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")

BundleSource = str | os.PathLike[str] | IO[bytes]
Timeout = float | tuple[float, float]
RetryPolicy = Literal["none", "connect", "full"]


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"A Superset URL must start with http:// or https:// and name a host, not {url!r}."
        )
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would end up in every log line and error message.
        raise ValueError(
            "Put the Superset username and password in their own fields, not in the URL."
        )
    if parts.query or parts.fragment:
        raise ValueError(f"A Superset URL cannot have a query or fragment: {url!r}.")
    return url


# --- stopping a call: deadline, idle timeout, cancel --------------------------------------


class _CancelScope:
    """``cancellable``'s check, shared by the thread that opened the scope and the helper
    threads it hands the scope to (``contextvars.copy_context``).

    Only the opening thread calls ``check`` (a task's check reads its database row on that
    thread's connection); once it raised, every thread of the scope raises the same.
    """

    def __init__(self, check: Callable[[], None]) -> None:
        self.check = check
        self.owner = threading.get_ident()
        self.stopped: BaseException | None = None

    def poll(self) -> None:
        if self.stopped is not None:
            raise copy.copy(self.stopped)
        if threading.get_ident() != self.owner:
            return
        try:
            self.check()
        except BaseException as exc:
            self.stopped = exc
            raise


_scope: contextvars.ContextVar[_CancelScope | None] = contextvars.ContextVar(
    "superset_cancel_scope", default=None
)


@contextmanager
def cancellable(check: Callable[[], None]) -> Iterator[None]:
    """Calls to Superset made in this block call ``check`` about once a second while they
    wait or read, and stop with whatever it raises (a task's ``check_cancelled``).

    Helper threads take part when they run in a copy of this context
    (``pool.submit(contextvars.copy_context().run, fn, …)``); wait for them with ``wait``.
    """
    token = _scope.set(_CancelScope(check))
    try:
        yield
    finally:
        _scope.reset(token)


def wait[T](future: concurrent.futures.Future[T]) -> T:
    """``future.result()``, looking at the cancel check meanwhile (inside ``cancellable``)."""
    scope = _scope.get()
    if scope is None:
        return future.result()
    while True:
        try:
            return future.result(timeout=CANCEL_POLL)
        except concurrent.futures.TimeoutError:
            scope.poll()


_local = threading.local()


class _Guard:
    """The clock of one call: its deadline, its idle timeout (no byte for that long), and
    the cancel scope it was made in. Sockets of this thread wait through it (``wait``)."""

    def __init__(self, client: SupersetClient) -> None:
        now = time.monotonic()
        self.client = client
        self.deadline = client.limits.call_deadline
        self.expires = now + self.deadline
        _, self.idle = _timeouts(client.timeout)
        self.progress = now
        self.scope = _scope.get()
        self.polled = now
        self.what = "the call"

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def moved(self) -> None:
        """Bytes went or came: the idle timeout starts again."""
        self.progress = time.monotonic()

    def check(self) -> None:
        now = time.monotonic()
        if self.scope is not None and now - self.polled >= CANCEL_POLL:
            self.polled = now
            self.scope.poll()
        if now >= self.expires:
            raise self.timed_out()
        if now - self.progress >= self.idle:
            raise SupersetTimeout(
                f"Superset at {self.client.url} is unreachable: no answer to {self.what} "
                f"within {self.idle:g} s.",
                url=self.client.url,
            )

    def timed_out(self) -> SupersetTimeout:
        limits = self.client.limits
        return SupersetTimeout(
            f"Superset at {self.client.url} did not finish answering {self.what} within "
            f"{self.deadline:g} s, the deadline of one call{limits.hint('call_deadline')}.",
            url=self.client.url,
        )

    def slice(self) -> float:
        """How long one wait on a socket may last before the clocks are looked at again."""
        now = time.monotonic()
        longest = min(self.expires - now, self.idle - (now - self.progress))
        if self.scope is not None:
            longest = min(longest, CANCEL_POLL)
        return max(longest, 0.001)

    def wait(self, sock: Any, *, write: bool = False) -> None:
        """Until ``sock`` can be read (written), in slices; raises when the call must stop."""
        while True:
            self.check()
            if not write and getattr(sock, "pending", None) and sock.pending():
                return  # TLS bytes already decrypted
            ready = (wait_for_write if write else wait_for_read)(sock, timeout=self.slice())
            if ready:
                return

    def timeouts(self, configured: Timeout) -> tuple[float, float]:
        """requests' (connect, read) timeouts, never past the deadline."""
        connect, read = _timeouts(configured)
        remaining = max(self.remaining(), 0.001)
        return min(connect, remaining), min(read, remaining)


def _guard() -> _Guard | None:
    return getattr(_local, "guard", None)


def _timeouts(timeout: Timeout) -> tuple[float, float]:
    return timeout if isinstance(timeout, tuple) else (timeout, timeout)


class _GuardedReader(io.RawIOBase):
    """What http.client reads an answer from (status line, headers, body): the socket,
    waited on through the call's guard before each read."""

    def __init__(self, sock: Any) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # holds a reference, as http.client's own

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:  # type: ignore[override]
        guard = _guard()
        if guard is not None:
            guard.wait(self._sock)
            self._sock.settimeout(max(min(guard.remaining(), guard.idle), 0.001))
        count = self._raw.readinto(buffer)
        if guard is not None and count:
            guard.moved()
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


class _SocketReading:
    """The socket as ``http.client.HTTPResponse`` sees it: only ``makefile`` is used."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_GuardedReader(self._sock))


class _GuardedHTTPResponse(http.client.HTTPResponse):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(_SocketReading(sock), *args, **kwargs)  # type: ignore[arg-type]


class _GuardedSending:
    """urllib3's connections, sending through the call's guard and answering through
    ``_GuardedHTTPResponse``."""

    response_class = _GuardedHTTPResponse
    sock: Any

    def connect(self) -> None:
        guard = _guard()
        if guard is not None:
            guard.check()
        super().connect()  # type: ignore[misc]

    def send(self, data: Any) -> None:
        guard = _guard()
        if guard is not None and self.sock is not None:
            guard.wait(self.sock, write=True)
            self.sock.settimeout(max(min(guard.remaining(), guard.idle), 0.001))
        super().send(data)  # type: ignore[misc]
        if guard is not None:
            guard.moved()


class _HTTPConnection(_GuardedSending, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_GuardedSending, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _GuardedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with the connections above (SOCKS proxies keep their own)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager


def _session() -> requests.Session:
    session = requests.Session()
    adapter = _GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class SupersetClient:
    """One logged-in user on one Superset. Not thread-safe: use one client per thread."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        provider: str = "db",
        *,
        timeout: Timeout = (5, 120),
        verify: bool = True,
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.url = normalise_url(url)
        self.username = username
        self._password = password
        self.provider = provider
        self.timeout = timeout
        self.verify = verify
        self.retries = max(0, retries)
        self.backoff = backoff
        self.limits = limits
        self._owns_session = session is None
        self.session = session if session is not None else _session()
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        self._csrf_token: str | None = None

    def __repr__(self) -> str:
        return f"SupersetClient(url={self.url!r}, username={self.username!r}, provider={self.provider!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._access_token = self._refresh_token = self._csrf_token = None
        if self._owns_session:
            self.session.close()

    # --- authentication ---------------------------------------------------------------

    def login(self) -> None:
        with self._call():
            self._login()

    def _login(self) -> None:
        payload = {
            "username": self.username,
            "password": self._password,
            "provider": self.provider,
            "refresh": True,
        }
        response = self._send(
            "POST",
            LOGIN_PATH,
            headers={"Accept": JSON},
            json=payload,
            allow_redirects=False,
            retry="connect",
        )
        with response:
            data = _json_or_none(response)
            status = response.status_code
            if (
                status == 200
                and isinstance(data, dict)
                and isinstance(data.get("access_token"), str)
            ):
                self._access_token = data["access_token"]
                refresh = data.get("refresh_token")
                self._refresh_token = refresh if isinstance(refresh, str) else None
                return
            if not_superset := self._login_not_superset(response, data):
                raise not_superset
            message, _, _ = parse_error_body(response.text)
            secrets = [self._password]
            if status == 401:
                raise AuthenticationFailed(
                    redact(
                        f"Superset at {self.url} refused the login of {self.username!r}: wrong username or "
                        f"password (Superset said: {message or 'Not authorized'}).",
                        secrets,
                    ),
                    status=status,
                    body=redact(response.text, secrets),
                    url=response.url,
                )
            provider_error = data.get("message") if isinstance(data, dict) else None
            if status == 400 and isinstance(provider_error, dict) and "provider" in provider_error:
                raise AuthenticationFailed(
                    f"Superset at {self.url} does not accept the authentication provider "
                    f"{self.provider!r}: {flatten_messages(provider_error['provider'])}.",
                    status=status,
                    body=redact(response.text, secrets),
                    url=response.url,
                )
            raise self._error(response, "logging in", secrets)

    def _login_not_superset(self, response: requests.Response, data: Any) -> NotASuperset | None:
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            message = (
                f"{self.url} redirects Superset's login API to {location or 'another address'}: "
                "use the address Superset itself is served from (https:// or another path?)."
            )
        elif status == 404:
            message = (
                f"{self.url} answers, but not like Superset: {LOGIN_PATH} is not found (HTTP 404). "
                "Check that the URL is Superset's root address."
            )
        elif data is None:
            title = html_title(response.text)
            what = (
                f"an HTML page ({title!r})"
                if title
                else f"{response.headers.get('Content-Type') or 'no'} content"
            )
            message = (
                f"{self.url} answers Superset's login API with {what} and HTTP {status} instead of JSON: "
                "it does not look like Superset. Check the URL."
            )
        elif status == 200:
            message = f"{self.url} answered the login without an access token: it does not look like Superset."
        else:
            return None
        return NotASuperset(message, status=status, body=response.text, url=response.url)

    def _refresh(self) -> bool:
        if not self._refresh_token:
            return False
        try:
            response = self._send(
                "POST",
                REFRESH_PATH,
                headers={
                    "Accept": JSON,
                    "Authorization": f"Bearer {self._refresh_token}",
                },
                allow_redirects=False,
                retry="connect",
            )
        except SupersetUnreachable:
            return False
        with response:
            data = _json_or_none(response)
            if (
                response.status_code == 200
                and isinstance(data, dict)
                and isinstance(data.get("access_token"), str)
            ):
                self._access_token = data["access_token"]
                return True
        logger.debug("token refresh refused (%s), logging in again", response.status_code)
        return False

    def _reauthenticate(self) -> None:
        if not self._refresh():
            self._refresh_token = None
            self._login()

    @property
    def can_write(self) -> bool:
        """Has this session its CSRF token already (a write needs no call to fetch it)?"""
        return self._csrf_token is not None

    def csrf(self) -> str:
        """The CSRF token, fetched once; its session cookie stays in ``self.session``."""
        if self._csrf_token is None:
            data = self._get_json(CSRF_PATH, "getting a CSRF token")
            token = data.get("result")
            if not isinstance(token, str) or not token:
                raise NotASuperset(
                    f"{self.url} answered {CSRF_PATH} without a token: it does not look like Superset.",
                    url=self.url + CSRF_PATH,
                )
            self._csrf_token = token
        return self._csrf_token

    def test_connection(self) -> dict[str, Any]:
        """Log in and make one cheap authenticated call; raise the typed error when either fails."""
        self.login()
        query = {"columns": ["id"], "page": 0, "page_size": 1}
        data = self._get_json(f"/api/v1/dashboard/?q={_q(query)}", "listing dashboards")
        return {"user": self.username, "dashboard_count": data.get("count")}

    def release(self) -> str | None:
        """The Superset release this server runs (``"6.1.0"``), from the version file it
        serves with its static files; None when it does not say (a proxy may serve the
        static files elsewhere): the caller then knows less, and says so."""
        response = self._api("GET", VERSION_PATH)
        with response:
            data = _json_or_none(response) if response.status_code == 200 else None
        version = data.get("version") if isinstance(data, dict) else None
        if isinstance(version, str) and re.fullmatch(r"\d+\.\d+(\.\d+)?\S{0,40}", version):
            return version
        return None

    # --- dashboards ------------------------------------------------------------------

    def iter_dashboards(
        self, search: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        query: dict[str, Any] = {"columns": DASHBOARD_COLUMNS}
        if search:
            query["filters"] = [{"col": "dashboard_title", "opr": "title_or_slug", "value": search}]
        query |= {"order_column": "dashboard_title", "order_direction": "asc"}
        for row in self._iter_rows("/api/v1/dashboard/", query, page_size, "listing dashboards"):
            yield _dashboard(row)

    def list_dashboards(
        self, search: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        page_size = MAX_PAGE_SIZE if limit is None else max(1, min(limit, MAX_PAGE_SIZE))
        return list(islice(self.iter_dashboards(search, page_size), limit))

    def get_dashboards(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """The rows of the given dashboards, in the order asked; unknown ids are left out."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(wanted), MAX_PAGE_SIZE):
            chunk = wanted[start : start + MAX_PAGE_SIZE]
            query = {
                "columns": DASHBOARD_COLUMNS,
                "filters": [{"col": "id", "opr": "in", "value": chunk}],
                "order_column": "dashboard_title",
                "order_direction": "asc",
            }
            for row in self._iter_rows(
                "/api/v1/dashboard/", query, MAX_PAGE_SIZE, "looking up dashboards"
            ):
                found[row["id"]] = _dashboard(row)
        return [found[i] for i in wanted if i in found]

    def export_dashboards(
        self, ids: Sequence[int], dest: IO[bytes], chunk_size: int = 65536
    ) -> int:
        """Stream the export ZIP of ``ids`` into ``dest``; return the number of bytes written."""
        return self.export_assets("dashboard", ids, dest, chunk_size)

    def export_assets(
        self, resource: str, ids: Sequence[int], dest: IO[bytes], chunk_size: int = 65536
    ) -> int:
        """Stream the export ZIP of ``resource`` (dashboard, chart, dataset) ``ids`` into
        ``dest``; return the number of bytes written."""
        if not ids:
            raise ValueError(f"Nothing to export: no {resource} ids given.")
        id_list = [int(i) for i in ids]
        names = ", ".join(map(str, id_list))
        with self._call() as guard:
            response = self._api("GET", f"/api/v1/{resource}/export/?q={_q(id_list)}", stream=True)
            with response:
                return self._save_export(response, guard, resource, names, dest, chunk_size)

    def _save_export(
        self,
        response: requests.Response,
        guard: _Guard,
        resource: str,
        names: str,
        dest: IO[bytes],
        chunk_size: int,
    ) -> int:
        action = f"exporting {resource}(s) {names}"
        if response.status_code == 404:
            message, _, _ = parse_error_body(response.text)
            raise SupersetAPIError(
                f"{_capitalise(resource)}(s) {names}: at least one was not found on {self.url}"
                f" (the export answered 404: {message or 'Not found'}); it may have been deleted.",
                status=404,
                body=response.text,
                url=response.url,
            )
        if not 200 <= response.status_code < 300:
            raise self._error(response, action)
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("application/zip"):
            self._read_body(response, 2048, cut=True)
            raise SupersetAPIError(
                f"Superset answered {action} with {content_type or 'no content type'} instead of a ZIP file.",
                status=response.status_code,
                body=response.text,
                url=response.url,
            )
        limit = self.limits.max_bundle_bytes
        too_large = BundleTooLarge(
            f"The export of {resource}(s) {names} from {self.url} is larger than "
            f"{size_text(limit)}{self.limits.hint('max_bundle_bytes')}: it was stopped there "
            "and nothing of it is kept.",
            url=response.url,
        )
        declared = _content_length(response)
        if declared is not None and declared > limit:
            raise too_large
        written = 0
        start = b""
        try:
            for chunk in response.iter_content(chunk_size):
                guard.check()
                if len(start) < 4:
                    start += chunk[: 4 - len(start)]
                    if len(start) >= 4 and not start.startswith(_ZIP_STARTS):
                        raise InvalidBundle(
                            f"Superset answered {action} with something that is not a ZIP file "
                            f"(it starts with {start!r}), although it said {content_type}.",
                            status=response.status_code,
                            url=response.url,
                        )
                written += len(chunk)
                if written > limit:
                    raise too_large
                dest.write(chunk)
        except requests.RequestException as exc:
            raise self._broken(
                exc, guard, f"downloading the export after {written} bytes", response.url
            ) from exc
        if written < 4:
            raise InvalidBundle(
                f"Superset answered {action} with {written} bytes: not a ZIP file.",
                status=response.status_code,
                url=response.url,
            )
        return written

    def import_assets(self, resource: str, bundle: BundleSource, *, overwrite: bool) -> None:
        """Import a bundle whose metadata.yaml names ``resource``'s type (dashboard:
        Dashboard, chart: Slice, dataset: SqlaTable, database: Database). With
        ``overwrite``, only that type is replaced; what it refers to is created when
        missing and otherwise left alone (SUPERSET_API.md, "Per-type import facts")."""
        self._import(
            f"/api/v1/{resource}/import/",
            f"importing the {resource} bundle",
            bundle,
            overwrite=overwrite,
            secrets={},
        )

    # --- inventory ------------------------------------------------------------------

    def list_databases(self) -> list[dict[str, Any]]:
        query = {"columns": ["id", "uuid", "database_name", "backend"]}
        query |= {"order_column": "database_name", "order_direction": "asc"}
        return list(self._iter_rows("/api/v1/database/", query, MAX_PAGE_SIZE, "listing databases"))

    def find_rows(
        self, resource: str, column: str, values: Iterable[str], columns: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The ``resource`` rows whose ``column`` is one of ``values``.

        Superset 4.1 and 5.0 refuse a filter on ``uuid`` (400 "Filter column: uuid not
        allowed to filter"): there every row is read and filtered here instead.
        """
        wanted = list(dict.fromkeys(str(v) for v in values))
        if not wanted:
            return []
        action = f"listing {resource}s"
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), MAX_PAGE_SIZE):
            chunk = wanted[start : start + MAX_PAGE_SIZE]
            query = {
                "columns": list(columns),
                "filters": [{"col": column, "opr": "in", "value": chunk}],
            }
            try:
                found += self._iter_rows(f"/api/v1/{resource}/", query, MAX_PAGE_SIZE, action)
            except SupersetAPIError as exc:
                if exc.status != 400:
                    raise
                query = {"columns": list(columns)}
                rows = self._iter_rows(f"/api/v1/{resource}/", query, MAX_PAGE_SIZE, action)
                keep = set(wanted)
                return [row for row in rows if str(row.get(column)) in keep]
        return found

    def import_dashboards(
        self,
        bundle: BundleSource,
        *,
        overwrite: bool,
        passwords: Mapping[str, str] | None = None,
        ssh_tunnel_passwords: Mapping[str, str] | None = None,
        ssh_tunnel_private_keys: Mapping[str, str] | None = None,
        ssh_tunnel_private_key_passwords: Mapping[str, str] | None = None,
    ) -> None:
        self._import(
            "/api/v1/dashboard/import/",
            "importing the dashboard bundle",
            bundle,
            overwrite=overwrite,
            secrets={
                "passwords": passwords,
                "ssh_tunnel_passwords": ssh_tunnel_passwords,
                "ssh_tunnel_private_keys": ssh_tunnel_private_keys,
                "ssh_tunnel_private_key_passwords": ssh_tunnel_private_key_passwords,
            },
        )

    # --- databases ------------------------------------------------------------------

    def import_databases(
        self,
        bundle: BundleSource,
        *,
        overwrite: bool,
        passwords: Mapping[str, str] | None = None,
        ssh_tunnel_passwords: Mapping[str, str] | None = None,
        ssh_tunnel_private_keys: Mapping[str, str] | None = None,
        ssh_tunnel_private_key_passwords: Mapping[str, str] | None = None,
    ) -> None:
        """Import a ``type: Database`` bundle: the one call that replaces a stored password."""
        self._import(
            "/api/v1/database/import/",
            "importing the database bundle",
            bundle,
            overwrite=overwrite,
            secrets={
                "passwords": passwords,
                "ssh_tunnel_passwords": ssh_tunnel_passwords,
                "ssh_tunnel_private_keys": ssh_tunnel_private_keys,
                "ssh_tunnel_private_key_passwords": ssh_tunnel_private_key_passwords,
            },
        )

    def find_database(self, database_uuid: str) -> dict[str, Any] | None:
        # The uuid filter works on /database/ in 4.1 as well (not on dashboards, charts, datasets).
        query = {"filters": [{"col": "uuid", "opr": "eq", "value": str(database_uuid)}]}
        data = self._get_json(
            f"/api/v1/database/?q={_q(query)}", f"looking up database {database_uuid}"
        )
        rows = data.get("result")
        return rows[0] if isinstance(rows, list) and rows else None

    def get_database_connection(self, database_id: int) -> dict[str, Any]:
        """``sqlalchemy_uri`` (password masked), ``parameters``, ``ssh_tunnel`` (6.1) of a database."""
        data = self._get_json(
            f"/api/v1/database/{int(database_id)}/connection",
            f"reading the connection of database {database_id}",
        )
        result = data.get("result")
        if not isinstance(result, dict):
            raise SupersetAPIError(
                f"Superset answered the connection of database {database_id} without a result."
            )
        return result

    def test_database_connection(
        self, database_name: str | None, sqlalchemy_uri: str, **extra: Any
    ) -> None:
        """Ask Superset to connect. With ``database_name`` and the masked URI, Superset uses
        the stored password, so no secret travels (or lands in Superset's action log)."""
        payload: dict[str, Any] = {"sqlalchemy_uri": sqlalchemy_uri, **extra}
        if database_name is not None:
            payload["database_name"] = database_name
        secrets = [*_uri_secrets(sqlalchemy_uri), *_nested_secrets(extra)]
        action = f"testing the connection to {database_name or 'the database'}"
        response = self._api("POST", "/api/v1/database/test_connection/", json_body=payload)
        with response:
            if response.status_code == 200:
                return
            if response.status_code in (401, 403):
                raise self._error(response, action, secrets)
            message, error_type, error_extra = parse_error_body(response.text)
            if message is None:
                message = self._error(response, action, secrets).message
            # 6.1 says 400 and 4.1 says 500 for the same failure: only 200 is success.
            raise ConnectionTestFailed(
                redact(
                    f"Superset could not connect to {database_name or 'the database'}: {message}",
                    secrets,
                ),
                status=response.status_code,
                body=redact(response.text, secrets),
                url=response.url,
                error_type=error_type,
                extra=error_extra,
            )

    def delete_database(self, database_id: int) -> None:
        response = self._api("DELETE", f"/api/v1/database/{int(database_id)}")
        with response:
            if not 200 <= response.status_code < 300:
                raise self._error(response, f"deleting database {database_id}")

    def count_datasets_on(self, database_id: int) -> int:
        """How many datasets use this connection."""
        query = {
            "columns": ["id"],
            "filters": [{"col": "database", "opr": "rel_o_m", "value": int(database_id)}],
            "page": 0,
            "page_size": 1,
        }
        data = self._get_json(f"/api/v1/dataset/?q={_q(query)}", "counting datasets")
        count = data.get("count")
        if not isinstance(count, int):
            raise NotASuperset(f"{self.url} answered counting datasets without a count.")
        return count

    def delete_assets(self, resource: str, ids: Sequence[int]) -> None:
        """Delete ``resource`` (dashboard, chart, dataset) ``ids`` in one call (Superset's
        bulk delete); nothing when ``ids`` is empty."""
        id_list = [int(i) for i in ids]
        if not id_list:
            return
        response = self._api("DELETE", f"/api/v1/{resource}/?q={_q(id_list)}")
        with response:
            if not 200 <= response.status_code < 300:
                raise self._error(
                    response, f"deleting {resource}(s) {', '.join(map(str, id_list))}"
                )

    # --- plumbing -------------------------------------------------------------------

    def _import(
        self,
        path: str,
        action: str,
        bundle: BundleSource,
        *,
        overwrite: bool,
        secrets: Mapping[str, Mapping[str, str] | None],
    ) -> None:
        maps = {name: dict(values or {}) for name, values in secrets.items()}
        secret_values = [
            v for values in maps.values() for v in values.values() if isinstance(v, str)
        ]
        fields = [("overwrite", "true" if overwrite else "false")]
        fields += [(name, json.dumps(values)) for name, values in maps.items()]
        with _open_bundle(bundle) as (fileobj, filename):
            start = fileobj.tell()
            fileobj.seek(0, io.SEEK_END)
            size = fileobj.tell() - start

            def body() -> _MultipartBody:
                # A retry (fresh token, fresh CSRF) sends the file again from its start.
                fileobj.seek(start)
                return _MultipartBody(fields, "formData", filename, fileobj, size)

            response = self._api("POST", path, multipart=body)
        with response:
            status = response.status_code
            if 200 <= status < 300:
                if _json_or_none(response) is None:
                    raise self._error(response, action, secret_values)
                return
            data = _json_or_none(response)
            if status == 422 and isinstance(data, dict):
                problems = parse_import_error(data)
                _, error_type, extra = parse_error_body(response.text)
                raise ImportRejected(
                    redact(
                        f"Superset refused the import: {problems.describe()}",
                        secret_values,
                    ),
                    problems=problems,
                    status=status,
                    body=redact(response.text, secret_values),
                    url=response.url,
                    error_type=error_type,
                    extra=extra,
                )
            raise self._error(response, action, secret_values)

    def _iter_rows(
        self, path: str, query: Mapping[str, Any], page_size: int, action: str
    ) -> Iterator[dict[str, Any]]:
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        seen: set[Any] = set()
        read = 0
        page = 0
        while True:
            data = self._get_json(
                f"{path}?q={_q({**query, 'page': page, 'page_size': page_size})}",
                action,
            )
            rows, count = data.get("result"), data.get("count")
            if not isinstance(rows, list) or not isinstance(count, int):
                raise NotASuperset(
                    f"{self.url} answered {action} without Superset's list envelope.",
                    url=self.url + path,
                )
            fresh = [row for row in rows if row.get("id") not in seen]
            # Titles are not unique, so a row can move between pages while we read.
            for row in fresh:
                seen.add(row.get("id"))
                yield row
            read += len(rows)
            # Not "len(rows) < page_size": a Superset with a smaller FAB_API_MAX_PAGE_SIZE
            # returns short pages that are not the last one. A page with nothing new
            # ends the loop too, so a server repeating itself cannot keep us here.
            if not fresh or read >= count:
                return
            page += 1

    def _get_json(self, path: str, action: str) -> dict[str, Any]:
        response = self._api("GET", path)
        with response:
            if not 200 <= response.status_code < 300:
                raise self._error(response, action)
            data = _json_or_none(response)
            if not isinstance(data, dict):
                title = html_title(response.text)
                raise NotASuperset(
                    f"{self.url} answered {action} with "
                    + (f"an HTML page ({title!r})" if title else "something that is not JSON")
                    + ": it does not look like Superset's API.",
                    status=response.status_code,
                    body=response.text,
                    url=response.url,
                )
            return data

    def _api(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        multipart: Callable[[], _MultipartBody] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """An authenticated call: re-authenticates once on an expired token and fetches a
        fresh CSRF token once when a write is refused for CSRF, all within one deadline.
        The body is read (up to what is kept of it) unless ``stream`` and a success."""
        with self._call():
            return self._authenticated(
                method, path, json_body=json_body, multipart=multipart, stream=stream
            )

    def _authenticated(
        self,
        method: str,
        path: str,
        *,
        json_body: Any,
        multipart: Callable[[], _MultipartBody] | None,
        stream: bool,
    ) -> requests.Response:
        if self._access_token is None:
            self._login()
        write = method != "GET"
        reauthenticated = csrf_retried = False
        while True:
            headers = {"Accept": JSON, "Authorization": f"Bearer {self._access_token}"}
            kwargs: dict[str, Any] = {}
            if write:
                headers["X-CSRFToken"] = self.csrf()
            if json_body is not None:
                kwargs["json"] = json_body
            if multipart is not None:
                body = multipart()
                headers["Content-Type"] = body.content_type
                kwargs["data"] = body
            response = self._send(
                method,
                path,
                headers=headers,
                allow_redirects=False,
                stream=stream,
                retry="none" if write else "full",
                **kwargs,
            )
            if not reauthenticated and _token_rejected(response):
                response.close()
                self._reauthenticate()
                reauthenticated = True
                continue
            if write and _csrf_rejected(response):
                response.close()
                if csrf_retried:
                    raise CSRFRejected(
                        f"Superset at {self.url} refused {method} {_path_only(path)} for a missing or invalid "
                        "CSRF token, even with a fresh one. If Superset marks its session cookie as Secure, "
                        "use its https:// address.",
                        status=response.status_code,
                        url=response.url,
                    )
                self._csrf_token = None
                csrf_retried = True
                continue
            return response

    @contextmanager
    def _call(self) -> Iterator[_Guard]:
        """One call's deadline; a call made inside another (a login, a CSRF token) shares
        the outer one."""
        outer = _guard()
        if outer is not None and outer.client is self:
            yield outer
            return
        guard = _Guard(self)
        _local.guard = guard
        try:
            yield guard
        finally:
            _local.guard = outer

    def _send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        retry: RetryPolicy,
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """One exchange, retried by policy: ``full`` (idempotent GETs) on connection errors
        and 5xx, ``connect`` (login, refresh) on connection errors, ``none`` (writes). A
        timeout is not retried, and no retry starts past the call's deadline."""
        url = self.url + path
        with self._call() as guard:
            guard.what = f"{method} {_path_only(path)}"
            attempt = 0
            while True:
                started = time.monotonic()
                guard.moved()
                try:
                    response = self.session.request(
                        method,
                        url,
                        headers=headers,
                        timeout=guard.timeouts(self.timeout),
                        verify=self.verify,
                        stream=True,
                        **kwargs,
                    )
                except requests.RequestException as exc:
                    elapsed = (time.monotonic() - started) * 1000
                    logger.debug(
                        "%s %s failed after %.0f ms: %s",
                        method,
                        _path_only(path),
                        elapsed,
                        type(exc).__name__,
                    )
                    retryable = (
                        retry == "full"
                        and not isinstance(exc, requests.exceptions.SSLError | requests.Timeout)
                    ) or (retry == "connect" and _is_connect_error(exc))
                    if retryable and self._may_retry(attempt, guard):
                        self._sleep(attempt, guard)
                        attempt += 1
                        continue
                    raise self._unreachable(exc, method, path, guard) from exc
                elapsed = (time.monotonic() - started) * 1000
                logger.debug(
                    "%s %s -> %s (%.0f ms)",
                    method,
                    _path_only(path),
                    response.status_code,
                    elapsed,
                )
                if (
                    retry == "full"
                    and response.status_code >= 500
                    and self._may_retry(attempt, guard)
                ):
                    response.close()
                    self._sleep(attempt, guard)
                    attempt += 1
                    continue
                success = 200 <= response.status_code < 300
                if not (stream and success):
                    try:
                        self._read_body(response, JSON_BODY_BYTES if success else ERROR_BODY_BYTES)
                    except BaseException:
                        response.close()
                        raise
                return response

    def _read_body(
        self, response: requests.Response, limit: int, *, cut: bool | None = None
    ) -> None:
        """Read the body up to ``limit`` bytes, within the call's deadline, and keep it as
        the response's content. An error body is cut there (its start is what is kept of
        it anyway, and so with ``cut``); a success longer than that is refused."""
        guard = _guard()
        whole = 200 <= response.status_code < 300 if cut is None else not cut
        what = f"{response.request.method} {_path_only(urlsplit(response.url).path)}"
        too_large = NotASuperset(
            f"{self.url} answered {what} with more than {size_text(limit)}: Superset's API "
            "does not answer that much.",
            status=response.status_code,
            url=response.url,
        )
        declared = _content_length(response)
        if whole and declared is not None and declared > limit:
            raise too_large
        data = bytearray()
        try:
            for chunk in response.iter_content(64 * 1024):
                if guard is not None:
                    guard.check()
                data += chunk
                if len(data) > limit:
                    break
        except requests.RequestException as exc:
            raise self._broken(exc, guard, f"reading the answer to {what}", self.url) from exc
        if len(data) > limit:
            if whole:
                raise too_large
            response.close()  # not read to its end: the connection is not reused
            del data[limit:]
        response._content = bytes(data)
        response._content_consumed = True
        if response.encoding is None:
            # requests would otherwise guess the encoding of a large body, slowly.
            response.encoding = "utf-8"

    def _broken(
        self, exc: BaseException, guard: _Guard | None, doing: str, url: str
    ) -> SupersetError:
        """A body that stopped arriving: the deadline's error when it ran out, else the
        connection that broke ``doing`` something."""
        if guard is not None and guard.expired:
            return guard.timed_out()
        return SupersetUnreachable(
            f"The connection to {self.url} broke while {doing}: {_transport_cause(exc)}.",
            url=url,
        )

    def _may_retry(self, attempt: int, guard: _Guard) -> bool:
        """Retries left, and time for the pause before the next one."""
        return attempt < self.retries and guard.remaining() > self.backoff * 2**attempt

    def _sleep(self, attempt: int, guard: _Guard) -> None:
        pause = self.backoff * 2**attempt
        while pause > 0:  # in slices, so that a Cancel is seen
            guard.check()
            step = min(pause, CANCEL_POLL)
            time.sleep(step)
            pause -= step

    def _unreachable(
        self, exc: requests.RequestException, method: str, path: str, guard: _Guard
    ) -> SupersetError:
        if isinstance(exc, requests.exceptions.SSLError):
            return SupersetTLSError(
                f"The TLS connection to {self.url} failed: {_transport_cause(exc)}. "
                "Check the certificate (or the CA bundle this server trusts).",
                url=self.url,
            )
        if guard.expired:
            return guard.timed_out()
        connect_timeout, read_timeout = _timeouts(self.timeout)
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            cause = f"no connection within {connect_timeout:g} s"
        elif isinstance(exc, requests.exceptions.ReadTimeout):
            cause = f"no answer to {method} {_path_only(path)} within {read_timeout:g} s"
        else:
            cause = _transport_cause(exc)
        return SupersetUnreachable(f"Superset at {self.url} is unreachable: {cause}.", url=self.url)

    def _error(
        self, response: requests.Response, action: str, secrets: Iterable[str] = ()
    ) -> SupersetError:
        """The typed error for an unsuccessful answer, with Superset's own words in it."""
        secrets = list(secrets)
        status = response.status_code
        text = response.text
        message, error_type, extra = parse_error_body(text)
        if 300 <= status < 400:
            sentence = f"Superset at {self.url} redirected {action} to {response.headers.get('Location') or '?'}"
        elif message is not None:
            sentence = f"{_capitalise(action)} failed with HTTP {status}: {message}"
        else:
            title = html_title(text)
            looks = (
                f"an HTML page ({title!r})"
                if title
                else (response.headers.get("Content-Type") or "an empty body")
            )
            sentence = (
                f"{_capitalise(action)} failed with HTTP {status}; Superset answered with {looks} instead of JSON, "
                "so the reason is only in Superset's own log"
            )
        details = {"status": status, "body": redact(text, secrets), "url": response.url}
        if status == 401:
            return AuthenticationFailed(
                redact(
                    f"{sentence}. Superset no longer accepts the login of {self.username!r}.",
                    secrets,
                ),
                **details,
            )
        if status == 403:
            sentence += f". The user {self.username!r} lacks the permission"
        return SupersetAPIError(
            redact(sentence, secrets), error_type=error_type, extra=extra, **details
        )


# --- helpers ----------------------------------------------------------------------------


def _q(value: RisonValue) -> str:
    return quote(rison_dumps(value), safe="")


def _dashboard(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("id"),
        "uuid": row.get("uuid"),
        "title": row.get("dashboard_title"),
        "slug": row.get("slug"),
    }


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _content_length(response: requests.Response) -> int | None:
    try:
        return int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None


def _json_or_none(response: requests.Response) -> Any:
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return None


def _token_rejected(response: requests.Response) -> bool:
    """401, or flask-jwt-extended's 422 ``{"msg": ...}`` for a token it cannot decode."""
    if response.status_code == 401:
        return True
    if response.status_code == 422:
        data = _json_or_none(response)
        return isinstance(data, dict) and isinstance(data.get("msg"), str)
    return False


_CSRF_MESSAGE = re.compile(r"\bCSRF\b")


def _csrf_rejected(response: requests.Response) -> bool:
    """Multipart writes answer a 302 to the login page, JSON writes a 400 naming CSRF."""
    if 300 <= response.status_code < 400:
        return "/login/" in response.headers.get("Location", "")
    if response.status_code == 400:
        message, _, _ = parse_error_body(response.text)
        return bool(message and _CSRF_MESSAGE.search(message))
    return False


def _is_connect_error(exc: BaseException) -> bool:
    # A read timeout means the request may have been handled; only "never connected" is safe.
    return isinstance(exc, requests.ConnectionError) and not isinstance(
        exc, requests.exceptions.SSLError
    )


def _transport_cause(exc: BaseException) -> str:
    """A short reason from the exception chain requests/urllib3 build around socket errors."""
    stack: list[BaseException] = [exc]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "the host name could not be resolved"
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate not trusted ({current.verify_message})"
        if isinstance(current, http.client.RemoteDisconnected | ConnectionResetError):
            return "the server closed the connection"
        if isinstance(current, TimeoutError | socket.timeout):
            return "timed out"
        linked = [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *current.args,
        ]
        stack.extend(item for item in linked if isinstance(item, BaseException))
    text = str(exc)
    return text[:300] if text else type(exc).__name__


def _uri_secrets(uri: str) -> list[str]:
    password, _ = split_uri_password(uri)
    if not password:
        return []
    # With a raw "@" in the password, Superset's error quotes the part after it as a host.
    return [password, *password.split("@")]


_SECRET_KEYS = {
    "password",
    "private_key",
    "private_key_password",
    "masked_encrypted_extra",
    "encrypted_extra",
}


def _nested_secrets(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, child in value.items():
            if key in _SECRET_KEYS and isinstance(child, str):
                found.append(child)
            else:
                found.extend(_nested_secrets(child))
    elif isinstance(value, list):
        for child in value:
            found.extend(_nested_secrets(child))
    return found


@contextmanager
def _open_bundle(bundle: BundleSource) -> Iterator[tuple[IO[bytes], str]]:
    if isinstance(bundle, str | os.PathLike):
        filename = os.path.basename(os.fspath(bundle))
        with open(bundle, "rb") as fileobj:
            yield fileobj, _safe_filename(filename)
    else:
        if not bundle.seekable():
            raise ValueError("The bundle must be a seekable binary file (a retry sends it again).")
        yield (
            bundle,
            _safe_filename(os.path.basename(str(getattr(bundle, "name", "") or ""))),
        )


def _safe_filename(name: str) -> str:
    return name if re.fullmatch(r"[\w.-]+", name, re.ASCII) else "bundle.zip"


class _MultipartBody:
    """A ``multipart/form-data`` body read piece by piece.

    requests' own ``files=`` encoder reads the whole file into memory; this one hands
    http.client a file-like object with a known length, so the upload streams.
    """

    def __init__(
        self,
        fields: Sequence[tuple[str, str]],
        file_field: str,
        filename: str,
        fileobj: IO[bytes],
        size: int,
    ) -> None:
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        tail = "".join(
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}'
            for name, value in fields
        )
        tail_bytes = f"{tail}\r\n--{boundary}--\r\n".encode()
        self._length = len(head) + size + len(tail_bytes)
        self._parts: list[tuple[IO[bytes], int]] = [
            (io.BytesIO(head), len(head)),
            (fileobj, size),
            (io.BytesIO(tail_bytes), len(tail_bytes)),
        ]

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(65536):
            yield chunk

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while self._parts and (size < 0 or len(out) < size):
            part, remaining = self._parts[0]
            want = remaining if size < 0 else min(remaining, size - len(out))
            chunk = part.read(want) if want else b""
            out += chunk
            remaining -= len(chunk)
            if remaining <= 0 or not chunk:
                if remaining > 0:
                    raise SupersetError("The bundle file got shorter while it was being uploaded.")
                self._parts.pop(0)
            else:
                self._parts[0] = (part, remaining)
        return bytes(out)
