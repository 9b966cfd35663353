from django.apps import AppConfig


class MigratorConfig(AppConfig):
    name = "migrator"
    verbose_name = "Migrator"

    def ready(self) -> None:
        # Registers the "migration" task kind with the task engine, and our
        # deploy checks.
        from migrator import checks, pipeline, rollback  # noqa: F401
