"""The Prometheus scrape endpoint: admins only, by session or by an admin's API token."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from printfarm.accounts.models import Role
from printfarm.accounts.roles import role_of
from printfarm.accounts.tokens import token_user
from printfarm.ops.metrics import exposition


def _unauthorized(error: str = "") -> HttpResponse:
    text = "Log in as an admin, or send an admin's API token as a Bearer token.\n"
    response = HttpResponse(text, status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Bearer realm="printfarm"' + (f', error="{error}"' if error else "")
    return response


def _forbidden() -> HttpResponse:
    return HttpResponse("Metrics are for admins.\n", status=403, content_type="text/plain; charset=utf-8")


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        found = token_user(credentials)
        if found is None:
            return _unauthorized("invalid_token")
        user = found[0]
    else:
        user = request.user
        if not user.is_authenticated:
            return _unauthorized()
    if role_of(user) != Role.ADMIN:
        return _forbidden()
    body, content_type = exposition(request.headers.get("Accept", ""))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
