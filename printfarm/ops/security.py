"""The Content-Security-Policy header (Django 5.2 has no CSP of its own).

Everything the pages load is ours: htmx, its ws extension and our scripts are static files,
no page has an inline <script>. What the policy still allows, and why:

* `style-src 'unsafe-inline'`: progress bars are `<span style="width: N%">` (dashboard,
  queue), and htmx adds a <style> element for its request indicators.
* `connect-src` names the page's own host with ws:/wss: as well as 'self': CSP Level 3 lets
  'self' match a same-host websocket, but older Safari does not.
* RELAXED: a few pages still need more, until their templates change (see there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

HEADER = "Content-Security-Policy"

POLICY: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "script-src": ("'self'",),
    "style-src": ("'self'", "'unsafe-inline'"),
    "img-src": ("'self'", "data:"),
    "connect-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'self'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}

# Transitional, by view name: sources a page would need until its template changes (inline
# handlers, htmx trigger filters, which compile with eval). None need any now; a test scans
# the templates and keeps TEMPLATES_NEEDING and RELAXED in step if one ever does.
RELAXED: dict[str, dict[str, tuple[str, ...]]] = {}
TEMPLATES_NEEDING: dict[str, str] = {}


def policy_for(request: HttpRequest) -> str:
    directives = dict(POLICY)
    match = getattr(request, "resolver_match", None)
    for name, sources in RELAXED.get(match.view_name if match else "", {}).items():
        directives[name] = directives[name] + sources
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    if host:
        directives["connect-src"] += (f"{'wss' if request.is_secure() else 'ws'}://{host}",)
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def _add_header(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if HEADER not in response:  # a view that sets its own policy keeps it
        response[HEADER] = policy_for(request)
    return response


@sync_and_async_middleware
def content_security_policy_middleware(
    get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]],
) -> Callable:
    if iscoroutinefunction(get_response):

        async def amiddleware(request: HttpRequest) -> HttpResponse:
            return _add_header(request, await get_response(request))  # type: ignore[misc]

        return amiddleware

    def middleware(request: HttpRequest) -> HttpResponse:
        return _add_header(request, get_response(request))  # type: ignore[arg-type]

    return middleware
