"""Which tasks the retention policy deletes, and deleting them in batches.

A task is kept while it is among the newest ``keep`` tasks *and* finished
less than ``days`` days ago; 0 turns a rule off. Active tasks (pending,
running, waiting for input) are never deleted: a task waiting for input is
failed first when its request expires (``engine.expire_input_requests``), and
then follows the rules like any failed task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import batched

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tasks_app.models import FINISHED_STATUSES, InputRequest, Status, Task, TaskLogEntry

logger = logging.getLogger("tasks_app.retention")

# Small enough for SQLite's 999 bound parameters, large enough that 100,000
# tasks take a few hundred queries, not a few hundred thousand.
BATCH_SIZE = 500


@dataclass(frozen=True)
class Policy:
    days: int
    keep: int
    now: datetime = field(default_factory=timezone.now)

    @property
    def is_off(self) -> bool:
        return not self.days and not self.keep

    def describe(self) -> str:
        rules = []
        if self.days:
            rules.append(f"finished more than {self.days} day(s) ago")
        if self.keep:
            rules.append(f"beyond the newest {self.keep}")
        return " or ".join(rules) or "none (both rules are off)"

    def _beyond_newest(self) -> Q | None:
        if not self.keep:
            return None
        ids = list(
            Task.objects.order_by("-id").values_list("id", flat=True)[self.keep - 1 : self.keep]
        )
        # Fewer tasks than `keep`: nobody is beyond the newest.
        return Q(pk__lt=ids[0]) if ids else Q(pk__in=[])

    def _too_old(self) -> Q | None:
        if not self.days:
            return None
        cutoff = self.now - timedelta(days=self.days)
        return Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)

    def candidates(self, *, expiring: list[int] | None = None) -> QuerySet[Task]:
        """The tasks to delete, oldest first.

        ``expiring``: waiting tasks that are about to be failed as expired (a
        dry run shows them as the real run would see them: finished just now,
        so only the count rule can reach them).
        """
        beyond, too_old = self._beyond_newest(), self._too_old()
        if beyond is None and too_old is None:
            return Task.objects.none()
        finished = Q(status__in=FINISHED_STATUSES)
        rule = finished & ((beyond or Q(pk__in=[])) | (too_old or Q(pk__in=[])))
        if expiring and beyond is not None:
            rule |= Q(status=Status.AWAITING_INPUT, pk__in=expiring) & beyond
        return Task.objects.filter(rule).order_by("id")


def expired_waiting(now: datetime | None = None) -> list[int]:
    """Tasks whose input request expired but that still wait (no worker ran since)."""
    return list(
        InputRequest.objects.filter(
            state=InputRequest.State.OPEN,
            expires_at__lt=now or timezone.now(),
            task__status=Status.AWAITING_INPUT,
        ).values_list("task_id", flat=True)
    )


@dataclass
class Result:
    tasks: int = 0
    log_entries: int = 0
    input_requests: int = 0
    cleanup_errors: list[str] = field(default_factory=list)


def _chunks(queryset: QuerySet[Task]) -> Iterator[tuple[int, ...]]:
    return batched(queryset.values_list("id", flat=True), BATCH_SIZE)


def purge(
    queryset: QuerySet[Task],
    cleanup: Callable[[Task], None],
    on_batch: Callable[[list[Task]], None] | None = None,
) -> Result:
    """Delete ``queryset``'s tasks with their log and input requests, batch by batch.

    Each batch is locked and re-checked, so a task retried meanwhile stays.
    ``cleanup`` (the kind's hook: saved files) runs after the batch's commit,
    once per task really deleted.
    """
    result = Result()
    for chunk in _chunks(queryset):
        with transaction.atomic():
            tasks = list(
                Task.objects.select_for_update()
                .filter(pk__in=chunk, status__in=FINISHED_STATUSES)
                .only("id", "kind", "status", "params", "checkpoint", "created_at", "finished_at")
            )
            if not tasks:
                continue
            _, counts = Task.objects.filter(pk__in=[t.pk for t in tasks]).delete()
        result.tasks += counts.get(Task._meta.label, 0)
        result.log_entries += counts.get(TaskLogEntry._meta.label, 0)
        result.input_requests += counts.get(InputRequest._meta.label, 0)
        for task in tasks:
            try:
                cleanup(task)
            except Exception as exc:  # one broken file must not stop the purge
                logger.exception("Cleanup of task %s failed", task.pk)
                result.cleanup_errors.append(f"#{task.pk}: {type(exc).__name__}: {exc}")
        if on_batch is not None:
            on_batch(tasks)
    return result


def finished_queue_messages(now: datetime | None = None) -> QuerySet[DBTaskResult]:
    """django-tasks-db's "run task N" rows that ran more than a day ago.

    The Task table is the record of what happened; these are only the
    delivery notes, and would otherwise grow forever.
    """
    cutoff = (now or timezone.now()) - timedelta(days=1)
    return DBTaskResult.objects.finished().filter(finished_at__lt=cutoff)
