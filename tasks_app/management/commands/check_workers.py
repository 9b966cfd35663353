"""Queue a probe task and wait for a worker to run it."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tasks_app import engine
from tasks_app.models import Status, Task


class Command(BaseCommand):
    help = "Check that a worker takes and runs tasks: queue a probe task and wait for it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout", type=float, default=30.0, help="seconds to wait (default 30)"
        )

    def handle(self, *args, timeout: float, **options) -> None:
        if timeout <= 0:
            raise CommandError("--timeout must be positive.")
        task = engine.submit("probe", owner=None, params={"seconds": 0})
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            task.refresh_from_db()
            if task.status == Status.SUCCESS:
                worker = (
                    task.log_entries.filter(message="Probe ran")
                    .values_list("context", flat=True)
                    .first()
                )
                self.stdout.write(
                    f"OK: probe task #{task.pk} ran in {time.monotonic() - started:.2f} s "
                    f"on worker {(worker or {}).get('worker', '?')}."
                )
                return
            if task.is_finished:
                raise CommandError(f"Probe task #{task.pk} ended {task.status}: {task.error}")
            time.sleep(0.1)
        Task.objects.filter(pk=task.pk).first().cancel()
        raise CommandError(
            f"No worker ran probe task #{task.pk} within {timeout:g} s. Is a worker running "
            "(`manage.py run_worker`, or the web process with WORKER_MODE=thread)?"
        )
