"""What an exception no API view handled becomes: a bad request, a busy database, or a logged bug.

Shared by the JSON API (`{code, detail, fields}`) and the OctoPrint-compatible endpoints
(`{"error": ...}`), so a failure reads the same and carries the same request id in both.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

from django.core.exceptions import BadRequest, RequestAborted, RequestDataTooBig, SuspiciousOperation
from django.db import DataError, OperationalError
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError
from django.utils.encoding import escape_uri_path

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2


@dataclass(frozen=True, slots=True)
class Failure:
    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


def is_busy(exc: BaseException) -> bool:
    """SQLite's write lock or a pooled connection wasn't free in time: worth a retry, not a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        # psycopg_pool is optional (PostgreSQL with a pool): known by name, never imported.
        if any(cls.__name__ == "PoolTimeout" for cls in type(current).__mro__):
            return True
        if isinstance(current, OperationalError | sqlite3.OperationalError) and "is locked" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def request_id_of(request: HttpRequest) -> str:
    # Set by printfarm.ops.middleware, which also puts it on the response as X-Request-ID.
    return getattr(request, "request_id", None) or "unknown"


def failure_for(request: HttpRequest, exc: BaseException) -> Failure:
    """The answer to an exception that reached the API's edge; bugs are logged with their traceback."""
    if isinstance(exc, RequestAborted):
        return Failure(400, "The request ended before its body arrived.")  # nobody is left to read it
    if isinstance(exc, RequestDataTooBig):
        return Failure(413, "The request body is larger than the server accepts.")
    if isinstance(exc, SuspiciousOperation | BadRequest | MultiPartParserError):
        logger.warning("Bad request %s %s: %s", request.method, escape_uri_path(request.path), exc)
        return Failure(400, f"The request could not be read: {exc}" if str(exc) else "Bad request.")
    if isinstance(exc, DataError):
        # A value no check caught and the database refused: too long, out of range, a NUL
        # character (PostgreSQL). The client's to change; the log keeps the database's words.
        logger.warning(
            "Value refused by the database, answered 422: %s %s: %s",
            request.method,
            escape_uri_path(request.path),
            exc,
        )
        return Failure(
            422, "A value in the request can't be stored (too long, out of range, or a NUL character)."
        )
    if is_busy(exc):
        logger.warning(
            "Busy, answered 503: %s %s id=%s: %s",
            request.method,
            escape_uri_path(request.path),
            request_id_of(request),
            exc,
        )
        return Failure(
            503,
            f"The server is busy; try again in {RETRY_AFTER_SECONDS} seconds.",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    request_id = request_id_of(request)
    logger.exception(
        "Unexpected error in %s %s id=%s",
        request.method,
        escape_uri_path(request.path),
        request_id,
        exc_info=exc,
    )
    return Failure(
        500,
        f"Something went wrong on the server; it is logged with request id {request_id}. "
        "Please report it with that id.",
    )
