from django.contrib import admin

from tasks_app.models import Task, TaskLogEntry


class LogEntryInline(admin.TabularInline):
    model = TaskLogEntry
    fields = ["timestamp", "level", "message", "context"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "owner", "created_at", "started_at", "finished_at"]
    list_filter = ["status", "kind", "created_at"]
    search_fields = ["=id", "error"]
    list_select_related = ["owner"]
    readonly_fields = [f.name for f in Task._meta.fields]
    inlines = [LogEntryInline]

    def has_add_permission(self, request) -> bool:
        return False
