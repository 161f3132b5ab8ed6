"""What every app's views share: the htmx request type, the fragment-or-page rule, safe redirects.

Kept to Django and django-htmx so any app can import it (printers never imports jobs).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def wants_fragment(request: HtmxHttpRequest) -> bool:
    """An htmx swap, which takes a page's partial. A boosted request swaps the whole body, and a
    history restore after a cache miss rebuilds the page: both get the whole page."""
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render_fragment_or_page(
    request: HtmxHttpRequest,
    template_name: str,
    fragment: str,
    context: dict[str, Any] | None = None,
    *,
    status: int | None = None,
) -> HttpResponse:
    """One view serves a page and its fragment: `template_name#fragment` to an htmx swap, the
    page otherwise. Caches keep the two apart by HX-Request."""
    if wants_fragment(request):
        template_name = f"{template_name}#{fragment}"
    response = render(request, template_name, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def safe_url(request: HttpRequest, url: str, default: str) -> str:
    """`url` if it stays on this site (and on HTTPS when the request came that way), else `default`."""
    ok = url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if url and ok else default


def safe_next(request: HttpRequest, default: str) -> str:
    """Where to go back to after a form post: its `next` field, else the page it came from,
    whichever is on this site first; else `default`. Never another site (an open redirect)."""
    for url in (request.POST.get("next", ""), request.headers.get("referer", "")):
        if target := safe_url(request, url, ""):
            return target
    return default
