from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from tasks_app.models import Status, Task


def awaiting_input(request: HttpRequest) -> dict[str, Any]:
    """How many tasks wait for a person: shown in the header of every page."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"awaiting_count": Task.objects.filter(status=Status.AWAITING_INPUT).count()}
