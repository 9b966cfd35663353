from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import path

from migrator import views
from migrator.api import api
from tasks_app import views as task_views


def _api_urls():
    # The API answers 401 itself (JSON) instead of LoginRequiredMiddleware's
    # redirect to the login page.
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        pattern.callback = login_not_required(pattern.callback)
    return patterns, app_name, namespace


urlpatterns = [
    path("", views.migration_page, name="home"),
    path("migrations/start/", views.start, name="migration-start"),
    path("migrations/dashboards/", views.dashboard_picker, name="dashboard-picker"),
    path("migrations/preview/", views.preview, name="migration-preview"),
    path("environments/", views.environment_list, name="environment-list"),
    path("environments/add/", views.environment_edit, name="environment-add"),
    path("environments/<int:env_id>/", views.environment_edit, name="environment-edit"),
    path("environments/<int:env_id>/delete/", views.environment_delete, name="environment-delete"),
    path("environments/<int:env_id>/test/", views.environment_test, name="environment-test"),
    path("environments/try/", views.environment_try, name="environment-try"),
    path("environments/<int:env_id>/try/", views.environment_try, name="environment-try"),
    path(
        "environments/mappings/<int:mapping_id>/delete/",
        views.mapping_delete,
        name="mapping-delete",
    ),
    path("tasks/table/", task_views.task_table, name="task-table"),
    path("tasks/rows/", task_views.task_rows, name="task-rows"),
    path("tasks/<int:task_id>/", task_views.task_detail, name="task-detail"),
    path("tasks/<int:task_id>/logs", task_views.task_logs, name="task-logs"),
    path("tasks/<int:task_id>/logs/entries", task_views.task_log_entries, name="task-log-entries"),
    path(
        "tasks/<int:task_id>/logs/download", task_views.task_log_download, name="task-log-download"
    ),
    path("tasks/<int:task_id>/input/", task_views.task_input, name="task-input"),
    path("tasks/<int:task_id>/answer/", task_views.task_answer, name="task-answer"),
    path("tasks/<int:task_id>/cancel/", task_views.task_cancel, name="task-cancel"),
    path("tasks/<int:task_id>/retry/", task_views.task_retry, name="task-retry"),
    path("tasks/<int:task_id>/rollback/", views.task_rollback, name="task-rollback"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", _api_urls()),
]
