"""The migration steps with Superset replaced by a fake client (the real one: tests/e2e)."""

from __future__ import annotations

import io
import zipfile
from contextlib import contextmanager

import pytest
import yaml
from django.core.files.storage import default_storage

from migrator import pipeline, sessions
from migrator.models import Environment, Promotion
from migrator.plan import Choices, Inventory, make_plan
from migrator.superset.assets import scan
from migrator.superset.bundle import strip_fields
from migrator.superset.errors import ImportRejected
from migrator.superset.problems import parse_import_error
from tasks_app.engine import NeedsInput, StepContext
from tasks_app.models import Task
from tasks_app.tasklog import TaskLog

pytestmark = pytest.mark.django_db

ROOT = "dashboard_export_20261129T000000"
ISSUES = [
    {"code": 1010, "message": "Issue 1010 - Superset encountered an error while running a command."}
]


def _bundle() -> bytes:
    members = {
        "metadata.yaml": {"version": "1.0.0", "type": "Dashboard"},
        "dashboards/Ops_2.yaml": {
            "dashboard_title": "Ops",
            "theme_uuid": "t-1",
            "uuid": "d-1",
            "position": {"CHART-1": {"type": "CHART", "meta": {"chartId": 7, "uuid": "c-1"}}},
        },
        "datasets/analytics/shipments_2.yaml": {
            "table_name": "shipments",
            "folders": None,
            "columns": [{"column_name": "a", "datetime_format": None}, {"column_name": "b"}],
            "uuid": "ds-1",
            "database_uuid": "db-1",
        },
        "databases/analytics.yaml": {
            "database_name": "analytics",
            "sqlalchemy_uri": "postgresql://u:XXXXXXXXXX@h/analytics",
            "configuration_method": "sqlalchemy_form",
            "uuid": "db-1",
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, document in members.items():
            archive.writestr(f"{ROOT}/{path}", yaml.safe_dump(document))
        big = {"slice_name": "Big", "description": "x" * 100_000, "uuid": "c-1"}
        archive.writestr(f"{ROOT}/charts/big.yaml", yaml.safe_dump(big | {"dataset_uuid": "ds-1"}))
    return buffer.getvalue()


# As Superset 4.1.4 answers a bundle exported by 6.1 (SUPERSET_API.md).
UNKNOWN_41 = {
    "errors": [
        {
            "message": "Error importing dashboard",
            "error_type": "GENERIC_COMMAND_ERROR",
            "level": "warning",
            "extra": {
                "dashboards/Ops_2.yaml": {"theme_uuid": ["Unknown field."]},
                "databases/analytics.yaml": {"configuration_method": ["Unknown field."]},
                "datasets/analytics/shipments_2.yaml": {
                    "columns": {"0": {"datetime_format": ["Unknown field."]}},
                    "folders": ["Unknown field."],
                },
                "issue_codes": ISSUES,
            },
        }
    ]
}
PASSWORD_41 = {
    "errors": [
        {
            "message": "Error importing dashboard",
            "error_type": "GENERIC_COMMAND_ERROR",
            "level": "warning",
            "extra": {
                "databases/analytics.yaml": {
                    "_schema": ["Must provide a password for the database"]
                },
                "issue_codes": ISSUES,
            },
        }
    ]
}


def test_strip_fields_removes_exactly_what_was_reported():
    problems = parse_import_error(UNKNOWN_41)
    assert problems.only_unknown_fields and not problems.fixable_by_input
    out = io.BytesIO()
    removed = strip_fields(io.BytesIO(_bundle()), out, problems.unknown_fields)
    assert sorted(removed) == [
        "dashboards/Ops_2.yaml: theme_uuid",
        "databases/analytics.yaml: configuration_method",
        "datasets/analytics/shipments_2.yaml: columns.0.datetime_format",
        "datasets/analytics/shipments_2.yaml: folders",
    ]
    with zipfile.ZipFile(out) as archive:
        dataset = yaml.safe_load(archive.read(f"{ROOT}/datasets/analytics/shipments_2.yaml"))
        assert dataset["columns"] == [{"column_name": "a"}, {"column_name": "b"}]
        assert "folders" not in dataset
        with zipfile.ZipFile(io.BytesIO(_bundle())) as original:
            # Copied as it was:
            assert archive.read(f"{ROOT}/charts/big.yaml") == original.read(
                f"{ROOT}/charts/big.yaml"
            )
        assert "theme_uuid" not in yaml.safe_load(archive.read(f"{ROOT}/dashboards/Ops_2.yaml"))


class FakeTarget:
    """Answers each import with the next of ``answers`` (an exception or None)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.bundles: list[bytes] = []

    def import_assets(self, resource, bundle, *, overwrite):
        assert resource == "dashboard"
        self.bundles.append(bundle.read())
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer


@pytest.fixture
def ctx(monkeypatch):
    def use(client):
        @contextmanager
        def borrow(env, **kwargs):
            yield client

        monkeypatch.setattr(sessions, "borrow", borrow)

    envs = [
        Environment.objects.create(name=n, url=f"http://{n}", username="u", password="p")
        for n in ("new", "old41")
    ]
    task = Task.objects.create(
        kind="migration",
        params={
            "source": envs[0].as_ref(),
            "target": envs[1].as_ref(),
            "dashboards": [{"id": 2, "title": "Ops"}],
            "overwrite": True,
        },
    )
    name = default_storage.save(f"bundles/task-{task.pk}.zip", io.BytesIO(_bundle()))
    # A target that has nothing yet: everything is created by one dashboard import.
    plan = make_plan(scan(io.BytesIO(_bundle())), Inventory(), Choices(overwrite=True))
    Promotion.objects.create(task=task, plan=plan)
    context = StepContext(task=task, log=TaskLog(task), checkpoint={"bundle": name})
    context.use = use
    return context


def _rejected(body: dict) -> ImportRejected:
    return ImportRejected("refused", status=422, problems=parse_import_error(body))


def test_an_older_target_gets_the_bundle_without_the_fields_it_does_not_know(ctx):
    target = FakeTarget([_rejected(UNKNOWN_41), None])
    ctx.use(target)
    pipeline.import_step(ctx)
    assert len(target.bundles) == 2
    with zipfile.ZipFile(io.BytesIO(target.bundles[1])) as archive:
        assert "theme_uuid" not in archive.read(f"{ROOT}/dashboards/Ops_2.yaml").decode()
    messages = list(ctx.task.log_entries.values_list("message", flat=True))
    assert any("older Superset that does not know 4 field(s)" in m for m in messages)
    assert messages[-1] == "Imported into old41"
    # The bundle written for the import call is gone; the saved export stays for the check.
    assert default_storage.listdir("bundles")[1] == [ctx.checkpoint["bundle"].split("/")[-1]]


def test_after_stripping_an_older_target_can_still_ask_for_passwords(ctx):
    ctx.use(FakeTarget([_rejected(UNKNOWN_41), _rejected(PASSWORD_41)]))
    with pytest.raises(NeedsInput) as asked:
        pipeline.import_step(ctx)
    (field,) = asked.value.request["fields"]
    assert (field["key"], field["type"], field["database_name"]) == (
        "databases/analytics.yaml",
        "password",
        "analytics",
    )
    # The prompt's answers will be checked against the stripped bundle, now the checkpoint.
    with default_storage.open(ctx.checkpoint["bundle"]) as saved, zipfile.ZipFile(saved) as archive:
        assert (
            "configuration_method" not in archive.read(f"{ROOT}/databases/analytics.yaml").decode()
        )


def test_unknown_fields_that_keep_coming_fail_the_task(ctx):
    from tasks_app.engine import TaskFailed

    ctx.use(FakeTarget([_rejected(UNKNOWN_41)] * 3))
    with pytest.raises(TaskFailed, match="Unknown field"):
        pipeline.import_step(ctx)


class FakeSource:
    """Knows dashboard 2 ("Ops"); exports the test bundle."""

    data = _bundle()

    def get_dashboards(self, ids):
        return [{"id": 2, "uuid": "d-1", "title": "Ops", "slug": "ops"}] if 2 in ids else []

    def export_dashboards(self, ids, dest):
        dest.write(self.data)
        return len(self.data)


def test_the_export_keeps_the_bundle_and_fills_in_titles(ctx):
    ctx.use(FakeSource())
    ctx.task.params["dashboards"] = [{"id": 2, "title": ""}]  # as the API starts it
    ctx.checkpoint.clear()
    pipeline.export_step(ctx)
    with default_storage.open(ctx.checkpoint["bundle"]) as saved:
        assert saved.read() == FakeSource.data  # as exported, byte for byte
    assert ctx.checkpoint["bundle_counts"] == {
        "dashboards": 1,
        "charts": 1,
        "datasets": 1,
        "databases": 1,
    }
    ctx.task.refresh_from_db()
    assert ctx.task.params["dashboards"] == [{"id": 2, "title": "Ops"}]
    assert "1 dashboards, 1 charts, 1 datasets, 1 databases" in ctx.task.log_entries.last().message


def test_an_unknown_dashboard_fails_the_export_naming_it(ctx):
    from tasks_app.engine import TaskFailed

    ctx.use(FakeSource())
    ctx.task.params["dashboards"] = [{"id": 2, "title": ""}, {"id": 99, "title": ""}]
    with pytest.raises(TaskFailed, match="no dashboard with id 99"):
        pipeline.export_step(ctx)


def test_a_bare_500_from_superset_is_tried_once_more(ctx):
    from migrator.superset.errors import SupersetAPIError

    busy = SupersetAPIError("Import dashboard failed for an unknown reason", status=500)
    target = FakeTarget([busy, None])
    ctx.use(target)
    pipeline.import_step(ctx)
    assert len(target.bundles) == 2
    messages = list(ctx.task.log_entries.values_list("message", flat=True))
    assert any("trying once more" in m for m in messages)
    assert messages[-1] == "Imported into old41"


def test_a_500_that_keeps_coming_fails_the_task(ctx):
    from migrator.superset.errors import SupersetAPIError
    from tasks_app.engine import TaskFailed

    busy = SupersetAPIError("Import dashboard failed for an unknown reason", status=500)
    ctx.use(FakeTarget([busy] * 3))
    with pytest.raises(TaskFailed, match="unknown reason"):
        pipeline.import_step(ctx)


def test_the_report_is_published_with_the_tasks_end(ctx, monkeypatch):
    """The verify step saves the report without a change of the task's own: it is the
    last step, so the status change that follows (success or failure) publishes it."""
    assert [s.name for s in pipeline.MIGRATION.steps][-1] == "verify"
    report = {"assets": [], "warnings": [], "counts": {}, "changed_on": {}}
    monkeypatch.setattr(pipeline.promote, "check", lambda target, plan, written: dict(report))
    version = Task.objects.get(pk=ctx.task.pk).version
    pipeline.verify_step(ctx)
    assert Promotion.of(ctx.task).report["counts"] == {}
    assert Task.objects.get(pk=ctx.task.pk).version == version
