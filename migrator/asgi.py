"""ASGI entry point: pages over HTTP, live updates over WebSockets.

In the embedded mode (WORKER_MODE=thread) building this application also
starts the worker threads, so one process serves and runs tasks.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migrator.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from tasks_app.origin import SameOriginValidator  # noqa: E402
from tasks_app.routing import websocket_urlpatterns  # noqa: E402
from tasks_app.worker import start_embedded_workers_if_configured  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

start_embedded_workers_if_configured()
