"""Who may change a task (cancel, retry, answer, and whatever its kind adds): one check."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from tasks_app.models import Task

DENIED = "Only the task's owner or staff may change it."


def task_for_change(user: Any, task_id: int) -> Task:
    """The task, when ``user`` may change it; PermissionDenied when not, 404 when unknown."""
    task = get_object_or_404(Task.objects.select_related("owner"), pk=task_id)
    if not task.can_be_changed_by(user):
        raise PermissionDenied(DENIED)
    return task
