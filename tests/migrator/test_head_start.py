"""What the start of a migration read of the target, handed to its task (fakes; the
real Supersets: tests/e2e)."""

from __future__ import annotations

import io
from contextlib import contextmanager

import pytest
from django.core.files.storage import default_storage

from migrator import pipeline, promote, sessions
from migrator.superset.assets import scan
from tests.migrator.test_inventory_reads import CHANGED_ON, FakeTarget
from tests.migrator.test_plan import CH, DA, DB, _bundle

TWIN = {
    "id": 4,
    "uuid": DA,
    "slug": "sales",
    "dashboard_title": "Sales",
    "changed_on_utc": CHANGED_ON,
}
SALES = {"id": 2, "title": "Sales", "uuid": DA, "slug": "sales"}


def _start(owner, envs, seen, dashboard=SALES):
    """A migration of one dashboard from envs[0] to envs[1], with this head start."""
    return pipeline.start_migration(
        owner=owner,
        source=envs[0],
        target=envs[1],
        dashboards=[dict(dashboard)],
        overwrite=True,
        seen=seen,
    )


CONNECTIONS = [{"id": 1, "uuid": DB, "database_name": "analytics", "backend": "postgresql"}]


def _lend(monkeypatch, target=None, source=None) -> None:
    """Sessions of these fakes: ``source`` for the environment "dev", else ``target``."""

    @contextmanager
    def borrow(env, **kwargs):
        yield source if source is not None and getattr(env, "name", None) == "dev" else target

    monkeypatch.setattr(sessions, "borrow", borrow)


@pytest.fixture
def target(monkeypatch):
    fake = FakeTarget()
    fake.exporting.set()  # nothing here waits for the export
    _lend(monkeypatch, fake)
    return fake


def test_what_the_start_read_is_not_read_again(target):
    known = {"databases": CONNECTIONS, "dashboards": [TWIN]}
    found = promote.early_reads("target", [{"uuid": DA}], known, records={DA: CHANGED_ON})
    assert target.calls == {}
    assert (found["databases"], found["dashboards"]) == (CONNECTIONS, [TWIN])


def test_a_dashboard_the_target_changed_since_is_exported_at_once(target):
    """Whatever the source holds now, it is compared by content: its export from the
    target starts with the early reads, and the plan does not export it again."""
    for records in ({DA: "2026-11-30T09:00:00"}, {}):  # changed since, or never ours
        target.calls.clear()
        found = promote.early_reads(
            "target", [{"uuid": DA}], {"dashboards": [TWIN]}, records=records
        )
        assert target.calls == {
            ("databases", ""): 1,
            ("release", ""): 1,
            ("dashboard export", "4"): 1,
        }
        assert ("dashboards", DA) in found["copies"]
        target.calls.clear()
        bundle = scan(io.BytesIO(_bundle()))
        inventory = promote.read_inventory("target", bundle, {}, found)
        assert target.calls == {("dataset", "uuid"): 1, ("chart", "uuid"): 1}
        assert ("dashboards", DA) in inventory.copies


def test_a_slug_read_without_the_twin_is_no_uuid_read(target):
    """Found by slug: another dashboard of the target's own (a conflict), not the twin.
    The twin may still be there under another slug: read by uuid."""
    theirs = TWIN | {"id": 9, "uuid": "another"}
    found = promote.early_reads("target", [{"uuid": DA}], {"dashboards": [theirs]})
    assert target.calls == {("databases", ""): 1, ("release", ""): 1, ("dashboard", "uuid"): 1}
    assert [r["uuid"] for r in found["dashboards"]] == [DA]
    assert "copies" not in found  # no record asked about: the plan decides


class FakeSource:
    def __init__(self) -> None:
        self.exports = 0

    def get_dashboards(self, ids):
        return [{"id": 2, "uuid": DA, "title": "Sales", "slug": "sales"}]

    def list_databases(self):
        return CONNECTIONS

    def export_dashboards(self, ids, dest):
        self.exports += 1
        data = _bundle()
        dest.write(data)
        return len(data)


def test_the_check_of_a_start_keeps_what_it_read_of_the_target(monkeypatch, envs):
    source, target = FakeSource(), FakeTarget()
    _lend(monkeypatch, target, source)
    seen: dict = {}
    errors = promote.check_choices(
        envs[0], envs[1], [2], databases={}, conflicts={}, require_answers=True, seen=seen
    )
    assert errors == {}
    # The source's export for the task began as soon as the source had answered, and the
    # rest of the plan's early reads once the target had (both on threads of their own:
    # waited for before counting).
    size, file = seen["export"].result()
    early = seen["early"].result()
    assert (source.exports, size) == (1, len(_bundle()))
    # The slug read it makes anyway, the connections, read while the source answered, and
    # a dashboard the target has and no migration wrote, compared by content: its export.
    assert target.calls == {
        ("dashboard", "slug"): 1,
        ("databases", ""): 1,
        ("release", ""): 1,
        ("dashboard export", "4"): 1,
    }
    assert [r["uuid"] for r in seen["dashboards"]] == [DA]
    assert seen["databases"][0]["uuid"] == DB
    assert ("dashboards", DA) in early["copies"]
    pipeline.drop_head_start(seen)
    assert file.closed and all(e.file.closed for e in early["exports"])


def test_a_start_that_maps_a_connection_reads_the_targets_connections_once(monkeypatch, envs):
    """The mapping's check read them: the head start takes that read."""
    source, target = FakeSource(), FakeTarget()
    _lend(monkeypatch, target, source)
    seen: dict = {}
    errors = promote.check_choices(
        envs[0],
        envs[1],
        [2],
        databases={"analytics": {"action": "map", "target": "analytics"}},
        conflicts={},
        require_answers=True,
        seen=seen,
    )
    assert errors == {}
    seen["early"].result()  # its reads too, on a thread of its own
    assert target.calls[("databases", "")] == 1
    assert seen["databases"][0]["uuid"] == DB and seen["release"] == "6.1.0"
    pipeline.drop_head_start(seen)


@pytest.mark.django_db
def test_a_head_start_is_for_its_task_once_and_only_while_fresh(monkeypatch, owner, envs):
    now = [100.0]
    monkeypatch.setattr(pipeline, "_clock", lambda: now[0])

    task = _start(owner, envs, {"dashboards": [TWIN]})
    assert pipeline._head_start(task.pk) == {"dashboards": [TWIN]}
    assert pipeline._head_start(task.pk) is None  # taken
    task = _start(owner, envs, {"dashboards": [TWIN]})
    now[0] += pipeline.HEAD_START_FRESH + 0.1  # the task waited for a worker
    assert pipeline._head_start(task.pk) is None
    assert pipeline._head_start(_start(owner, envs, None).pk) is None


@pytest.mark.django_db
def test_the_export_step_hands_the_head_start_and_the_records_to_the_early_reads(
    monkeypatch, owner, envs
):
    from migrator.models import PromotedAsset
    from tasks_app.engine import StepContext
    from tasks_app.tasklog import TaskLog

    _lend(monkeypatch, source=FakeSource())
    given = []
    monkeypatch.setattr(
        promote, "early_reads", lambda env, rows, known, records: given.append((known, records))
    )
    PromotedAsset.objects.create(
        target=envs[1], asset_type="dashboards", uuid=DA, source_hash="h", target_changed_on="t"
    )
    task = _start(owner, envs, {"dashboards": [TWIN]})
    ctx = StepContext(task=task, log=TaskLog(task), checkpoint={})
    pipeline.export_step(ctx)
    ctx.memo["early_reads"].result()
    assert given == [({"dashboards": [TWIN]}, {DA: "t"})]


@pytest.mark.django_db
def test_the_export_step_takes_the_export_the_start_began(monkeypatch, owner, envs):
    """The source is not asked again: the saved bundle is the head start's export."""
    from tasks_app.engine import StepContext
    from tasks_app.tasklog import TaskLog

    source = FakeSource()
    _lend(monkeypatch, source=source)
    monkeypatch.setattr(promote, "early_reads", lambda *args: None)
    seen = {"export": promote._exporter.submit(promote.export_to_file, envs[0], [2])}
    seen["export"].result()
    task = _start(owner, envs, seen)
    ctx = StepContext(task=task, log=TaskLog(task), checkpoint={})
    pipeline.export_step(ctx)
    assert source.exports == 1
    with default_storage.open(ctx.checkpoint["bundle"], "rb") as saved:
        assert saved.read() == _bundle()

    # One that has not begun (the threads busy with other starts') is not waited for.
    from concurrent.futures import Future

    queued = Future()
    task = _start(owner, envs, {"export": queued, "early": Future()})
    pipeline.export_step(StepContext(task=task, log=TaskLog(task), checkpoint={}))
    assert source.exports == 2 and queued.cancelled()


@pytest.mark.django_db
def test_a_head_start_nobody_takes_in_time_closes_its_files(monkeypatch, owner, envs):
    now = [100.0]
    monkeypatch.setattr(pipeline, "_clock", lambda: now[0])
    files = []

    def seen():
        files.append(io.BytesIO(b"zip"))
        future = promote._exporter.submit(lambda: (3, files[-1]))
        future.result()
        return {"export": future}

    def start():
        return _start(owner, envs, seen(), {"id": 2})

    stale = start()
    now[0] += pipeline.HEAD_START_FRESH + 0.1
    start()  # keeping another one lets the stale one go
    assert files[0].closed and not files[1].closed
    assert pipeline._head_start(stale.pk) is None
    for _ in range(pipeline._HEAD_STARTS_KEPT):  # and no more than these are kept
        start()
    assert files[1].closed and not files[-1].closed


def _older_title() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(_bundle())) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if "dashboards/" in info.filename:
                data = data.replace(b"dashboard_title: Sales", b"dashboard_title: Sales (old)")
            new.writestr(info, data)
    return out.getvalue()


@pytest.mark.django_db
def test_the_backup_takes_the_export_the_plan_read_before_anything_was_written(target, owner, envs):
    """A dashboard the target changed since is exported once: to compare it while
    planning, and that export is its backup (this run, before the first write)."""
    from migrator import rollback
    from migrator.plan import Choices, make_plan
    from migrator.superset.assets import scan as scan_bundle
    from tasks_app.models import Task

    target.export = _older_title  # the target has an older version of the dashboard
    found = promote.early_reads("target", [{"uuid": DA}], {"dashboards": [TWIN]}, records={})
    kept: list = []
    bundle = scan(io.BytesIO(_bundle(chart="Renamed")))  # and the source a renamed chart
    inventory = promote.read_inventory("target", bundle, {}, found, kept)
    assert [export.ids for export in kept] == [frozenset({4})]
    plan = make_plan(bundle, inventory, Choices(overwrite=True))
    assert [i["action"] for kind in ("dashboards", "charts") for i in plan[kind]] == [
        "update",
        "update",
    ]
    task = Task.objects.create(kind="migration", owner=owner)
    target.calls.clear()
    backup = rollback.take_backup(envs[1], plan, task, kept)
    # Nothing is exported again: the dashboard's export carries the chart it updates.
    assert target.calls == {}
    assert set(backup["assets"]) == {"charts", "dashboards"}
    with default_storage.open(backup["file"]) as saved:
        assert {("dashboards", DA), ("charts", CH)} <= {
            (a.type, a.uuid) for a in scan_bundle(saved).assets
        }
    promote.close_exports(kept)


@pytest.mark.django_db
def test_an_export_of_other_dashboards_is_no_backup(target, owner, envs):
    from migrator import rollback
    from tasks_app.models import Task

    plan = {kind: [] for kind in ("databases", "datasets", "charts")} | {
        "dashboards": [{"action": "update", "uuid": DA, "name": "Sales", "target": TWIN}]
    }
    other = io.BytesIO(_bundle())
    task = Task.objects.create(kind="migration", owner=owner)
    rollback.take_backup(envs[1], plan, task, [promote.Export(frozenset({9}), other, frozenset())])
    assert target.calls == {("dashboard export", "4"): 1}


def test_a_start_reads_ahead_only_when_a_worker_here_is_idle(monkeypatch):
    """A task that waits for a worker reads the target anew: reading ahead for it would
    only load both Supersets twice."""
    import threading
    from types import SimpleNamespace

    from tasks_app import worker

    one = SimpleNamespace(busy=False, stopping=threading.Event())
    monkeypatch.setattr(worker, "_embedded", [])
    assert not pipeline.head_start_wanted()  # external workers
    monkeypatch.setattr(worker, "_embedded", [one])
    assert pipeline.head_start_wanted()
    one.busy = True
    assert not pipeline.head_start_wanted()
