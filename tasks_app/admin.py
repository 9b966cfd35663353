"""Task triage for staff: find a task, read its log, cancel, retry or expire it, or
act on it as its kind offers (``TaskKind.admin_actions``, e.g. roll a migration back).

The list reads only the task row and its owner (one query for the page
whatever its size); the change page shows the log a page at a time and the
pending input request's fields, never a value (none is ever stored).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from tasks_app import engine, presenter
from tasks_app.kinds import AdminAction, TaskKind, all_kinds, find_kind, summary
from tasks_app.logs import json_contains
from tasks_app.models import IllegalTransition, Status, Task
from tasks_app.tasklog import TaskLog

BADGE_COLOURS = {
    Status.PENDING: "#6b7280",
    Status.RUNNING: "#2563eb",
    Status.AWAITING_INPUT: "#d97706",
    Status.SUCCESS: "#15803d",
    Status.FAILED: "#b91c1c",
    Status.CANCELLED: "#374151",
}
LOG_PAGE_SIZE = 100


def status_badge(status: str, label: str) -> str:
    return format_html(
        '<span class="task-status task-status-{}" style="background:{};color:#fff;'
        'border-radius:.7em;padding:.1em .6em;white-space:nowrap">{}</span>',
        status.lower(),
        BADGE_COLOURS.get(status, "#6b7280"),
        label,
    )


def human_duration(value: timedelta | None) -> str:
    if value is None:
        return "–"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _actor(request: HttpRequest) -> str:
    return f"{request.user.get_username()} (admin)"


class TaskAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status_badge",
        "kind",
        "owner",
        "route",
        "items",
        "created_at",
        "duration_display",
    ]
    list_display_links = ["id"]
    list_filter = ["status", "kind", "created_at"]
    list_select_related = ["owner"]
    list_per_page = 50
    # The box only; get_search_results decides what a term matches.
    search_fields = ["=id"]
    search_help_text = (
        "A task id (123 or #123), or text in what the task works on (a name, a title) "
        "or in its error."
    )
    ordering = ["-id"]
    # The engine's actions; ``actions`` adds those the kinds offer on their tasks.
    engine_actions = ["cancel_tasks", "retry_tasks", "expire_input_requests"]
    fieldsets = [
        (None, {"fields": ["status_badge", "kind", "owner", "route", "items", "options"]}),
        ("Timing", {"fields": ["created_at", "started_at", "finished_at", "duration_display"]}),
        (
            "Engine",
            {
                "fields": [
                    "error",
                    "step",
                    "checkpoint_json",
                    "params_json",
                    "attempts",
                    "worker_id",
                    "heartbeat_at",
                    "cancel_requested",
                ],
                "classes": ["collapse"],
            },
        ),
    ]
    # Everything shown is read-only: tasks change through their actions only.
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

    @property
    def actions(self) -> list[Any]:
        """The engine's actions, then each kind's (``TaskKind.admin_actions``)."""
        return [
            *self.engine_actions,
            *(_kind_action(kind, action) for kind in all_kinds() for action in kind.admin_actions),
        ]

    # --- columns -----------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, task: Task) -> str:
        return status_badge(task.status, task.get_status_display())

    @admin.display(description="where")
    def route(self, task: Task) -> str:
        return summary(task).route or "–"

    @admin.display(description="items")
    def items(self, task: Task) -> str:
        names = summary(task).items
        if len(names) > 3:
            return f"{', '.join(names[:3])} and {len(names) - 3} more"
        return ", ".join(names) or "–"

    @admin.display(description="options")
    def options(self, task: Task) -> str:
        return summary(task).options or "–"

    @admin.display(description="duration")
    def duration_display(self, task: Task) -> str:
        return human_duration(task.duration)

    @admin.display(description="checkpoint")
    def checkpoint_json(self, task: Task) -> str:
        return format_html("<pre>{}</pre>", json.dumps(task.checkpoint, indent=2))

    @admin.display(description="params")
    def params_json(self, task: Task) -> str:
        return format_html("<pre>{}</pre>", json.dumps(task.params, indent=2))

    # --- reading only ------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting goes through `manage.py purge_tasks`: it removes saved files
        # too, and does not list a million log entries on a confirmation page.
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Task], search_term: str
    ) -> tuple[QuerySet[Task], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        number = term.removeprefix("#")
        if number.isdigit():
            return queryset.filter(pk=int(number)), False
        match = Q(error__icontains=term) | json_contains("params", term)
        return queryset.filter(match), False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        task = self.get_object(request, object_id)
        # Everything is read-only: changes go through the actions.
        context = {"show_save": False, "show_save_and_continue": False, **(extra_context or {})}
        if task is not None:
            context.update(self._log_context(request, task))
            context["input_request"] = task.pending_input
            context["fields"] = presenter.input_fields(task)
            # Not "Change task" over a raw "SUCCESS": nothing here is changed by hand.
            context["title"] = f"Task #{task.pk}"
            context["subtitle"] = f"{summary(task).title} · {task.get_status_display()}"
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _log_context(self, request: HttpRequest, task: Task) -> dict[str, Any]:
        entries = task.log_entries.order_by("id").only(
            "id", "timestamp", "level", "message", "context"
        )
        paginator = Paginator(entries, LOG_PAGE_SIZE)
        wanted = request.GET.get("log_page", "")
        # Newest last, and the newest page first: that is where a failure is.
        page = paginator.get_page(wanted if wanted.isdigit() else paginator.num_pages)
        return {"log_page": page, "log_page_range": _page_links(page)}

    # --- actions -----------------------------------------------------------

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Task],
        act: Callable[[Task], str | None],
        done: str,
    ) -> None:
        """Run ``act`` on each task; it returns why it refused, or None when it acted."""
        acted, refused = [], []
        for task in queryset.select_related(None).order_by("id"):
            try:
                problem = act(task)
            except IllegalTransition as exc:
                problem = str(exc)
            if problem:
                refused.append(f"#{task.pk}: {problem}")
            else:
                acted.append(f"#{task.pk}")
        if acted:
            self.message_user(request, f"{done}: {', '.join(acted)}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed — " + "; ".join(refused), messages.WARNING)

    @admin.action(description="Cancel selected tasks", permissions=["change"])
    def cancel_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        def cancel(task: Task) -> str | None:
            if not task.is_active:
                return f"it is {task.get_status_display().lower()}"
            task.cancel()
            TaskLog(task).warning(f"Cancel requested by {_actor(request)}.")
            return None

        self._each(request, queryset, cancel, "Cancelled (running ones stop after their step)")

    @admin.action(
        description="Retry selected tasks (from the checkpoint when safe)",
        permissions=["change"],
    )
    def retry_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        def retry(task: Task) -> str | None:
            if task.status not in (Status.FAILED, Status.CANCELLED):
                return f"it is {task.get_status_display().lower()}; only failed or cancelled tasks can be retried"
            try:
                engine.get_kind(task.kind)
            except LookupError:
                return f"this server does not know how to run {task.kind!r} tasks"
            engine.retry(task, by=request.user)  # from the checkpoint when that is safe
            return None

        self._each(request, queryset, retry, "Queued again")

    @admin.action(description="Expire the input request of selected tasks", permissions=["change"])
    def expire_input_requests(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        def expire(task: Task) -> str | None:
            if not engine.expire_input(task, by=request.user):
                return "it is not waiting for input"
            return None

        self._each(request, queryset, expire, "Expired (the tasks failed)")


def _kind_action(kind: TaskKind, action: AdminAction) -> Callable[..., None]:
    """A kind's action as the admin runs it: on the selected tasks of that kind (others
    are refused), acted or refused task by task."""

    @admin.action(description=action.description, permissions=["change"])
    def run(modeladmin: TaskAdmin, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        def act(task: Task) -> str | None:
            if task.kind != kind.name:
                other = find_kind(task.kind)
                what = other.label.lower() if other else repr(task.kind)
                return f"it is a {what}; this action is for a {kind.label.lower()}"
            return action.run(task, request.user)

        modeladmin._each(request, queryset, act, action.done)

    run.__name__ = action.name
    return run


def _page_links(page: Any) -> list[int | str]:
    if page.paginator.num_pages <= 1:
        return []
    return list(page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1))


admin.site.register(Task, TaskAdmin)
