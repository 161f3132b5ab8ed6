"""A page or HTMX request that found the database busy answers 503 "try again", never a 500.

Busy means SQLite's write lock (or a pooled PostgreSQL connection) wasn't free within
PRINTFARM_DB_TIMEOUT: worth a retry, not a bug. The JSON API answers the same condition
itself (printfarm.api.failures, whose `is_busy` this shares).
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin
from django.utils.encoding import escape_uri_path

from printfarm.api.failures import RETRY_AFTER_SECONDS, is_busy
from printfarm.web import safe_url

logger = logging.getLogger(__name__)

TEMPLATE = "ops/busy.html"


def busy_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: the message alone for htmx (static/js/roles.js shows it where the
    click happened, as it does a refusal), else a small page.

    Rendered without the request's context processors: they would ask the busy database
    for the user and their role."""
    if request.headers.get("HX-Request") == "true":
        body = render_to_string(f"{TEMPLATE}#busy-message")
    else:
        # The referer only: reading a POST's `next` would parse a body the busy view left unread.
        back = safe_url(request, request.headers.get("Referer", ""), reverse("printers:dashboard"))
        body = render_to_string(f"{TEMPLATE}#busy-page", {"back": back})
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseBusyMiddleware(MiddlewareMixin):
    """Turns a view's "database is locked" / PoolTimeout into `busy_response`."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_busy(exception):
            return None
        logger.warning(
            "Busy, answered 503: %s %s id=%s: %s",
            request.method,
            escape_uri_path(request.path),
            getattr(request, "request_id", "unknown"),
            exception,
        )
        return busy_response(request)
