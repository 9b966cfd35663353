"""Requests with text no database column can hold are refused at the door."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

REFUSED = "NUL characters are not accepted in a URL."


class RefuseNulMiddleware:
    """A NUL character in the path or the query string (``?status__exact=%00``) is a 400,
    not a PostgreSQL error in whichever filter or lookup meets it first. Bodies are
    checked where they are read: form fields refuse NUL, and what is stored anyway is
    cleaned (``tasks_app.models.storable``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or b"\x00" in unquote_to_bytes(raw.replace("+", " ")):
            if request.path.startswith("/api/"):
                errors = {
                    key.replace("\x00", "\u2400"): ["NUL characters are not accepted."]
                    for key, values in request.GET.lists()
                    if "\x00" in key or any("\x00" in v for v in values)
                }
                return JsonResponse({"detail": REFUSED, "errors": errors}, status=400)
            return HttpResponseBadRequest(REFUSED)
        return self.get_response(request)
