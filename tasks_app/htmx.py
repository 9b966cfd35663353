"""One place that decides between a whole page and an htmx fragment.

A view decorated with ``for_htmx`` returns its context (or a ``Rendered`` with a
status, or any response of its own, e.g. a redirect); the decorator renders the
fragment for an htmx request and the page for any other, and says so in
``Vary``. See django-htmx-patterns' ``for_htmx``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

# What htmx swaps: a 2xx answer, and (static/js/app.js) a 400 or 422 showing what is
# wrong. Any other status goes to an htmx request as 200, so its fragment still shows.
SWAPPED_ERRORS = (400, 422)


@dataclass
class Rendered:
    context: dict[str, Any]
    status: int = 200
    # Another fragment than the decorator's (e.g. chosen by the htmx target).
    fragment: str | None = None
    # Response headers (e.g. HX-Trigger).
    headers: dict[str, str] = field(default_factory=dict)
    # What a request without htmx gets instead of the page with this context (e.g.
    # the redirect after an action); called only for such a request.
    otherwise: Callable[[], HttpResponse] | None = None


Page = str | Callable[..., HttpResponse]


def for_htmx(*, page: Page, fragment: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``page``: the template of the whole page, or a view giving the response a
    request without htmx gets (e.g. a redirect to the page holding the fragment);
    a view that acts (a POST) says what such a request gets in ``Rendered.otherwise``."""

    def decorator(view: Callable[..., Any]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.htmx and not isinstance(page, str):
                response = page(request, *args, **kwargs)
            else:
                response = _render(request, view(request, *args, **kwargs), page, fragment)
            patch_vary_headers(response, ("HX-Request", "HX-Target"))
            return response

        return wrapped

    return decorator


def _render(request: HttpRequest, result: Any, page: Page, fragment: str) -> HttpResponse:
    if isinstance(result, HttpResponseBase):
        return result
    if not isinstance(result, Rendered):
        result = Rendered(result)
    status = result.status
    if request.htmx:
        template = result.fragment or fragment
        if status >= 300 and status not in SWAPPED_ERRORS:
            status = 200
    elif result.otherwise is not None:
        return result.otherwise()
    else:
        assert isinstance(page, str)
        template = page
    response = render(request, template, result.context, status=status)
    for name, value in result.headers.items():
        response[name] = value
    return response
