"""supervisord event listener of `make run-scaled` (scripts/supervisord.conf).

supervisord starts again a process that dies. This listener stops the whole
set, loudly, rather than leave half a cluster or an unwatched one running:

- when a process cannot be started at all: FATAL, it exited within
  ``startsecs``, ``startretries`` times in a row (a port already taken, a
  broken setting);
- when scripts/run_scaled.sh, which handles Ctrl+C, is gone (``kill -9``):
  checked every 5 s.

Its stdout is supervisord's event protocol; messages go to stderr.
"""

from __future__ import annotations

import os
import signal
import sys

from supervisor import childutils


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(why: str) -> None:
    print(f"{why}: stopping everything.", file=sys.stderr, flush=True)
    os.kill(os.getppid(), signal.SIGTERM)  # supervisord: stop all, then exit


def main() -> None:
    script = int(os.environ.get("RUN_SCALED_PID", "0"))
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        if headers["eventname"] == "PROCESS_STATE_FATAL":
            fields = childutils.get_headers(payload)
            name = f"{fields.get('groupname', '?')}:{fields.get('processname', '?')}"
            _stop(f"{name} could not be started (see its output above)")
        elif script and not _alive(script):
            _stop(f"run_scaled.sh (pid {script}) is gone")
            script = 0
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main()
