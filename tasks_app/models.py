"""The task engine's records: a task, its log, and the rules of its life.

``Task`` is the source of truth for a task's status. django-tasks-db only
carries "run task N" messages to a worker; whatever it thinks of that message,
this table says what really happened.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import (
    Case,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    Value,
    When,
)
from django.utils import timezone
from django.utils.functional import cached_property

from tasks_app.signals import task_changed

# What PostgreSQL's text cannot hold (NUL), shown instead as the control picture.
UNSTORABLE = {"\x00": "\u2400"}


def storable(value: Any) -> Any:
    """``value`` (text, or JSON-like data) with what a database text or JSON column
    cannot hold replaced: where text from Superset, a person or a script enters."""
    if isinstance(value, str):
        for bad, shown in UNSTORABLE.items():
            value = value.replace(bad, shown)
        return value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


class StorableTextField(models.TextField):
    """Text cleaned by ``storable`` on its way into the database (saves, updates, lookups)."""

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(storable(value))


class StorableJSONField(models.JSONField):
    """JSON cleaned by ``storable`` on its way into the database (saves, updates, lookups)."""

    def get_prep_value(self, value: Any) -> Any:
        return super().get_prep_value(storable(value))


class IllegalTransition(Exception):
    """A status change the task's rules do not allow (or another process won the race)."""


class Status(models.TextChoices):
    PENDING = "PENDING", "Pending"
    RUNNING = "RUNNING", "Running"
    AWAITING_INPUT = "AWAITING_INPUT", "Requires input"
    SUCCESS = "SUCCESS", "Succeeded"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"


ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING, Status.AWAITING_INPUT)
FINISHED_STATUSES = (Status.SUCCESS, Status.FAILED, Status.CANCELLED)

# to-status -> the statuses it may be reached from
TRANSITIONS: dict[str, tuple[str, ...]] = {
    Status.RUNNING: (Status.PENDING,),
    Status.SUCCESS: (Status.RUNNING,),
    Status.FAILED: (Status.PENDING, Status.RUNNING, Status.AWAITING_INPUT),
    Status.AWAITING_INPUT: (Status.RUNNING,),
    Status.CANCELLED: (Status.PENDING, Status.RUNNING, Status.AWAITING_INPUT),
    # back to the queue: a resume, a retry, or a requeue after a lost worker
    Status.PENDING: (Status.AWAITING_INPUT, Status.RUNNING, Status.FAILED, Status.CANCELLED),
}


class TaskQuerySet(models.QuerySet["Task"]):
    def update(self, **kwargs: Any) -> int:
        """Every UPDATE of task rows makes a new version of them (``Task.version``),
        whichever code runs it; ``version=F("version")`` keeps it."""
        kwargs.setdefault("version", F("version") + 1)
        return super().update(**kwargs)

    def visible_to(self, user: Any) -> TaskQuerySet:
        # Everyone signed in sees the shared history (PRODUCT.md: "a shared,
        # auditable console"); who may act on a task is checked per action.
        return self

    def awaiting_input_count(self) -> int:
        """Shown in the header of every page (and pushed when it changes)."""
        return self.filter(status=Status.AWAITING_INPUT).count()

    def with_status(self, statuses: list[str] | None) -> TaskQuerySet:
        return self.filter(status__in=statuses) if statuses else self

    def stale(self, timeout_seconds: float) -> TaskQuerySet:
        """Running tasks whose worker stopped beating."""
        cutoff = timezone.now() - timedelta(seconds=timeout_seconds)
        return self.filter(status=Status.RUNNING).filter(
            Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        )


class Task(models.Model):
    kind = models.CharField(max_length=50, db_index=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
    )
    # What to do, described by the kind (never a secret); also what the
    # history shows, so a renamed or deleted environment keeps its history.
    params = StorableJSONField(default=dict, blank=True)
    # The step to run next and what earlier steps left for it.
    step = models.CharField(max_length=50, blank=True)
    checkpoint = StorableJSONField(default=dict, blank=True)
    error = StorableTextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker_id = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Working time (RUNNING) and waiting time (AWAITING_INPUT) of this attempt, summed
    # over its stretches as the status changes (``_transition``); the stretch under way
    # began at ``run_started_at`` / ``waiting_since``.
    worked = models.DurationField(default=timedelta(0))
    waited = models.DurationField(default=timedelta(0))
    run_started_at = models.DateTimeField(null=True, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)
    # Grows by one with every change of the row, in the same UPDATE, whichever
    # process makes it (TaskQuerySet.update). Live updates carry it: processes
    # publish in no particular order, and a browser keeps the newest it got.
    version = models.PositiveBigIntegerField(default=1)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "-id"], name="task_status_id")]

    def __str__(self) -> str:
        return f"Task #{self.pk} ({self.kind}, {self.status})"

    # --- reading ---------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def pending_input(self) -> InputRequest | None:
        """The open request of a task awaiting input (prefetch ``input_requests`` in lists)."""
        if self.status != Status.AWAITING_INPUT:
            return None
        pending = [r for r in self.input_requests.all() if r.state in InputRequest.PENDING]
        return pending[0] if pending else None

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return end - self.started_at

    @property
    def work_time(self) -> timedelta:
        """How long this attempt has worked (RUNNING), the stretch under way included."""
        if self.status == Status.RUNNING and self.run_started_at:
            return self.worked + max(timezone.now() - self.run_started_at, timedelta(0))
        return self.worked

    @property
    def wait_time(self) -> timedelta:
        """How long this attempt has waited for a person's answer (AWAITING_INPUT)."""
        if self.status == Status.AWAITING_INPUT and self.waiting_since:
            return self.waited + max(timezone.now() - self.waiting_since, timedelta(0))
        return self.waited

    def can_be_changed_by(self, user: Any) -> bool:
        return bool(user.is_staff or (self.owner_id is not None and self.owner_id == user.pk))

    # --- transitions -----------------------------------------------------

    def _transition(
        self, to: str, *, expected: tuple[str, ...] | None = None, **fields: Any
    ) -> None:
        """Move to ``to`` if the rules allow it, atomically.

        The UPDATE is conditional on the current status, so two processes
        racing for the same move cannot both win: the loser gets
        IllegalTransition and must not act.
        """
        allowed = TRANSITIONS[to]
        if expected is not None:
            allowed = tuple(s for s in allowed if s in expected)
        if self.status not in allowed:
            raise IllegalTransition(f"Task #{self.pk} cannot go from {self.status} to {to}.")
        fields["status"] = to
        fields["updated_at"] = now = timezone.now()
        for name, value in _clock_fields(to, now).items():
            fields.setdefault(name, value)
        query = Task.objects.filter(pk=self.pk, status__in=allowed)
        if self.status == Status.RUNNING:
            # Fencing: only the run this object knows (``attempts`` numbers the
            # runs). A worker that lost its task, or a reaper holding a stale
            # row, must not end a newer run that another worker has started.
            query = query.exclude(Q(status=Status.RUNNING) & ~Q(attempts=self.attempts))
        with transaction.atomic():
            if not query.update(**fields):  # the version grows in the same UPDATE
                current = Task.objects.filter(pk=self.pk).values_list("status", flat=True).first()
                raise IllegalTransition(
                    f"Task #{self.pk} cannot go from {current or 'deleted'} to {to}."
                )
            self._announce()

    def touch(self) -> None:
        """A change outside a transition (a kind filled in its params, or saved
        what it shows with the task): a new version, published like a transition."""
        with transaction.atomic():
            if Task.objects.filter(pk=self.pk).update(updated_at=timezone.now()):
                self._announce()

    def _announce(self) -> None:
        """Inside the transaction that just updated the row: our UPDATE holds its
        lock until the end, so what is read here is exactly the state this change
        made, under the version it got. Sent to whoever listens, and kept."""
        changed = Task.objects.select_related("owner").get(pk=self.pk)
        task_changed.send(sender=Task, task=changed, created=False)
        for f in Task._meta.concrete_fields:
            setattr(self, f.attname, getattr(changed, f.attname))

    def start(self, worker_id: str) -> None:
        now = timezone.now()
        self._transition(
            Status.RUNNING,
            worker_id=worker_id,
            started_at=self.started_at or now,
            heartbeat_at=now,
            finished_at=None,
            attempts=F("attempts") + 1,
        )

    def succeed(self) -> None:
        self._transition(Status.SUCCESS, finished_at=timezone.now(), error="", worker_id="")

    def fail(self, error: str) -> None:
        self._transition(
            Status.FAILED, finished_at=timezone.now(), error=error[:4000], worker_id=""
        )

    def await_input(self) -> None:
        self._transition(Status.AWAITING_INPUT, worker_id="", heartbeat_at=None)

    def cancel(self) -> None:
        if self.status == Status.RUNNING:
            # The worker stops at the next step boundary and records it.
            Task.objects.filter(pk=self.pk, status=Status.RUNNING).update(cancel_requested=True)
            self.cancel_requested = True
            return
        self._transition(Status.CANCELLED, finished_at=timezone.now(), worker_id="")

    def mark_cancelled(self) -> None:
        """Called by the worker when it honours a cancel request."""
        self._transition(
            Status.CANCELLED, expected=(Status.RUNNING,), finished_at=timezone.now(), worker_id=""
        )

    def resume(self) -> None:
        self._transition(Status.PENDING, expected=(Status.AWAITING_INPUT,))

    def retry(self, *, from_start: bool = False) -> None:
        # A retry is a new attempt: its start, working and waiting times are its own
        # (not the first attempt's, nor the time it lay cancelled or failed).
        fields: dict[str, Any] = {
            "error": "",
            "finished_at": None,
            "cancel_requested": False,
            "started_at": None,
            "worked": timedelta(0),
            "waited": timedelta(0),
        }
        if from_start:
            fields.update(step="", checkpoint={})
        self._transition(Status.PENDING, expected=(Status.FAILED, Status.CANCELLED), **fields)

    def requeue(self) -> None:
        """Back to the queue after its worker was lost (the step is safe to repeat)."""
        self._transition(
            Status.PENDING, expected=(Status.RUNNING,), worker_id="", heartbeat_at=None
        )

    def beat(self) -> bool:
        """Record that the worker is alive; False when this run is over (the task
        left RUNNING, or was reaped and started again elsewhere)."""
        return bool(
            Task.objects.filter(pk=self.pk, status=Status.RUNNING, attempts=self.attempts).update(
                # Not a change anyone sees: the version stays.
                heartbeat_at=timezone.now(),
                version=F("version"),
            )
        )

    def save_checkpoint(self, step: str, checkpoint: dict[str, Any]) -> None:
        Task.objects.filter(pk=self.pk).update(
            step=step, checkpoint=checkpoint, updated_at=timezone.now()
        )
        self.step = step
        self.checkpoint = checkpoint


def _since(column: str, now: Any) -> ExpressionWrapper:
    return ExpressionWrapper(
        Value(now, output_field=DateTimeField()) - F(column), output_field=DurationField()
    )


def _clock_fields(to: str, now: Any) -> dict[str, Any]:
    """The working and waiting clocks for a move to ``to``, as expressions on the row's
    status before the UPDATE (whatever this object believed it was): a stretch of
    RUNNING is added to ``worked``, one of AWAITING_INPUT to ``waited``."""
    running = Q(status=Status.RUNNING, run_started_at__isnull=False)
    waiting = Q(status=Status.AWAITING_INPUT, waiting_since__isnull=False)
    fields: dict[str, Any] = {
        "worked": Case(
            When(running, then=F("worked") + _since("run_started_at", now)),
            default=F("worked"),
        ),
        "waited": Case(
            When(waiting, then=F("waited") + _since("waiting_since", now)),
            default=F("waited"),
        ),
        "run_started_at": now if to == Status.RUNNING else None,
        "waiting_since": now if to == Status.AWAITING_INPUT else None,
    }
    return fields


class LogLevel(models.IntegerChoices):
    DEBUG = 10, "DEBUG"
    INFO = 20, "INFO"
    WARNING = 30, "WARNING"
    ERROR = 40, "ERROR"


# Context shown open in the log viewer up to this size; longer goes in a <details>.
CONTEXT_SHORT_LINES = 8
CONTEXT_SHORT_CHARS = 400


class TaskLogEntry(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="log_entries")
    timestamp = models.DateTimeField(default=timezone.now)
    level = models.PositiveSmallIntegerField(choices=LogLevel.choices, default=LogLevel.INFO)
    message = StorableTextField()
    context = StorableJSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["task", "id"], name="tasklog_task_id")]
        verbose_name = "log entry"
        verbose_name_plural = "log entries"

    def __str__(self) -> str:
        return f"[{self.level_name}] {self.message[:80]}"

    @property
    def level_name(self) -> str:
        try:
            return LogLevel(self.level).label
        except ValueError:
            return f"LEVEL {self.level}"

    @cached_property
    def context_text(self) -> str:
        """The context as indented JSON ("" when there is none)."""
        if not self.context:
            return ""
        return json.dumps(self.context, indent=2, ensure_ascii=False, default=str)

    @property
    def timestamp_text(self) -> str:
        """What the viewer shows before JavaScript turns it into the reader's local time."""
        local = timezone.localtime(self.timestamp)
        return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {local.tzname()}"

    @property
    def context_is_long(self) -> bool:
        text = self.context_text
        return text.count("\n") >= CONTEXT_SHORT_LINES or len(text) > CONTEXT_SHORT_CHARS

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "timestamp": self.timestamp.isoformat(),
            "level": self.level_name,
            "message": self.message,
            "context": self.context,
        }

    def as_text(self, *, clock: bool = False, context: bool = True) -> str:
        """One line (continuation lines indented), the context as compact JSON: the log
        download's and the terminal's format. ``clock``: the local time of day only (a
        terminal following a task); ``context``: with the context."""
        when = (
            f"{timezone.localtime(self.timestamp):%H:%M:%S}"
            if clock
            else self.timestamp.isoformat()
        )
        line = f"{when} {self.level_name:<7} {self.message}"
        if context and self.context:
            line += " " + json.dumps(self.context, ensure_ascii=False, default=str)
        return line.replace("\n", "\n    ")


class InputRequestQuerySet(models.QuerySet["InputRequest"]):
    def pending(self) -> InputRequestQuerySet:
        """Still to be answered: open, or being answered right now."""
        return self.filter(state__in=InputRequest.PENDING)


class InputRequest(models.Model):
    """What a task waiting for a person needs: a list of fields, never their values.

    Each field is ``{"key", "type", "label", "detail", "error"}``; the task's
    kind decides what they are and checks the answers. Values typed by a user
    are never stored here (nor anywhere): only the error a wrong one caused.
    """

    class State(models.TextChoices):
        OPEN = "OPEN", "Open"
        ANSWERING = "ANSWERING", "Being answered"
        ANSWERED = "ANSWERED", "Answered"
        EXPIRED = "EXPIRED", "Expired"
        CLOSED = "CLOSED", "Closed"

    # The states in which the task still waits for this request.
    PENDING = (State.OPEN, State.ANSWERING)

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="input_requests")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    message = StorableTextField(blank=True)
    fields = StorableJSONField(default=list)
    # Field ids answered for good in an earlier round of this request.
    accepted = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    objects = InputRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["task"],
                condition=Q(state__in=["OPEN", "ANSWERING"]),
                name="one_pending_input_request_per_task",
            )
        ]

    def __str__(self) -> str:
        return f"Input request #{self.pk} for task #{self.task_id} ({self.state})"

    @property
    def kinds(self) -> list[str]:
        return sorted({f["type"] for f in self.fields})

    def claim(self) -> bool:
        """Take the request for answering; False if another submission has it (or it closed)."""
        now = timezone.now()
        stale = now - timedelta(minutes=5)
        claimed = (
            InputRequest.objects.filter(pk=self.pk, expires_at__gt=now)
            .filter(Q(state=self.State.OPEN) | Q(state=self.State.ANSWERING, claimed_at__lt=stale))
            .update(state=self.State.ANSWERING, claimed_at=now)
        )
        if claimed:
            self.state, self.claimed_at = self.State.ANSWERING, now
        return bool(claimed)

    def reopen(self, fields: list[dict[str, Any]], accepted: list[str] | None = None) -> None:
        """Open again, asking only ``fields``; ``accepted``: field ids answered for good
        in this round (a client sending its whole answer map again is not refused)."""
        accepted = sorted({*self.accepted, *(accepted or [])})
        InputRequest.objects.filter(pk=self.pk, state=self.State.ANSWERING).update(
            state=self.State.OPEN, fields=fields, claimed_at=None, accepted=accepted
        )
        self.state, self.fields, self.claimed_at = self.State.OPEN, fields, None
        self.accepted = accepted

    def close(self, state: str, user: Any = None) -> None:
        fields: dict[str, Any] = {"state": state}
        if state == self.State.ANSWERED:
            fields.update(answered_at=timezone.now(), answered_by=user)
        InputRequest.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)
