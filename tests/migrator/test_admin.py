"""Environments in the Django admin: the password is write-only."""

from __future__ import annotations

import pytest

from migrator.models import Environment

pytestmark = pytest.mark.django_db

LIST = "/admin/migrator/environment/"


def test_staff_list_environments_without_passwords(staff_client, env):
    html = staff_client.get(LIST).content.decode()
    assert "prod" in html and "https://prod.example" in html
    assert "Very-Secret-pw1" not in html


def test_the_change_page_never_renders_the_password(staff_client, env):
    html = staff_client.get(f"{LIST}{env.pk}/change/").content.decode()
    assert 'name="password"' in html
    assert "Very-Secret-pw1" not in html
    assert env.password not in html


CHANGE = {
    "name": "prod",
    "url": "https://prod.example",
    "username": "svc",
    "password": "",
    "provider": "db",
    "verify_tls": "on",
}


def test_saving_with_a_blank_password_keeps_it(staff_client, env):
    response = staff_client.post(f"{LIST}{env.pk}/change/", {**CHANGE, "name": "prod-eu"})
    assert response.status_code == 302, response.content
    env.refresh_from_db()
    assert (env.name, env.password) == ("prod-eu", "Very-Secret-pw1")


@pytest.mark.parametrize(
    "change", [{"url": "https://elsewhere.example"}, {"username": "root"}, {"provider": "ldap"}]
)
def test_changing_the_address_user_or_provider_needs_the_password(staff_client, env, change):
    response = staff_client.post(f"{LIST}{env.pk}/change/", {**CHANGE, **change})
    assert response.status_code == 200  # the form again, with the error
    assert "Enter the password again" in response.content.decode()
    env.refresh_from_db()
    assert (env.url, env.username, env.provider) == ("https://prod.example", "svc", "db")

    response = staff_client.post(
        f"{LIST}{env.pk}/change/", {**CHANGE, **change, "password": "New-pw-2"}
    )
    assert response.status_code == 302
    env.refresh_from_db()
    assert env.password == "New-pw-2"
    assert env.password_applies_to(env.url, env.username, env.provider)


def test_staff_without_superuser_rights_manage_environments(client, env):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("ops", password="pw-ops-123", is_staff=True))
    assert "Environments" in client.get("/admin/").content.decode()
    assert client.get(LIST).status_code == 200
    assert client.post(f"{LIST}{env.pk}/change/", {**CHANGE, "name": "p2"}).status_code == 302
    assert client.post(f"{LIST}{env.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Environment.objects.exists()


def test_adding_needs_a_password(staff_client):
    data = {"name": "dev", "url": "http://dev.example", "username": "u", "provider": "db"}
    assert staff_client.post(f"{LIST}add/", data).status_code == 200  # the form again
    assert not Environment.objects.exists()
    assert staff_client.post(f"{LIST}add/", {**data, "password": "pw"}).status_code == 302
    assert Environment.objects.get(name="dev").password == "pw"


def test_the_test_connection_action_reports_each_environment(staff_client, env, monkeypatch):
    monkeypatch.setattr(
        "migrator.admin.check_connection",
        lambda e: {"ok": False, "reason": "credentials", "message": "Wrong credentials: 401"},
    )
    page = staff_client.post(
        LIST, {"action": "test_connections", "_selected_action": [env.pk]}, follow=True
    )
    assert "Prod: Wrong credentials: 401" in page.content.decode()  # admin capitalises


def test_people_who_are_not_staff_are_refused(owner_client, env):
    assert owner_client.get(LIST).status_code == 302
