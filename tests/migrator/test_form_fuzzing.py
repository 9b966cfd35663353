"""The HTML forms, fed made-up text (NUL, control characters, huge, non-ASCII): never a
500. Runs on SQLite and again on PostgreSQL (the postgres stage), where text a SQLite
column takes can be an error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.models import Status, Task

pytestmark = [pytest.mark.django_db, pytest.mark.postgres_too]

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300
) | st.sampled_from(["\x00", "a\x00b", "x" * 5000, "' OR 1=1 --", "<script>"])
FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

FORMS = {
    "/migrations/start/": ["source", "target", "dashboards", "overwrite", "title_1", "database__x"],
    "/migrations/preview/": ["source", "target", "dashboards", "conflict__x", "confirm__x"],
    "/environments/add/": ["name", "url", "username", "password", "provider"],
}


@pytest.mark.parametrize("url", sorted(FORMS))
def test_no_form_answers_500_whatever_it_is_sent(staff_client, url):
    @FUZZ
    @given(values=st.lists(TEXT, min_size=len(FORMS[url]), max_size=len(FORMS[url])))
    def post(values):
        data = dict(zip(FORMS[url], values, strict=True))
        response = staff_client.post(url, data)
        assert response.status_code < 500, (url, data)
        response = staff_client.post(url, data, HTTP_HX_REQUEST="true")
        assert response.status_code < 500, (url, data)

    post()


def test_the_prompt_form_never_answers_500(owner_client, owner):
    task = Task.objects.create(kind="migration", owner=owner, status=Status.AWAITING_INPUT)

    @FUZZ
    @given(key=TEXT, value=TEXT)
    def post(key, value):
        response = owner_client.post(f"/tasks/{task.pk}/answer/", {key: value})
        assert response.status_code < 500, (key, value)

    post()
