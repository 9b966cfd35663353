"""POST /api/tasks/{id}/resume and the prompt page, with the target's check faked.

The real check against a real Superset is in tests/e2e/test_passwords.py.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from django.utils import timezone

from migrator.pipeline import MIGRATION
from tasks_app import kinds
from tasks_app.models import InputRequest, Status, Task

pytestmark = pytest.mark.django_db

FIELDS = [
    {
        "key": "databases/analytics.yaml",
        "type": "password",
        "label": "Database password",
        "input": "secret",
        "max_length": 1024,
        "database_name": "analytics",
        "uri_masked": "postgresql://u:XXXXXXXXXX@h/analytics",
    },
    {
        "key": "databases/warehouse.yaml",
        "type": "password",
        "label": "Database password",
        "input": "secret",
        "max_length": 1024,
        "database_name": "warehouse",
        "uri_masked": "postgresql://w:XXXXXXXXXX@h/warehouse",
    },
    {
        "key": "databases/warehouse.yaml",
        "type": "ssh_private_key",
        "label": "SSH private key",
        "input": "secret_multiline",
        "max_length": 16384,
        "database_name": "warehouse",
        "uri_masked": "postgresql://w:XXXXXXXXXX@h/warehouse",
    },
]
seen: list[dict] = []


def _fake_check(task, request, given):
    seen.append(dict(given))
    return {
        fid: "Wrong: password authentication failed"
        for fid, v in given.items()
        if v.startswith("wrong")
    }


@pytest.fixture(autouse=True)
def _fake_target(monkeypatch):
    seen.clear()
    monkeypatch.setitem(
        kinds._KINDS, "migration", dataclasses.replace(MIGRATION, answer=_fake_check)
    )


@pytest.fixture
def waiting(owner) -> Task:
    task = Task.objects.create(
        kind="migration",
        owner=owner,
        status=Status.AWAITING_INPUT,
        step="import",
        params={
            "source": {"id": 1, "name": "dev"},
            "target": {"id": 2, "name": "prod"},
            "dashboards": [],
        },
    )
    InputRequest.objects.create(
        task=task,
        message="prod needs input",
        fields=[dict(f, error="") for f in FIELDS],
        expires_at=timezone.now() + timedelta(days=7),
    )
    return task


def _resume(client, task, body):
    return client.post(f"/api/tasks/{task.pk}/resume", body, content_type="application/json")


def test_the_task_shows_its_input_request(owner_client, waiting):
    body = owner_client.get(f"/api/tasks/{waiting.pk}").json()
    request = body["input_request"]
    assert request["kinds"] == ["password", "ssh_private_key"]
    assert [(f["key"], f["type"], f["database_name"]) for f in request["fields"]] == [
        ("databases/analytics.yaml", "password", "analytics"),
        ("databases/warehouse.yaml", "password", "warehouse"),
        ("databases/warehouse.yaml", "ssh_private_key", "warehouse"),
    ]
    assert request["fields"][0]["uri_masked"] == "postgresql://u:XXXXXXXXXX@h/analytics"
    assert request["expires_at"] > request["created_at"]


def test_resuming_with_every_answer_is_202(owner_client, waiting):
    answer = _resume(
        owner_client,
        waiting,
        {
            "passwords": {
                "databases/analytics.yaml": "a-pass",
                "databases/warehouse.yaml": "w-pass",
            },
            "ssh_tunnel_private_keys": {
                "databases/warehouse.yaml": "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n"
            },
        },
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["status"] == "PENDING"
    assert answer.json()["input_request"] is None
    assert "a-pass" not in answer.content.decode()
    assert seen[0]["password:databases/analytics.yaml"] == "a-pass"


def test_wrong_missing_and_unknown_keys_are_400_per_key(owner_client, waiting):
    answer = _resume(
        owner_client,
        waiting,
        {"passwords": {"databases/analytics.yaml": "wrong", "databases/nope.yaml": "x"}},
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"passwords.databases/nope.yaml": ["Not asked for."]}
    answer = _resume(
        owner_client, waiting, {"passwords": {"databases/analytics.yaml": "wrong-Secret-77"}}
    )
    errors = answer.json()["errors"]
    assert errors["passwords.databases/analytics.yaml"] == ["Wrong: password authentication failed"]
    assert errors["passwords.databases/warehouse.yaml"] == ["Required."]
    assert errors["ssh_tunnel_private_keys.databases/warehouse.yaml"] == ["Required."]
    assert "wrong-Secret-77" not in answer.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == Status.AWAITING_INPUT


def test_a_task_not_waiting_is_409(owner_client, owner):
    task = Task.objects.create(kind="migration", owner=owner, status=Status.RUNNING)
    assert _resume(owner_client, task, {"passwords": {}}).status_code == 409


def test_only_the_owner_or_staff_may_answer(other_client, waiting):
    assert _resume(other_client, waiting, {"passwords": {}}).status_code == 403


def test_answers_are_length_bounded(owner_client, waiting):
    answer = _resume(owner_client, waiting, {"passwords": {"databases/analytics.yaml": "x" * 2000}})
    assert answer.json()["errors"]["passwords.databases/analytics.yaml"] == [
        "At most 1024 characters."
    ]


def test_the_prompt_lists_every_field_and_never_renders_values(owner_client, waiting):
    html = owner_client.get(f"/tasks/{waiting.pk}/input/", HTTP_HX_REQUEST="true").content.decode()
    assert "<dialog" in html
    assert html.count('type="password"') == 2 and html.count("<textarea") == 1
    assert "analytics" in html and "warehouse" in html and "XXXXXXXXXX" in html
    response = owner_client.post(
        f"/tasks/{waiting.pk}/answer/",
        {
            "password:databases/analytics.yaml": "wrong-Secret-77",
            "password:databases/warehouse.yaml": "",
            "ssh_private_key:databases/warehouse.yaml": "KEY",
        },
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert "Wrong: password authentication failed" in html
    assert "Required." in html
    assert "wrong-Secret-77" not in html and "KEY" not in html


def test_a_good_answer_from_the_page_resumes(owner_client, waiting):
    response = owner_client.post(
        f"/tasks/{waiting.pk}/answer/",
        {
            "password:databases/analytics.yaml": "a",
            "password:databases/warehouse.yaml": "b",
            "ssh_private_key:databases/warehouse.yaml": "KEY",
        },
        HTTP_HX_REQUEST="true",
    )
    assert "running again" in response.content.decode()
    assert "task-resumed" in response["HX-Trigger"]
    waiting.refresh_from_db()
    assert waiting.status == Status.PENDING


def test_the_header_counts_tasks_awaiting_input(owner_client, waiting):
    html = owner_client.get("/environments/").content.decode()
    assert 'id="awaiting-badge"' in html
    assert '<span class="count">1</span>' in html


def test_the_row_offers_the_prompt(owner_client, waiting):
    html = owner_client.get("/").content.decode()
    assert "Requires input" in html
    assert f'hx-get="/tasks/{waiting.pk}/input/"' in html


def test_answers_accepted_in_an_earlier_round_may_be_sent_again(owner_client, waiting):
    """A script sends its whole answer map again after fixing one: what was accepted
    is not refused as "not asked for", nor checked again."""
    first = {
        "passwords": {"databases/analytics.yaml": "good", "databases/warehouse.yaml": "wrong"},
        "ssh_tunnel_private_keys": {"databases/warehouse.yaml": "KEY"},
    }
    answer = _resume(owner_client, waiting, first)
    assert answer.status_code == 400
    assert set(answer.json()["errors"]) == {"passwords.databases/warehouse.yaml"}
    again = {
        "passwords": {"databases/analytics.yaml": "good", "databases/warehouse.yaml": "right"},
        "ssh_tunnel_private_keys": {"databases/warehouse.yaml": "KEY"},
    }
    answer = _resume(owner_client, waiting, again)
    assert answer.status_code == 202, answer.json()
    assert seen[-1] == {"password:databases/warehouse.yaml": "right"}  # only what was asked
    waiting.refresh_from_db()
    assert waiting.status == Status.PENDING


def test_a_body_it_cannot_read_is_a_400_that_never_echoes_a_secret(owner_client, waiting):
    answer = _resume(owner_client, waiting, {"passwords": ["hunter2-secret"]})
    assert answer.status_code == 400
    assert "passwords" in answer.json()["detail"]
    assert "hunter2-secret" not in answer.content.decode()
    page = owner_client.post(f"/tasks/{waiting.pk}/answer/", {"passwords": "hunter2-secret"})
    assert page.status_code == 400
    assert "hunter2-secret" not in page.content.decode()
