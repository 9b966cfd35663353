"""Who may manage environments, and where a stored password may go.

Managing environments (add, change, delete) needs migrator.manage_environments:
staff have it, anyone else through a user or group permission. Everybody may
use them to migrate. A stored password only ever goes to the URL, username
and provider it was saved with: changing one needs the password again, on
every path (page, API, admin, command), and the client refuses otherwise.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from migrator import cli, sessions
from migrator.dashboards import check_connection
from migrator.models import Environment, PasswordNotBound

pytestmark = pytest.mark.django_db

PROD_PASSWORD = "Prod-Admin-pw-9"
NOT_ALLOWED = "Only people who manage environments"


class Recorder(ThreadingHTTPServer):
    """A local server that keeps every request it receives and refuses every login."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.received: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def everything_received(self) -> str:
        return "\n".join(self.received)


class _RecordingHandler(BaseHTTPRequestHandler):
    def _record_and_refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace")
        self.server.received.append(f"{self.command} {self.path}\n{self.headers}\n{body}")
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"message": "Not authorized"}')

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _record_and_refuse

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recorders() -> Iterator[tuple[Recorder, Recorder]]:
    """(the environment's real Superset, a server of the attacker's)."""
    servers = (Recorder(), Recorder())
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def prod(recorders) -> Environment:
    return Environment.objects.create(
        name="prod", url=recorders[0].url, username="admin", password=PROD_PASSWORD
    )


FORM = {
    "name": "prod",
    "url": "https://prod.example",
    "username": "svc",
    "provider": "db",
    "verify_tls": "on",
}


def _unchanged(env: Environment) -> bool:
    fresh = Environment.objects.get(pk=env.pk)
    return (fresh.name, fresh.url, fresh.username, fresh.password) == (
        env.name,
        env.url,
        env.username,
        env.password,
    )


# --- the theft, replayed -------------------------------------------------------


def test_a_user_cannot_point_someone_elses_environment_at_their_own_server(
    other_client, prod, recorders
):
    real, attackers = recorders
    # As probed: edit the URL (blank password keeps it), then "Test connection".
    edit = other_client.post(f"/environments/{prod.pk}/", {**FORM, "url": attackers.url})
    assert edit.status_code == 403
    api = other_client.patch(
        f"/api/environments/{prod.pk}", {"url": attackers.url}, content_type="application/json"
    )
    assert api.status_code == 403
    assert _unchanged(prod)

    other_client.post(f"/environments/{prod.pk}/test/", HTTP_HX_REQUEST="true")
    other_client.post(f"/api/environments/{prod.pk}/test")

    assert attackers.received == []
    assert len(real.received) == 2  # the two tests went where the password belongs


def test_a_changed_url_never_receives_the_stored_password_however_it_was_changed(
    manager_client, prod, recorders
):
    real, attackers = recorders
    # A manager who forgets to re-enter the password is stopped by the form…
    edit = manager_client.post(f"/environments/{prod.pk}/", {**FORM, "url": attackers.url})
    assert edit.status_code == 200
    assert "Enter the password again" in edit.content.decode()
    assert _unchanged(prod)
    # …and a URL changed behind every form's back (SQL, a script, a restore) is
    # refused where the client is built: nothing is sent at all.
    Environment.objects.filter(pk=prod.pk).update(url=attackers.url)
    answer = manager_client.post(f"/api/environments/{prod.pk}/test").json()
    assert answer["ok"] is False and answer["reason"] == "password_needed"
    page = manager_client.post(f"/environments/{prod.pk}/test/", HTTP_HX_REQUEST="true")
    assert "enter the password again" in page.content.decode()
    moved = Environment.objects.get(pk=prod.pk)
    with pytest.raises(PasswordNotBound), sessions.borrow(moved):
        pass

    assert attackers.received == []
    assert PROD_PASSWORD not in real.everything_received()  # nothing went out at all
    assert real.received == []


def test_after_the_password_is_entered_again_it_goes_to_the_new_address(
    manager_client, prod, recorders
):
    _, new_home = recorders
    edit = manager_client.post(
        f"/environments/{prod.pk}/", {**FORM, "url": new_home.url, "password": "New-pw-77"}
    )
    assert edit.status_code == 302
    check_connection(Environment.objects.get(pk=prod.pk))
    assert "New-pw-77" in new_home.everything_received()
    assert PROD_PASSWORD not in new_home.everything_received()


# --- the pages --------------------------------------------------------------------


def test_users_see_environments_to_use_but_no_way_to_change_them(owner_client, env):
    html = owner_client.get("/environments/").content.decode()
    assert "https://prod.example" in html and "Test connection" in html
    assert "Add environment" not in html
    assert f"/environments/{env.pk}/delete/" not in html
    assert f'href="/environments/{env.pk}/"' not in html
    assert "Adding, changing or deleting them is for staff" in html


def test_managers_see_add_edit_and_delete(manager_client, env):
    html = manager_client.get("/environments/").content.decode()
    assert "Add environment" in html
    assert f"/environments/{env.pk}/delete/" in html
    assert f'href="/environments/{env.pk}/"' in html


def test_users_without_the_permission_are_refused_on_every_page(owner_client, env):
    for response in (
        owner_client.get("/environments/add/"),
        owner_client.post("/environments/add/", {**FORM, "name": "x", "password": "pw"}),
        owner_client.get(f"/environments/{env.pk}/"),
        owner_client.post(f"/environments/{env.pk}/", {**FORM, "name": "renamed"}),
        owner_client.post(f"/environments/{env.pk}/delete/"),
    ):
        assert response.status_code == 403
        assert NOT_ALLOWED in response.content.decode()
    assert list(Environment.objects.values_list("name", flat=True)) == ["prod"]
    assert _unchanged(env)


def test_users_without_environments_are_told_whom_to_ask(owner_client):
    assert "Ask someone who manages environments" in owner_client.get("/").content.decode()


def test_staff_manage_environments_without_being_given_the_permission(client, env):
    client.force_login(User.objects.create_user("ops", password="pw-ops-123", is_staff=True))
    assert client.post(f"/environments/{env.pk}/", {**FORM, "name": "p2"}).status_code == 302
    assert client.post(f"/environments/{env.pk}/delete/").status_code == 302
    assert not Environment.objects.exists()


@pytest.mark.parametrize(
    "change",
    [
        {"url": "https://elsewhere.example"},
        {"username": "root"},
        {"provider": "ldap"},
        {"verify_tls": ""},  # certificate checks turned off
    ],
)
def test_the_form_needs_the_password_again_for_a_new_address_user_or_provider(
    manager_client, env, change
):
    response = manager_client.post(f"/environments/{env.pk}/", {**FORM, **change})
    assert response.status_code == 200
    assert "Enter the password again" in response.content.decode()
    assert _unchanged(env)


def test_the_edit_form_says_when_a_blank_password_is_kept(manager_client, env):
    html = manager_client.get(f"/environments/{env.pk}/").content.decode()
    assert "changing the URL, username, provider or TLS setting needs it again" in html
    add = manager_client.get("/environments/add/").content.decode()
    assert "Leave blank" not in add


def test_a_trailing_slash_is_the_same_address(manager_client, env):
    response = manager_client.post(
        f"/environments/{env.pk}/", {**FORM, "url": "https://prod.example/", "name": "p"}
    )
    assert response.status_code == 302
    assert Environment.objects.get(pk=env.pk).password == "Very-Secret-pw1"


# --- the API ------------------------------------------------------------------------


def test_the_api_refuses_changes_from_users_without_the_permission(owner_client, env):
    created = owner_client.post(
        "/api/environments",
        {"name": "x", "url": "http://x.example", "username": "u", "password": "p"},
        content_type="application/json",
    )
    changed = owner_client.patch(
        f"/api/environments/{env.pk}", {"name": "y"}, content_type="application/json"
    )
    deleted = owner_client.delete(f"/api/environments/{env.pk}")
    for answer in (created, changed, deleted):
        assert answer.status_code == 403
        assert NOT_ALLOWED in answer.json()["detail"]
    assert _unchanged(env) and Environment.objects.count() == 1
    assert owner_client.get("/api/environments").status_code == 200  # using them is fine


def test_the_api_changes_only_what_is_given(manager_client, env):
    answer = manager_client.patch(
        f"/api/environments/{env.pk}", {"name": "prod-eu"}, content_type="application/json"
    )
    assert answer.status_code == 200
    assert answer.json()["name"] == "prod-eu"
    fresh = Environment.objects.get(pk=env.pk)
    assert (fresh.url, fresh.password) == ("https://prod.example", "Very-Secret-pw1")


def test_the_api_needs_the_password_again_for_a_new_address(manager_client, env):
    answer = manager_client.patch(
        f"/api/environments/{env.pk}",
        {"url": "https://elsewhere.example"},
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert "Enter the password again" in answer.json()["errors"]["password"][0]
    assert _unchanged(env)
    answer = manager_client.patch(
        f"/api/environments/{env.pk}",
        {"url": "https://elsewhere.example", "password": "New-pw-2"},
        content_type="application/json",
    )
    assert answer.status_code == 200
    fresh = Environment.objects.get(pk=env.pk)
    assert (fresh.url, fresh.password) == ("https://elsewhere.example", "New-pw-2")
    assert fresh.password_applies_to(fresh.url, fresh.username, fresh.provider)


def test_the_api_deletes_for_managers(manager_client, env):
    assert manager_client.delete(f"/api/environments/{env.pk}").status_code == 204
    assert not Environment.objects.exists()
    assert manager_client.delete(f"/api/environments/{env.pk}").status_code == 404


# --- the command ---------------------------------------------------------------------


def _update(*args: str, stdin: str = "") -> str:
    out = io.StringIO()
    call_command("add_environment", "prod", "--update", *args, stdin=io.StringIO(stdin), stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    "change",
    [["--url", "https://elsewhere.example"], ["--username", "root"], ["--provider", "ldap"]],
)
def test_the_command_needs_the_password_again_for_a_new_address(env, change):
    with pytest.raises(CommandError) as no_terminal:
        _update(*change)
    assert no_terminal.value.returncode == cli.NEEDS_TERMINAL
    assert "changing the URL, username, provider or TLS setting needs it again" in str(
        no_terminal.value
    )
    with pytest.raises(CommandError) as empty:
        _update(*change, "--password-stdin")
    assert empty.value.returncode == cli.BAD_ARGUMENTS
    assert _unchanged(env)

    _update(*change, "--password-stdin", stdin="New-pw-3\n")
    fresh = Environment.objects.get(pk=env.pk)
    assert fresh.password == "New-pw-3"
    assert fresh.password_applies_to(fresh.url, fresh.username, fresh.provider)


def test_the_command_keeps_the_password_when_the_address_stays(env):
    _update("--username", "svc", "--provider", "db")
    fresh = Environment.objects.get(pk=env.pk)
    assert (fresh.username, fresh.password) == ("svc", "Very-Secret-pw1")


def test_the_prompt_only_offers_to_keep_the_password_when_it_still_applies(env, monkeypatch):
    prompts: list[str] = []
    monkeypatch.setattr(cli, "is_terminal", lambda stream=None: True)
    monkeypatch.setattr(cli, "ask_secret", lambda prompt: prompts.append(prompt) or "New-pw-4")
    _update("--provider", "db")
    _update("--url", "https://elsewhere.example")
    assert prompts == [
        "Password of svc (empty keeps the current one): ",
        "Password of svc: ",
    ]


# --- where the client is built ---------------------------------------------------------


def test_the_client_refuses_a_password_saved_for_another_address(env):
    assert env.client().url == "https://prod.example"
    for change in ({"url": "https://elsewhere.example"}, {"username": "x"}, {"provider": "ldap"}):
        Environment.objects.filter(pk=env.pk).update(**change)
        with pytest.raises(PasswordNotBound, match="enter the password again"):
            Environment.objects.get(pk=env.pk).client()
        Environment.objects.filter(pk=env.pk).update(
            url=env.url, username=env.username, provider=env.provider
        )


def test_a_password_copied_from_another_environment_is_refused(env):
    other = Environment.objects.create(
        name="dev", url="https://dev.example", username="svc", password="Dev-pw-1"
    )
    # Copying only the encrypted password column does not carry its binding.
    Environment.objects.filter(pk=other.pk).update(password=env.password)
    with pytest.raises(PasswordNotBound):
        Environment.objects.get(pk=other.pk).client()
