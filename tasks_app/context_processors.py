from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from tasks_app.models import Task


def awaiting_input(request: HttpRequest) -> dict[str, Any]:
    """How many tasks wait for a person: shown in the header of every page.

    Lazy: the htmx fragments (rows, log pages, polls) do not show the header,
    so they do not pay for the count.
    """
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"awaiting_count": SimpleLazyObject(Task.objects.awaiting_input_count)}
