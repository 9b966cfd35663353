from django.apps import AppConfig


class MigratorConfig(AppConfig):
    name = "migrator"
    verbose_name = "Migrator"

    def ready(self) -> None:
        # Registers the "migration" task kind with the task engine.
        from migrator import pipeline  # noqa: F401
