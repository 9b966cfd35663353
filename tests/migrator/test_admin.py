"""Environments in the Django admin: the password is write-only."""

from __future__ import annotations

import pytest

from migrator.models import Environment

pytestmark = pytest.mark.django_db

LIST = "/admin/migrator/environment/"


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def env():
    return Environment.objects.create(
        name="prod", url="https://prod.example", username="svc", password="Very-Secret-pw1"
    )


def test_staff_list_environments_without_passwords(staff_client, env):
    html = staff_client.get(LIST).content.decode()
    assert "prod" in html and "https://prod.example" in html
    assert "Very-Secret-pw1" not in html


def test_the_change_page_never_renders_the_password(staff_client, env):
    html = staff_client.get(f"{LIST}{env.pk}/change/").content.decode()
    assert 'name="password"' in html
    assert "Very-Secret-pw1" not in html
    assert env.password not in html


def test_saving_with_a_blank_password_keeps_it(staff_client, env):
    response = staff_client.post(
        f"{LIST}{env.pk}/change/",
        {
            "name": "prod",
            "url": "https://prod2.example",
            "username": "svc",
            "password": "",
            "provider": "db",
            "verify_tls": "on",
        },
    )
    assert response.status_code == 302, response.content
    env.refresh_from_db()
    assert (env.url, env.password) == ("https://prod2.example", "Very-Secret-pw1")


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
