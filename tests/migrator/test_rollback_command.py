"""manage.py rollback_migration with the rollback's plan and steps faked (no Superset).

It follows its task with the same code as migrate_dashboards (cli.TaskCommand): these
tests check what is its own (the plan, starting once, the refusals) and that the task is
followed to its end. The real command against real Superset servers is in
tests/e2e/test_rollback.py.
"""

from __future__ import annotations

import dataclasses
import io
import time

import pytest
from django.core.management import CommandError, call_command

from migrator import cli, rollback
from migrator.models import Promotion
from migrator.pipeline import KIND as MIGRATION
from tasks_app import kinds
from tasks_app.engine import Step, TaskFailed
from tasks_app.models import Status, Task, TaskLogEntry

pytestmark = pytest.mark.django_db(transaction=True)

# The migration's dashboard ids (copied into the rollback's params) choose what the fake does.
OK, FAILS, SLOW = 1, 3, 4
PLAN = {
    "summary": {"delete": 1, "keep": 1, "restore": 1},
    "assets": [
        {"type": "dashboards", "name": "Sales", "action": "restore", "reason": "put back"},
        {"type": "charts", "name": "Revenue", "action": "delete", "reason": "created: deleted"},
        {
            "type": "charts",
            "name": "Edited since",
            "action": "keep",
            "reason": "changed on the target after the migration: left as it is",
            "warning": True,
        },
        {"type": "datasets", "name": "public.sales", "action": "untouched", "reason": "mapped"},
    ],
}


def _ids(ctx) -> set[int]:
    return {d["id"] for d in ctx.task.params["dashboards"]}


def _plan(ctx):
    if SLOW in _ids(ctx):
        time.sleep(0.5)
    Promotion.objects.create(task=ctx.task, plan=PLAN)
    ctx.log.info(f"Rollback plan for task #{ctx.task.params['migration']}: 1 restore, 1 delete")


def _undo(ctx):
    if FAILS in _ids(ctx):
        raise TaskFailed("prod refused to put the dashboards back: no such database")
    ctx.log.info("prod: put dashboards back from the backup")
    report = {
        "assets": [
            {"type": "dashboards", "name": "Sales", "outcome": "restored", "url": "http://p/d/7"},
            {"type": "charts", "name": "Revenue", "outcome": "deleted", "url": None},
        ],
        "warnings": [],
        "counts": {"deleted": 1, "restored": 1},
    }
    Promotion.objects.filter(task=ctx.task).update(report=report)


@pytest.fixture(autouse=True)
def _fake_rollback(monkeypatch):
    fake = dataclasses.replace(rollback.ROLLBACK, steps=(Step("plan", _plan), Step("undo", _undo)))
    monkeypatch.setitem(kinds._KINDS, rollback.KIND, fake)
    monkeypatch.setattr(cli.TaskCommand, "poll_seconds", 0.02)
    monkeypatch.setattr(rollback, "plan_rollback", _fake_plan)


def _fake_plan(migration):
    return {
        "migration": migration.pk,
        "target": {"id": 2, "name": "prod"},
        "backup": {"bytes": 12345},
        **PLAN,
    }


def _migration(envs, dashboard: int = OK, status: str = Status.SUCCESS, **plan) -> Task:
    task = Task.objects.create(
        kind=MIGRATION,
        status=status,
        params={
            "source": envs[0].as_ref(),
            "target": envs[1].as_ref(),
            "dashboards": [{"id": dashboard, "title": "Sales"}],
            "overwrite": True,
        },
    )
    Promotion.objects.create(task=task, plan=plan or {"dashboards": []})
    return task


def roll_back(*args: str) -> tuple[int, str]:
    """Run the command; (exit code, everything it printed)."""
    out = io.StringIO()
    try:
        call_command("rollback_migration", *args, stdout=out, stderr=out, stdin=io.StringIO(""))
    except CommandError as exc:
        out.write(f"\n{exc}")
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def test_the_plan_is_printed_and_nothing_is_started(envs, staff):
    migration = _migration(envs)
    code, out = roll_back(str(migration.pk), "--plan")
    assert code == 0, out
    assert (
        f"Rollback plan of migration #{migration.pk} on prod (its backup: 12,345 bytes). "
        "Nothing was started." in out
    )
    lines = out.splitlines()
    assert any(
        line.split() == ["dashboard", "Sales", "restore", "put", "back"] for line in lines
    ), out
    assert any(line.split()[:3] == ["chart", "Revenue", "delete"] for line in lines)
    assert any(
        "Edited since" in line and "keep" in line and line.endswith("WARNING") for line in lines
    )
    assert "public.sales" not in out  # untouched: not the rollback's
    assert "Summary: 1 delete, 1 keep, 1 restore." in out
    assert list(Task.objects.values_list("pk", flat=True)) == [migration.pk]
    assert Promotion.objects.get(task=migration).rolled_back_by is None


def test_a_rollback_is_followed_to_its_end_and_its_report_printed(envs, staff):
    migration = _migration(envs)
    code, out = roll_back(str(migration.pk))
    assert code == 0, out
    task = Task.objects.get(kind=rollback.KIND)
    assert (task.owner, task.status, task.params["migration"]) == (
        staff,
        Status.SUCCESS,
        migration.pk,
    )
    assert Promotion.objects.get(task=migration).rolled_back_by == task
    assert (
        f"Task #{task.pk}: rolling back migration #{migration.pk} on prod "
        f"(in the history as task #{task.pk})." in out
    )
    in_order = [
        "Status: Pending",
        f"Rollback plan for task #{migration.pk}",
        "put dashboards back from the backup",
        "Status: Succeeded",
        "Report:",
        f"Task #{task.pk} succeeded.",
    ]
    positions = [out.index(line) for line in in_order]
    assert positions == sorted(positions), out
    report = out.split("Report:")[1].splitlines()
    assert report[1].split() == ["dashboard", "Sales", "restored", "http://p/d/7"]
    assert report[2].split() == ["chart", "Revenue", "deleted"]
    # Its log printed once (not also through the server log).
    assert out.count("put dashboards back from the backup") == 1


def test_the_owner_can_be_chosen(envs, owner, staff):
    migration = _migration(envs)
    assert roll_back(str(migration.pk), "--user", "owner")[0] == 0
    assert Task.objects.get(kind=rollback.KIND).owner == owner


def test_a_failed_rollback_exits_1_with_its_error(envs, staff):
    migration = _migration(envs, FAILS)
    code, out = roll_back(str(migration.pk))
    assert code == cli.FAILED
    assert "failed: prod refused to put the dashboards back: no such database" in out
    assert Task.objects.get(kind=rollback.KIND).status == Status.FAILED


def test_the_timeout_cancels_the_rollback_and_exits_4(envs, staff):
    migration = _migration(envs, SLOW)
    code, out = roll_back(str(migration.pk), "--timeout", "0.1")
    assert code == cli.TIMED_OUT, out
    assert "not finished after 0.1 s; cancelling" in out
    assert f"Task #{Task.objects.get(kind=rollback.KIND).pk} timed out and is cancelled" in out
    # The slow step ends first (a step is not interrupted), then the task stops.
    assert Task.objects.get(kind=rollback.KIND).status == Status.CANCELLED
    assert "put dashboards back" not in out


def test_a_second_rollback_is_refused_and_names_the_first(envs, staff):
    migration = _migration(envs)
    assert roll_back(str(migration.pk))[0] == 0
    first = Task.objects.get(kind=rollback.KIND)
    for args in ([str(migration.pk)], [str(migration.pk), "--plan"]):
        code, out = roll_back(*args)
        assert code == cli.BAD_ARGUMENTS
        assert f"already rolled back by task #{first.pk}" in out
    assert Task.objects.filter(kind=rollback.KIND).count() == 1
    assert TaskLogEntry.objects.filter(task__kind=rollback.KIND).exclude(task=first).count() == 0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("a rollback", "is a rollback, not a migration"),
        ("running", "is running: a migration is rolled back once it has finished"),
        ("wrote nothing", "wrote nothing: there is nothing to roll back"),
        ("unknown", "There is no task #"),
    ],
)
def test_what_cannot_be_rolled_back_exits_2_and_says_why(envs, staff, case, message):
    if case == "a rollback":
        task = Task.objects.create(kind=rollback.KIND, status=Status.SUCCESS, params={})
    elif case == "running":
        task = _migration(envs, status=Status.RUNNING)
    elif case == "wrote nothing":
        task = _migration(envs)
        Promotion.objects.filter(task=task).update(plan=None)
    else:
        task = Task(pk=999)
    before = Task.objects.count()
    for plan in ([], ["--plan"]):
        code, out = roll_back(str(task.pk), *plan)
        assert code == cli.BAD_ARGUMENTS, out
        assert message in out
    assert Task.objects.count() == before


def test_malformed_arguments_are_refused():
    with pytest.raises(CommandError, match="'x' is not a task id"):
        call_command("rollback_migration", "x")
    with pytest.raises(CommandError, match="the following arguments are required: TASK_ID"):
        call_command("rollback_migration")
