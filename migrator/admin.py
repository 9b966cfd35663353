from django.contrib import admin

from migrator.forms import EnvironmentForm
from migrator.models import Environment


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    form = EnvironmentForm
    list_display = ["name", "url", "username", "provider", "updated_at"]
    search_fields = ["name", "url", "username"]
