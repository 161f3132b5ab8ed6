"""The API's Bambu Lab printer fields: serial, the certificate pin shown, null forgets it."""

from __future__ import annotations

import pytest

from printers.models import Printer
from printfarm.api.tests.clients import assert_error, patch, post

pytestmark = pytest.mark.django_db

PIN = "ef" * 32


def test_a_bambu_printer_is_added_with_ip_serial_and_access_code(admin):
    body = {
        "name": "p1s",
        "protocol": "bambu",
        "base_url": "10.0.0.9",
        "api_key": "87654321",
        "serial": "01p00a1",
    }
    response = post(admin, "/api/v1/printers", body)
    assert response.status_code == 201, response.content
    shown = response.json()
    assert (shown["base_url"], shown["serial"], shown["certificate_pin"]) == (
        "mqtts://10.0.0.9",
        "01P00A1",
        "",
    )
    assert shown["has_api_key"] and "api_key" not in shown
    assert Printer.objects.get(pk=shown["id"]).api_key == "87654321"


def test_null_forgets_the_pinned_certificate_and_nothing_else_is_taken(admin):
    body = {
        "name": "x1",
        "protocol": "bambu",
        "base_url": "10.0.0.9",
        "api_key": "87654321",
        "serial": "01S1",
    }
    printer_id = post(admin, "/api/v1/printers", body).json()["id"]
    Printer.objects.filter(pk=printer_id).update(certificate_pin=PIN)
    url = f"/api/v1/printers/{printer_id}"
    assert_error(patch(admin, url, {"certificate_pin": "0" * 64}), 422, "invalid")
    assert Printer.objects.get(pk=printer_id).certificate_pin == PIN
    response = patch(admin, url, {"certificate_pin": None})
    assert response.status_code == 200, response.content
    assert response.json()["certificate_pin"] == ""
    assert Printer.objects.get(pk=printer_id).api_key == "87654321"  # the code is kept
