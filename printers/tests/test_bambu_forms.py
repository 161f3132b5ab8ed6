"""The printer form for Bambu Lab printers: address as IP/host, serial, LAN access code, and
forgetting a pinned certificate."""

from __future__ import annotations

import pytest
from django.urls import reverse

from printers.forms import ConnectionTestForm, PrinterForm
from printers.models import Printer
from printers.tests.factories import PrinterFactory

pytestmark = pytest.mark.django_db

PIN = "cd" * 32


def data(**overrides: str) -> dict:
    values = {
        "name": "x1c-1",
        "protocol": "bambu",
        "base_url": "192.168.1.60",
        "api_key": "12345678",
        "serial": "01s00c123456789",
        "enabled": "on",
        "tags": "",
        "nozzle_diameter": "0.4",
        "build_x": "256",
        "build_y": "256",
        "build_z": "256",
        "material": "",
        "location": "",
    }
    return values | overrides


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("192.168.1.60", "mqtts://192.168.1.60"),
        (" printer.lan ", "mqtts://printer.lan"),
        ("mqtts://127.0.0.1:18883?ftps=10990", "mqtts://127.0.0.1:18883?ftps=10990"),
        ("192.168.1.60:8883", "mqtts://192.168.1.60:8883"),
    ],
)
def test_a_bambu_address_is_an_ip_or_host_stored_as_mqtts(typed: str, stored: str) -> None:
    form = PrinterForm(data(base_url=typed))
    assert form.is_valid(), form.errors
    fields = form.printer_fields()
    assert fields["base_url"] == stored
    assert fields["serial"] == "01S00C123456789"
    assert fields["api_key"] == "12345678"


@pytest.mark.parametrize(
    "typed",
    [
        "http://192.168.1.60",
        "169.254.169.254",
        "bblp:code@10.0.0.7",
        "10.0.0.7/path",
        "h:70000",
        "[A-Za-z0-9_-]",  # a bracketed host that is no IPv6 address: urlsplit raised, a 500 (fuzz)
    ],
)
def test_other_addresses_are_refused_for_bambu(typed: str) -> None:
    form = PrinterForm(data(base_url=typed))
    assert not form.is_valid()
    assert "base_url" in form.errors


def test_a_bambu_printer_needs_its_serial_in_letters_and_digits() -> None:
    assert "serial" in PrinterForm(data(serial="")).errors
    assert "serial" in PrinterForm(data(serial="01S/#")).errors


def test_the_key_reads_as_the_lan_access_code_for_bambu_only() -> None:
    assert PrinterForm(data()).fields["api_key"].label == "LAN access code"
    assert PrinterForm(instance=PrinterFactory(protocol="bambu")).fields["api_key"].label == "LAN access code"
    assert PrinterForm(data(protocol="moonraker")).fields["api_key"].label == "API key"
    assert ConnectionTestForm(data()).fields["api_key"].label == "LAN access code"


def test_forgetting_the_pinned_certificate_clears_it() -> None:
    printer = PrinterFactory(protocol="bambu", base_url="mqtts://192.168.1.60", serial="01S00C123456789")
    printer.certificate_pin = PIN
    printer.save()
    kept = PrinterForm(data(api_key=""), instance=printer)
    assert kept.is_valid(), kept.errors
    assert "certificate_pin" not in kept.printer_fields()
    forgot = PrinterForm(data(api_key="", forget_certificate="on"), instance=printer)
    assert forgot.is_valid(), forgot.errors
    assert forgot.printer_fields()["certificate_pin"] == ""


def test_the_forget_box_shows_only_when_a_certificate_is_pinned() -> None:
    printer = PrinterFactory(protocol="bambu", base_url="mqtts://192.168.1.60", serial="01S00C123456789")
    assert "forget_certificate" not in PrinterForm(instance=printer).fields
    printer.certificate_pin = PIN
    assert "forget_certificate" in PrinterForm(instance=printer).fields


def test_another_serial_is_another_printer_whose_certificate_is_pinned_afresh() -> None:
    printer = PrinterFactory(protocol="bambu", base_url="mqtts://192.168.1.60", serial="01S00C123456789")
    printer.certificate_pin = PIN
    printer.save()
    form = PrinterForm(data(api_key="", serial="01S00C999999999"), instance=printer)
    assert form.is_valid(), form.errors
    assert form.printer_fields()["certificate_pin"] == ""


@pytest.mark.django_db
def test_the_printer_page_names_a_bambu_printers_serial_code_and_pin(web):
    printer = PrinterFactory(protocol="bambu", base_url="mqtts://192.0.2.7", serial="01S00C000000007")
    Printer.objects.filter(pk=printer.pk).update(api_key="12345678", certificate_pin="ab" * 32)
    page = web.get(reverse("printers:detail", args=[printer.pk])).content.decode()
    assert "<dt>Serial</dt><dd>01S00C000000007</dd>" in page
    assert "<dt>Access code</dt><dd>stored (hidden)</dd>" in page
    assert "pinned (SHA-256 abababababababab…)" in page
    assert 'href="mqtts://' not in page  # no link a browser can't open
