"""The JSON API: /api/v1/ (OpenAPI at /api/v1/openapi.json, interactive docs at /api/v1/docs)."""

from __future__ import annotations

import functools

import orjson
from asgiref.sync import iscoroutinefunction
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.renderers import BaseRenderer

from jobs.library import FileInUse
from jobs.services import JobError
from printfarm.api.auth import SessionAuth, TokenAuth
from printfarm.api.failures import failure_for

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    500: "server_error",
    503: "busy",
}


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"

    def render(self, request: HttpRequest, data, *, response_status: int) -> bytes:
        return orjson.dumps(data, default=str)


class FarmAPI(NinjaAPI):
    """Ninja, with its own answers in the error shape too: 405 for a method a path lacks, 404
    for a path under /api/v1/ that isn't there (else Django's HTML pages)."""

    def _get_urls(self):
        urls = super()._get_urls()
        for pattern in urls:
            pattern.callback = _json_405(pattern.callback)
        urls.append(re_path(r"", _no_such_path, name="no-such-path"))
        return urls


def _json_405(view):
    def converted(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        allowed = response["Allow"]
        answer = error(request, 405, f"{request.method} is not allowed here; this path takes {allowed}.")
        answer["Allow"] = allowed
        return answer

    if iscoroutinefunction(view):

        @functools.wraps(view)  # keeps ninja's csrf_exempt: its auth classes check CSRF themselves
        async def async_view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            return converted(request, await view(request, *args, **kwargs))

        return async_view

    @functools.wraps(view)
    def sync_view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return converted(request, view(request, *args, **kwargs))

    return sync_view


@csrf_exempt  # nothing happens here, whatever the method
def _no_such_path(request: HttpRequest) -> HttpResponse:
    return error(request, 404, f"No API endpoint at {request.path}; see /api/v1/docs.")


api = FarmAPI(
    title="printfarm API",
    version="1",
    description=(
        "The farm's printers, files, queue and users. Authenticate with "
        "`Authorization: Bearer <token>` (create tokens on the *API tokens* page) or, from the "
        "browser, the session (writes then need the `X-CSRFToken` header). A bearer token, once "
        "sent, decides alone: a bad or revoked one is 401, whatever cookies come with it. A token "
        "acts with its user's role: viewer (read), operator (printer commands, files, queue), "
        "admin (printers, users). Errors are `{code, detail, fields}` with a 4xx or 5xx status: "
        "503 (`busy`, with `Retry-After`) asks to try again, 500 (`server_error`) names the "
        "request id the server logged."
    ),
    auth=[TokenAuth(), SessionAuth()],
    renderer=OrjsonRenderer(),
    urls_namespace="api",
)


def error(request: HttpRequest, status: int, detail: str, fields: dict | None = None) -> HttpResponse:
    body = {"code": CODES.get(status, "error"), "detail": detail, "fields": fields or {}}
    return api.create_response(request, body, status=status)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return error(request, exc.status_code, str(exc.message))


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    response = error(request, 401, "Log in, or send `Authorization: Bearer <token>`.")
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    fields: dict[str, list[str]] = {}
    for item in exc.errors:
        loc = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path", "payload")]
        fields.setdefault(".".join(loc) or "request", []).append(item.get("msg", "invalid"))
    return error(request, 422, "Some fields are not valid.", fields)


@api.exception_handler(Http404)
def _not_found(request, exc):
    return error(request, 404, str(exc) or "Not found.")


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc):
    return error(request, 403, str(exc) or "Not allowed.")


@api.exception_handler(JobError)
def _job_conflict(request, exc):
    return error(request, 409, str(exc))


@api.exception_handler(FileInUse)
def _file_in_use(request, exc):
    return error(request, 409, str(exc))


@api.exception_handler(OverflowError)
def _out_of_range(request, exc):
    # An id or number past what the database stores (SQLite: 64-bit): nothing can match it.
    return error(request, 422, "A number in the request is out of range.")


@api.exception_handler(Exception)
def _unexpected(request, exc: Exception):
    # Everything no handler above names: unreadable bodies, a busy database, bugs.
    failure = failure_for(request, exc)
    response = error(request, failure.status, failure.detail)
    for name, value in failure.headers.items():
        response[name] = value
    return response


class FieldErrors(Exception):
    """A form's errors, as a 422 with per-field messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid")
        self.errors = errors

    @classmethod
    def from_form(cls, form) -> FieldErrors:
        return cls({name: [str(e) for e in errors] for name, errors in form.errors.items()})


@api.exception_handler(FieldErrors)
def _field_errors(request, exc: FieldErrors):
    return error(request, 422, "Some fields are not valid.", exc.errors)


from printfarm.api import cameras, files, jobs, notifications, printers, users  # noqa: E402  (routers use `api` helpers)

api.add_router("/", printers.router)
api.add_router("/", cameras.router)
api.add_router("/", files.router)
api.add_router("/", jobs.router)
api.add_router("/", users.router)
api.add_router("/", notifications.router)
