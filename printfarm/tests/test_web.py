"""printfarm.web's rules hold on every page that has a fragment: a plain htmx swap gets the
partial; a boosted request, a history restore and a browser get the page; back-links stay here."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from printers.tests.factories import UserFactory
from printfarm.web import safe_next

pytestmark = pytest.mark.django_db

PAGES = ("printers:dashboard", "jobs:history", "jobs:library", "jobs:queue", "accounts:audit")
HTMX = {"HX-Request": "true"}


@pytest.fixture
def admin() -> Client:
    client = Client()
    client.force_login(UserFactory())
    return client


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(
    ("headers", "whole_page"),
    [
        ({}, True),
        (HTMX, False),
        ({**HTMX, "HX-Boosted": "true"}, True),
        ({**HTMX, "HX-History-Restore-Request": "true"}, True),
    ],
)
def test_every_page_serves_its_fragment_to_an_htmx_swap_only(admin, page, headers, whole_page):
    response = admin.get(reverse(page), headers=headers)
    assert response.status_code == 200
    assert ("<html" in response.content.decode()) is whole_page
    assert "HX-Request" in response["Vary"]  # a cache never hands the fragment to a browser


@pytest.mark.parametrize(
    ("form", "referer", "secure", "expected"),
    [
        ({"next": "/jobs/"}, "", False, "/jobs/"),
        ({}, "http://testserver/files/", False, "http://testserver/files/"),
        ({"next": "https://evil.example/"}, "", False, "/default/"),
        ({"next": "//evil.example/"}, "http://testserver/files/", False, "http://testserver/files/"),
        ({}, "http://evil.example/", False, "/default/"),
        ({}, "http://testserver/files/", True, "/default/"),  # HTTPS never goes back to plain HTTP
    ],
)
def test_safe_next_never_leaves_the_site(form, referer, secure, expected):
    extra = {"HTTP_REFERER": referer} if referer else {}
    request = RequestFactory().post("/somewhere/", form, secure=secure, **extra)
    assert safe_next(request, "/default/") == expected
