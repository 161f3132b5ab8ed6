"""Security headers on every response, the CSP's exceptions, and templates that need them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient
from django.urls import reverse

from printers.tests.factories import PrinterFactory
from printfarm.ops.security import HEADER, RELAXED, TEMPLATES_NEEDING

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def directives(response) -> dict[str, list[str]]:
    policy = response[HEADER]
    return {part.split()[0]: part.split()[1:] for part in policy.split("; ")}


def test_every_page_gets_the_strict_policy_and_the_other_headers(admin_client):
    printer = PrinterFactory()
    for url in ("/login/", reverse("printers:dashboard"), reverse("printers:detail", args=[printer.pk])):
        response = admin_client.get(url)
        policy = directives(response)
        assert policy["script-src"] == ["'self'"], url
        assert policy["default-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
        assert policy["img-src"] == ["'self'", "data:"]
        assert policy["object-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["connect-src"] == ["'self'", "ws://testserver"]
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_static_files_404s_and_async_views_get_it_too(client):
    assert HEADER in client.get("/static/css/printfarm.css")
    assert HEADER in client.get("/no/such/page/")
    assert HEADER in async_to_sync(AsyncClient().get)("/login/")


def test_https_pages_allow_the_secure_websocket_of_their_own_host(client, settings):
    settings.ALLOWED_HOSTS = ["farm.example.org"]
    response = client.get("/login/", secure=True, HTTP_HOST="farm.example.org")
    assert directives(response)["connect-src"] == ["'self'", "wss://farm.example.org"]


def test_a_disallowed_host_gets_the_policy_without_a_host(client):
    response = client.get("/login/", HTTP_HOST="evil.example.com")
    assert response.status_code == 400
    assert directives(response)["connect-src"] == ["'self'"]


def test_every_page_gets_the_strict_script_policy(admin_client):
    for name in ("jobs:queue", "jobs:library", "accounts:tokens", "printers:dashboard"):
        assert directives(admin_client.get(reverse(name)))["script-src"] == ["'self'"], name
    job_page = directives(admin_client.get(reverse("jobs:job", args=[1])))  # a 404 page: same rule
    assert job_page["script-src"] == ["'self'"]


def test_relaxed_view_names_exist():
    from django.urls import NoReverseMatch

    for name in RELAXED:
        try:
            reverse(name)
        except NoReverseMatch as err:
            assert "arguments" in str(err), name  # exists, wants a pk


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
HX_ON = re.compile(r"\shx-on[:-]", re.I)
HX_TRIGGER = re.compile(r"hx-trigger=(?:\"([^\"]*)\"|'([^']*)')", re.I)
# A trigger filter (`click[ctrlKey]`, `every 2s [cond]`) is compiled with Function(); a
# `from:input[name=q]` selector is not.
TRIGGER_FILTER = re.compile(r"^\s*(?:every\s+[^\s\[]+\s*|[\w:.-]+)\[")
JS_VALUES = re.compile(r"hx-(?:vals|headers)=['\"]\s*(?:js|javascript):", re.I)


def needs_eval(text: str) -> bool:
    triggers = [a or b for a, b in HX_TRIGGER.findall(text)]
    filters = any(TRIGGER_FILTER.match(part) for value in triggers for part in value.split(","))
    return filters or bool(JS_VALUES.search(text))


def test_only_the_known_templates_need_more_than_the_strict_policy():
    """A new inline handler, inline script or htmx expression would be refused by the
    browser (silently: a confirm that never asks). This lists them so the policy and the
    templates change together: prefer hx-confirm and static JS over a new exception."""
    found = {}
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        name = str(path.relative_to(TEMPLATES))
        if INLINE_SCRIPT.search(text) or INLINE_HANDLER.search(text) or HX_ON.search(text):
            found[name] = "'unsafe-inline'"
        elif needs_eval(text):
            found[name] = "'unsafe-eval'"
    assert found == TEMPLATES_NEEDING, (
        "change printfarm/ops/security.py (RELAXED, TEMPLATES_NEEDING) together with the templates"
    )
