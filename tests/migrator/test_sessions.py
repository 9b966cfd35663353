"""The pool of logged-in Superset clients kept between tasks."""

from __future__ import annotations

import pytest

from migrator import sessions
from migrator.models import Environment
from migrator.superset.errors import ImportRejected, SupersetUnreachable
from migrator.superset.problems import ImportProblems

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_pool():
    sessions._idle.clear()
    yield
    sessions._idle.clear()


def _borrowed(env: Environment):
    with sessions.borrow(env) as client:
        return client


def test_a_client_is_reused_by_the_next_task(env):
    assert _borrowed(env) is _borrowed(env)


def test_new_credentials_never_reuse_the_old_session(env):
    first = _borrowed(env)
    env.set_password("p2")
    env.save()
    assert _borrowed(Environment.objects.get(pk=env.pk)) is not first


def test_a_refusal_from_superset_keeps_the_session(env):
    with pytest.raises(ImportRejected), sessions.borrow(env) as client:
        raise ImportRejected("refused", status=422, problems=ImportProblems(message="x"))
    assert _borrowed(env) is client


def test_a_broken_connection_drops_the_session(env):
    with pytest.raises(SupersetUnreachable), sessions.borrow(env) as client:
        raise SupersetUnreachable("gone")
    assert _borrowed(env) is not client


def test_two_borrowers_at_once_get_two_clients(env):
    with sessions.borrow(env) as one, sessions.borrow(env) as two:
        assert one is not two


def test_a_write_gets_a_session_that_wrote_before(env):
    """Reads side by side leave several sessions idle; an import takes one whose CSRF
    token is known (no call to fetch it), whichever was given back last."""
    with sessions.borrow(env) as reader, sessions.borrow(env) as writer:
        writer._csrf_token = "token"
    assert _borrowed(env) is reader  # the last given back, for a read
    with sessions.borrow(env, writing=True) as client:
        assert client is writer
    with sessions.borrow(env, writing=True), sessions.borrow(env, writing=True) as other:
        assert other is reader  # none left that wrote: any idle one
