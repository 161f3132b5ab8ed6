"""Request ids, one log line per request (logger `printfarm.requests`), and the request metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware
from django.utils.encoding import escape_uri_path
from django.utils.functional import LazyObject, empty

from printfarm.ops.metrics import request_observe

logger = logging.getLogger("printfarm.requests")

HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
QUIET_ROUTES = frozenset({"static", "ops:metrics"})  # counted, but logged only when slow


def request_id_for(request: HttpRequest) -> str:
    return request_id_from(request.headers.get(HEADER, ""))


def request_id_from(incoming: str) -> str:
    """The caller's X-Request-ID if it is short and plain (a proxy's, say), else a new one."""
    return incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex


def route_of(request: HttpRequest) -> str:
    """A bounded label for the request: its URL name, never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or "unnamed"
    if settings.STATIC_URL and request.path.startswith(settings.STATIC_URL):
        return "static"  # served by WhiteNoise before URL resolution
    return "unmatched"


def user_id_of(request: HttpRequest) -> str:
    """The user's id if this request already looked the user up; never a query of its own."""
    actor = request.__dict__.get("auth")  # the API's caller (printfarm.api.auth.Actor): a token's user
    if getattr(actor, "user", None) is not None:
        return str(actor.user.pk)
    user: Any = request.__dict__.get("user")  # set outright by login()/logout(), else lazy
    if isinstance(user, LazyObject):
        user = user._wrapped  # reading _wrapped doesn't evaluate it
    if user is None or user is empty:
        user = getattr(request, "_acached_user", None)  # what `await request.auser()` found
    pk = getattr(user, "pk", None)
    return "-" if pk is None else str(pk)


def _finish(request: HttpRequest, response: HttpResponse, request_id: str, started: float) -> HttpResponse:
    # Streamed responses (downloads, CSV) are timed until the response is ready, not to their last byte.
    response[HEADER] = request_id
    request_record(
        method=request.method or "",
        path=request.path,
        status=response.status_code,
        route=route_of(request),
        seconds=time.perf_counter() - started,
        user_id=user_id_of(request),
        request_id=request_id,
    )
    return response


def request_record(
    *, method: str, path: str, status: int, route: str, seconds: float, user_id: str, request_id: str
) -> None:
    """Count the request and log its line; also for requests answered before Django sees them."""
    request_observe(method=method, status=status, route=route, seconds=seconds)
    ms = seconds * 1000
    slow = ms > settings.PRINTFARM_SLOW_REQUEST_MS
    if slow or route not in QUIET_ROUTES:
        logger.log(
            logging.WARNING if slow else logging.INFO,
            "%s%s %s %s %.1fms user=%s id=%s",
            "SLOW " if slow else "",
            method,
            escape_uri_path(path),  # no control characters into the log
            status,
            ms,
            user_id,
            request_id,
        )


@sync_and_async_middleware
def request_log_middleware(
    get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]],
) -> Callable:
    if iscoroutinefunction(get_response):

        async def amiddleware(request: HttpRequest) -> HttpResponse:
            started = time.perf_counter()
            request.request_id = request_id = request_id_for(request)  # type: ignore[attr-defined]
            response = await get_response(request)  # type: ignore[misc]
            return _finish(request, response, request_id, started)

        return amiddleware

    def middleware(request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request.request_id = request_id = request_id_for(request)  # type: ignore[attr-defined]
        response = get_response(request)
        return _finish(request, response, request_id, started)  # type: ignore[arg-type]

    return middleware
