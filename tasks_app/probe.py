"""A "probe" task: proves that workers take and run tasks.

Operators run it with ``manage.py check_workers``; the scale-out tests queue
hundreds of them to show each runs exactly once.
"""

from __future__ import annotations

import time

from tasks_app import engine
from tasks_app.engine import Step, StepContext, TaskKind


def _run(ctx: StepContext) -> None:
    from tasks_app.worker import current_worker_id

    seconds = float(ctx.task.params.get("seconds", 0))
    ctx.log.info("Probe ran", worker=current_worker_id(), attempt=ctx.task.attempts)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


PROBE = engine.register(
    TaskKind(
        name="probe",
        label="Worker probe",
        steps=(Step("probe", _run, repeatable=True),),
        describe=lambda task: {"items": [f"probe ({task.params.get('seconds', 0)} s)"]},
    )
)
