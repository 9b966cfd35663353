from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "Tasks"

    def ready(self) -> None:
        # Registers the built-in "probe" task kind.
        from tasks_app import probe  # noqa: F401
