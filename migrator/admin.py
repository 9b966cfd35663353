from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from migrator.dashboards import check_connection
from migrator.forms import EnvironmentForm
from migrator.models import DatabaseMapping, Environment
from tasks_app.admin import TaskAdmin
from tasks_app.models import Task


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    # EnvironmentForm: the password is write-only (never rendered back; blank keeps it
    # only while the URL, username and provider stay the same).
    form = EnvironmentForm
    # The admin's form factory names every field it shows; the model's password is not
    # editable (only set_password changes it), the form's own field stands for it.
    exclude = ["password"]
    list_display = [
        "name",
        "url",
        "username",
        "provider",
        "verify_tls",
        "superset_version",
        "updated_at",
    ]
    list_filter = ["provider", "verify_tls"]
    search_fields = ["name", "url", "username"]
    readonly_fields = ["superset_version", "created_at", "updated_at"]
    actions = ["test_connections"]

    # One permission covers seeing, adding, changing and deleting them here
    # (Environment.can_be_managed_by: staff, or a user or group given it).
    def has_module_permission(self, request: HttpRequest) -> bool:
        return Environment.can_be_managed_by(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return Environment.can_be_managed_by(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return Environment.can_be_managed_by(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return Environment.can_be_managed_by(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return Environment.can_be_managed_by(request.user)

    @admin.action(description="Test the connection of selected environments")
    def test_connections(self, request: HttpRequest, queryset: QuerySet[Environment]) -> None:
        for env in queryset:
            result = check_connection(env)
            level = messages.SUCCESS if result["ok"] else messages.ERROR
            self.message_user(request, f"{env.name}: {result['message']}", level)


@admin.register(DatabaseMapping)
class DatabaseMappingAdmin(admin.ModelAdmin):
    list_display = [
        "source",
        "target",
        "source_database",
        "action",
        "target_database",
        "updated_at",
    ]
    list_filter = ["source", "target", "action"]
    search_fields = ["source_database", "target_database"]


class EnvironmentFilter(admin.SimpleListFilter):
    """Tasks from or to an environment (by id, so a renamed one keeps its tasks)."""

    title = "environment"
    parameter_name = "environment"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in Environment.objects.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> QuerySet[Task]:
        value = self.value()
        if not value or not value.isdigit():
            return queryset
        pk = int(value)
        return queryset.filter(Q(params__source__id=pk) | Q(params__target__id=pk))


class MigrationTaskAdmin(TaskAdmin):
    """The generic task admin, plus what only this app knows: environments."""

    list_filter = [*TaskAdmin.list_filter, EnvironmentFilter]


admin.site.unregister(Task)
admin.site.register(Task, MigrationTaskAdmin)
