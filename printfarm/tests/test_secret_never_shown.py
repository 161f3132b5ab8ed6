"""A printer's API key never goes back to a browser: no page, partial, push or scrape holds it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from printers.models import Printer
from printers.realtime import render_push
from printers.state import State
from printers.tests.factories import PrinterFactory, set_status

pytestmark = pytest.mark.django_db

SECRET = "sk-live-9f8e7d-NEVER-SHOWN"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def printer():
    printer = PrinterFactory(name="voron-1", api_key=SECRET, location="Shelf 3")
    set_status(printer, State.PRINTING, progress=42.0, file="benchy.gcode")
    return Printer.objects.get(pk=printer.pk)


def stored_token(printer: Printer) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM printers_printer WHERE id = %s", [printer.pk])
        return cursor.fetchone()[0]


def test_key_is_in_no_page_partial_push_or_scrape(admin_client, printer):
    pk = printer.pk
    detail, edit = reverse("printers:detail", args=[pk]), reverse("printers:edit", args=[pk])
    form = {"name": "voron-1", "protocol": "octoprint", "base_url": "not a url", "api_key": SECRET}
    responses = {
        "dashboard": admin_client.get(reverse("printers:dashboard")),
        "dashboard grid (htmx)": admin_client.get(reverse("printers:dashboard"), **HX),
        "wall": admin_client.get(reverse("printers:dashboard"), {"view": "wall"}),
        "wall grid (htmx)": admin_client.get(reverse("printers:dashboard"), {"view": "wall"}, **HX),
        "detail": admin_client.get(detail),
        "edit form": admin_client.get(edit),
        "edit form re-shown with errors": admin_client.post(edit, form),
        "add form": admin_client.get(reverse("printers:add")),
        "delete confirmation": admin_client.get(reverse("printers:delete", args=[pk])),
        "test connection (htmx)": admin_client.post(
            reverse("printers:test_connection", args=[pk]),
            {"protocol": "octoprint", "base_url": printer.base_url, "api_key": ""},
            **HX,
        ),
        "card after a command (htmx)": admin_client.post(
            reverse("printers:command", args=[pk, "pause"]), **HX
        ),
        "queue": admin_client.get(reverse("jobs:queue")),
        "history": admin_client.get(reverse("jobs:history")),
        "admin change": admin_client.get(reverse("admin:printers_printer_change", args=[pk])),
        "admin changelist": admin_client.get(reverse("admin:printers_printer_changelist")),
        "admin history": admin_client.get(reverse("admin:printers_printer_history", args=[pk])),
        "metrics": admin_client.get(reverse("ops:metrics")),
    }
    token = stored_token(printer)
    for name, response in responses.items():
        assert response.status_code in (200, 400), (name, response.status_code)
        body = response.content.decode()
        assert SECRET not in body, name
        assert token not in body, name  # nor the ciphertext

    frames = render_push([pk])
    assert frames and all(SECRET not in frame and token not in frame for frame in frames)
    assert "voron-1" in "".join(frames)  # the push did render the card
