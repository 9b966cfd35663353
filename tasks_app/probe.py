"""A "probe" task: proves that workers take and run tasks.

Operators run it with ``manage.py check_workers``; the scale-out tests queue
hundreds of them to show each runs exactly once.
"""

from __future__ import annotations

import time

from tasks_app import kinds
from tasks_app.kinds import Step, StepContext, Summary, TaskKind
from tasks_app.wakeup import current_worker_id


def _run(ctx: StepContext) -> None:
    seconds = float(ctx.task.params.get("seconds", 0))
    # Optional: a log entry every `tick` seconds, to watch a live log.
    tick = float(ctx.task.params.get("tick", 0)) or None
    ctx.log.info("Probe ran", worker=current_worker_id(), attempt=ctx.task.attempts)
    started = time.monotonic()
    deadline = started + seconds
    ticks = 0
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        if tick and time.monotonic() - started >= (ticks + 1) * tick:
            ticks += 1
            ctx.log.info(f"Probe tick {ticks}", elapsed_s=round(time.monotonic() - started, 2))
        time.sleep(min(0.05 if tick else 0.2, max(0.0, deadline - time.monotonic())))


PROBE = kinds.register(
    TaskKind(
        name="probe",
        label="Worker probe",
        steps=(Step("probe", _run, repeatable=True),),
        summary=lambda task: Summary(
            title="Worker probe", items=[f"probe ({task.params.get('seconds', 0)} s)"]
        ),
    )
)
