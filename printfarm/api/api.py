"""The JSON API: /api/v1/ (OpenAPI at /api/v1/openapi.json, interactive docs at /api/v1/docs)."""

from __future__ import annotations

import orjson
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.renderers import BaseRenderer

from jobs.library import FileInUse
from jobs.services import JobError
from printfarm.api.auth import SessionAuth, TokenAuth

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
}


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"

    def render(self, request: HttpRequest, data, *, response_status: int) -> bytes:
        return orjson.dumps(data, default=str)


api = NinjaAPI(
    title="printfarm API",
    version="1",
    description=(
        "The farm's printers, files, queue and users. Authenticate with "
        "`Authorization: Bearer <token>` (create tokens on the *API tokens* page) or, from the "
        "browser, the session (writes then need the `X-CSRFToken` header). A token acts with "
        "its user's role: viewer (read), operator (printer commands, files, queue), admin "
        "(printers, users). Errors are `{code, detail, fields}` with a 4xx status."
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


class FieldErrors(Exception):
    """A form's errors, as a 422 with per-field messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid")
        self.errors = errors


@api.exception_handler(FieldErrors)
def _field_errors(request, exc: FieldErrors):
    return error(request, 422, "Some fields are not valid.", exc.errors)


from printfarm.api import files, jobs, printers, users  # noqa: E402  (routers use `api` helpers)

api.add_router("/", printers.router)
api.add_router("/", files.router)
api.add_router("/", jobs.router)
api.add_router("/", users.router)
