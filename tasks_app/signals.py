"""The seam between the task engine and whoever reacts to its changes.

``task_changed`` is sent, inside the changing transaction, with ``task`` the
row exactly as the change left it (its ``version`` included) and ``created``
true for a new task. tasks_app.live listens (connected in ``AppConfig.ready``)
and publishes once the transaction commits; the models never import it.
"""

from django.dispatch import Signal

task_changed = Signal()
# Sent with ``entry``, a TaskLogEntry just written (``tasks_app.tasklog``).
log_written = Signal()
