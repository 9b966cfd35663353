"""Kinds of task: what a task does and what it means, registered by other apps.

The engine runs a kind's steps and knows nothing else of it. Everything a
person or a script reads about a task of that kind comes from the kind too:
its summary (title, route, items), its input fields, the keys of its JSON,
how its answers are read and checked. tasks_app never imports the apps that
register kinds (an import-linter contract checks it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tasks_app.models import InputRequest, Task
from tasks_app.tasklog import TaskLog


class TaskFailed(Exception):
    """A step failed with a reason a person understands; the task ends FAILED."""


class NeedsInput(Exception):
    """A step cannot go on without a person's answer; the task awaits input."""

    def __init__(self, message: str, request: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.request = request or {}


class Cancelled(Exception):
    pass


class RunLost(Exception):
    """This run no longer owns its task (its heartbeat found it reaped or moved)."""


@dataclass
class StepContext:
    task: Task
    log: TaskLog
    checkpoint: dict[str, Any]
    # Set by the heartbeat when this run no longer owns the task (reaped, or
    # moved by someone else): the step must stop at its next check.
    lost: threading.Event = field(default_factory=threading.Event)
    # What a step hands to the next ones of the same run (not saved: a run that
    # resumes later starts without it, so a step must do without).
    memo: dict[str, Any] = field(default_factory=dict)

    def check_cancelled(self) -> None:
        if self.lost.is_set():
            raise RunLost()
        if Task.objects.filter(pk=self.task.pk, cancel_requested=True).exists():
            raise Cancelled()


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[StepContext], None]
    # Safe to run again after a worker died in the middle of it?
    repeatable: bool = True


@dataclass(frozen=True)
class Summary:
    """A task in a few words, as the history, its page, the admin and toasts show it."""

    title: str
    # Where it works, e.g. "dev → prod"; empty when that says nothing.
    route: str = ""
    # What it works on (dashboard titles…), and what to call them.
    items: list[str] = field(default_factory=list)
    items_label: str = "Items"
    options: str = ""
    # Who needs a person's answers, e.g. the target's name ("prod needs this…").
    asker: str = ""
    # Related tasks or pages: (text, url), e.g. ("rolled back by #12", "/tasks/12/").
    links: list[tuple[str, str]] = field(default_factory=list)
    # What a person may do next besides the engine's actions: (label, url of a page
    # that says what it will do and asks to confirm), e.g. ("Roll back", …).
    actions: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class AdminAction:
    """An action a kind offers on its tasks in the Django admin's task list, e.g. a
    migration's "Roll back selected migrations"."""

    # The action's name in the admin (unique among all kinds' actions).
    name: str
    # As the admin's action menu shows it.
    description: str
    # Acts on one task of this kind for a staff user: None when it acted, else why it
    # refused (a sentence, shown next to the task's number).
    run: Callable[[Task, Any], str | None]
    # What the admin says of the tasks it acted on: "<done>: #1, #2."
    done: str = "Done"


def field_id(field: Mapping[str, Any]) -> str:
    """How one input field is named in answers: ``type:key``."""
    return f"{field['type']}:{field['key']}"


def _no_answers(task: Task, request: InputRequest, answers: dict[str, Any]) -> dict[str, str]:
    return {}


def answers_by_field_id(request: InputRequest, data: Mapping[str, Any]) -> dict[str, Any]:
    """Answers keyed by field id, as the web form and the terminal send them; a
    confirmation is a checkbox ("on") or a boolean."""
    answers: dict[str, Any] = {}
    for f in request.fields:
        fid = field_id(f)
        if fid not in data:
            continue
        value = data[fid]
        answers[fid] = value in (True, "on", "true") if f.get("input") == "confirm" else value
    return answers


@dataclass(frozen=True)
class TaskKind:
    name: str
    label: str
    steps: tuple[Step, ...]
    # The task in a few words (history row, page, admin, toast).
    summary: Callable[[Task], Summary] = lambda task: Summary(title="")
    # Keys of the task's JSON besides the engine's (cheap: lists carry them too).
    task_json: Callable[[Task], dict[str, Any]] = lambda task: {}
    # Extra keys of one task's JSON (``GET /api/tasks/{id}``), e.g. a plan and a report.
    details: Callable[[Task], dict[str, Any]] = lambda task: {}
    # What the task page shows besides: (template, context of a task as ``details``).
    page: tuple[str, Callable[[Task], dict[str, Any]]] | None = None
    # An input field as people and scripts see it: ``subject`` (what it is about, shown
    # in bold), ``detail`` (a line below it) and any keys the kind documents.
    field_info: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda field: {}
    # Answers from a request body (form, terminal or JSON) -> {field id: value}.
    parse_answers: Callable[[InputRequest, Mapping[str, Any]], dict[str, Any]] = answers_by_field_id
    # How an answer's error is named to a script (field id -> key of the body).
    answer_key: Callable[[str], str] = lambda fid: fid
    # Checks and applies a person's answers to an input request; returns
    # {field id: error} for the answers that were wrong. Runs in the web
    # process, so secrets never travel to a worker.
    answer: Callable[[Task, InputRequest, dict[str, Any]], dict[str, str]] = _no_answers
    # Called when a task of this kind is deleted or given up (clean saved files).
    cleanup: Callable[[Task], None] = lambda task: None
    # Why a failed or cancelled task of this kind must not run again ("" when it may),
    # e.g. a migration that was rolled back since.
    retry_refused: Callable[[Task], str] = lambda task: ""
    # What the task keeps on disk, by what it is (``{"backup": bytes}``): purge_tasks
    # says so before deleting.
    kept_files: Callable[[Task], dict[str, int]] = lambda task: {}
    # Actions of the admin's task list on tasks of this kind (staff with the change
    # permission; tasks of other kinds selected with them are refused).
    admin_actions: tuple[AdminAction, ...] = ()

    def step_named(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def steps_from(self, name: str) -> tuple[Step, ...]:
        names = [s.name for s in self.steps]
        return self.steps[names.index(name) :] if name in names else self.steps


_KINDS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> TaskKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"Unknown task kind {name!r}") from None


def all_kinds() -> tuple[TaskKind, ...]:
    """The kinds this server knows, in the order they were registered."""
    return tuple(_KINDS.values())


def find_kind(name: str) -> TaskKind | None:
    """The kind, or None when this server does not know it (the code changed)."""
    return _KINDS.get(name)


def summary(task: Task) -> Summary:
    kind = _KINDS.get(task.kind)
    if kind is None:
        return Summary(title=task.kind)
    found = kind.summary(task)
    return found if found.title else replace(found, title=kind.label)
