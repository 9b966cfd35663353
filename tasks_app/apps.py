from django.apps import AppConfig


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = "Tasks"

    def ready(self) -> None:
        # probe: registers the built-in "probe" task kind.
        from tasks_app import live, probe, signals  # noqa: F401

        # Signals at the seam: the models announce changes, the live layer publishes them.
        signals.task_changed.connect(live.on_task_changed, dispatch_uid="tasks_app.live")
        signals.log_written.connect(live.on_log_written, dispatch_uid="tasks_app.live.log")
