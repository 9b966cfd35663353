from django.urls import path, re_path

from tasks_app import consumers

websocket_urlpatterns = [
    path("ws/tasks/", consumers.TaskHistoryConsumer.as_asgi()),
    path("ws/tasks/<int:task_id>/status", consumers.TaskStatusConsumer.as_asgi()),
    path("ws/tasks/<int:task_id>/logs", consumers.TaskLogConsumer.as_asgi()),
    # Anything else is refused at the handshake (not a 500 with a traceback).
    re_path(r"", consumers.NoSuchSocket.as_asgi()),
]
