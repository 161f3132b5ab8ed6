"""The 500 page: styled, with the navigation where the request's context can still be built."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.template import loader

logger = logging.getLogger(__name__)

# When even the template fails (the database is gone, a context processor raises).
_PLAIN = (
    "<!doctype html><title>Something went wrong · printfarm</title>"
    "<h1>Something went wrong</h1><p>printfarm hit an error it did not expect. "
    'The details are in the web server\'s log. <a href="/">Back to the dashboard</a></p>'
)


def server_error(request: HttpRequest) -> HttpResponse:
    try:
        return HttpResponseServerError(loader.render_to_string("500.html", request=request))
    except Exception:
        logger.exception("The 500 page could not be rendered with the request's context")
    try:
        return HttpResponseServerError(loader.render_to_string("500.html"))
    except Exception:
        return HttpResponseServerError(_PLAIN)
