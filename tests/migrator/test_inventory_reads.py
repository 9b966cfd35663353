"""What the plan reads of the target, and in what order (a fake target; the real one:
tests/e2e/test_promotion.py)."""

from __future__ import annotations

import io
import threading
from collections import Counter
from concurrent.futures import Future
from contextlib import contextmanager

import pytest

from migrator import promote, sessions
from migrator.plan import Choices, make_plan
from migrator.superset.assets import scan
from tests.migrator.test_plan import CH, DA, DB, DS, _bundle

CHANGED_ON = "2026-12-01T10:00:00"
# A guard against a deadlock, never a measure: the events below are set at once when
# the reads overlap, and never when they run one after the other.
NEVER = 10


class FakeTarget:
    """A target that has the bundle's assets, identical, under the same uuids. Its chart
    and dataset reads wait (up to NEVER) for the export of its dashboards to start."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.exporting = threading.Event()
        self.saw_export: list[str] = []
        self.lock = threading.Lock()
        self.export = _bundle  # what its exports hold

    def _called(self, *call: str) -> None:
        with self.lock:
            self.calls[call] += 1

    def release(self):
        self._called("release", "")
        return "6.1.0"

    def list_databases(self):
        self._called("databases", "")
        return [{"id": 1, "uuid": DB, "database_name": "analytics", "backend": "postgresql"}]

    def find_rows(self, resource, column, values, columns):
        self._called(resource, column)
        if resource in ("chart", "dataset") and self.exporting.wait(NEVER):
            self.saw_export.append(resource)
        rows = {
            "dashboard": {"id": 4, "uuid": DA, "slug": "sales", "dashboard_title": "Sales"},
            "chart": {"id": 3, "uuid": CH, "slice_name": "Sales"},
            "dataset": {
                "id": 2,
                "uuid": DS,
                "table_name": "sales",
                "schema": "public",
                "database": {"id": 1},
            },
        }
        row = rows[resource] | {"changed_on_utc": CHANGED_ON}
        return [row] if str(row[column]) in values else []

    def export_assets(self, resource, ids, dest):
        self._called(f"{resource} export", ",".join(map(str, ids)))
        self.exporting.set()
        data = self.export()
        dest.write(data)
        return len(data)


@pytest.fixture
def target(monkeypatch):
    fake = FakeTarget()

    @contextmanager
    def borrow(env, **kwargs):
        yield fake

    monkeypatch.setattr(sessions, "borrow", borrow)
    return fake


def _early(target: FakeTarget, uuids: set[str]) -> Future:
    future: Future = Future()
    future.set_result(promote.early_reads("target", [{"uuid": u} for u in uuids]))
    target.calls.clear()
    return future


def test_the_targets_export_of_its_dashboards_is_read_beside_its_charts_and_datasets(target):
    bundle = scan(io.BytesIO(_bundle()))
    inventory = promote.read_inventory("target", bundle, {}, _early(target, {DA}))
    # The chart and dataset reads were still waiting when the dashboards' export started.
    assert sorted(target.saw_export) == ["chart", "dataset"]
    # The same calls as one after the other: the reads given (databases, dashboards) are
    # not made again, and the dashboards' export carries the charts and datasets too.
    assert target.calls == {
        ("dataset", "uuid"): 1,
        ("chart", "uuid"): 1,
        ("dashboard export", "4"): 1,
    }
    plan = make_plan(bundle, inventory, Choices(overwrite=True))
    assert {kind: [i["action"] for i in plan[kind]] for kind in ("dashboards", "charts")} == {
        "dashboards": ["unchanged"],
        "charts": ["unchanged"],
    }


def test_without_reads_given_the_plan_makes_them_itself(target):
    bundle = scan(io.BytesIO(_bundle()))
    # Read for other dashboards than the bundle's (the source changed in between).
    for early in (None, _early(target, {"another"})):
        target.calls.clear()
        promote.read_inventory("target", bundle, {}, early)
        assert target.calls == {
            ("databases", ""): 1,
            ("release", ""): 1,
            ("dashboard", "uuid"): 1,
            ("dataset", "uuid"): 1,
            ("chart", "uuid"): 1,
            ("dashboard export", "4"): 1,
        }


def test_a_record_of_the_last_write_saves_the_targets_export(target):
    bundle = scan(io.BytesIO(_bundle()))
    records = {(a.type, a.uuid): (a.exact, CHANGED_ON) for a in bundle.assets}
    target.exporting.set()  # nothing to wait for
    promote.read_inventory("target", bundle, records, _early(target, {DA}))
    assert target.calls == {("dataset", "uuid"): 1, ("chart", "uuid"): 1}
