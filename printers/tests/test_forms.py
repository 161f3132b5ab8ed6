"""PrinterForm: address rules, tags, unique names, and the write-only API key."""

from __future__ import annotations

from decimal import Decimal

import pytest

from printers.forms import ConnectionTestForm, PrinterForm, parse_tags
from printers.tests.factories import PrinterFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-form-secret-9876"


def data(**overrides) -> dict:
    values = {
        "name": "voron-1",
        "protocol": "moonraker",
        "base_url": "http://10.0.0.7:7125",
        "api_key": "",
        "enabled": "on",
        "tags": "",
        "nozzle_diameter": "0.4",
        "build_x": "220",
        "build_y": "220",
        "build_z": "250",
        "material": "",
        "location": "",
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://10.0.0.7:7125/", "http://10.0.0.7:7125"),
        ("https://octopi.local", "https://octopi.local"),
        ("octopi.local", "http://octopi.local"),
        ("192.168.1.50:7125", "http://192.168.1.50:7125"),
    ],
)
def test_address_is_normalised(raw, expected):
    form = PrinterForm(data(base_url=raw))
    assert form.is_valid(), form.errors
    assert form.printer_fields()["base_url"] == expected


@pytest.mark.parametrize("raw", ["ftp://10.0.0.7", "not a url", "http://", "javascript:alert(1)"])
def test_address_must_be_http_or_https(raw):
    form = PrinterForm(data(base_url=raw))
    assert not form.is_valid()
    assert list(form.errors) == ["base_url"]


def test_duplicate_name_is_a_field_error():
    PrinterFactory(name="voron-1")
    form = PrinterForm(data())
    assert not form.is_valid()
    assert form.errors["name"] == ["Printer with this Name already exists."]


def test_required_fields():
    form = PrinterForm({})
    assert not form.is_valid()
    assert {"name", "protocol", "base_url"} <= set(form.errors)
    assert "api_key" not in form.errors


def test_tags_are_parsed_and_validated():
    assert parse_tags(" Lab-A, resin ,lab-a,, Big  Shelf ") == ["lab-a", "resin", "big shelf"]
    form = PrinterForm(data(tags="Lab-A, resin"))
    assert form.is_valid()
    assert form.cleaned_data["tags"] == ["lab-a", "resin"]
    assert not PrinterForm(data(tags="ok, <b>")).is_valid()
    assert not PrinterForm(data(tags="x" * 41)).is_valid()


def test_add_stores_the_key_typed():
    form = PrinterForm(data(api_key=SECRET, nozzle_diameter="0.6"))
    assert form.is_valid()
    fields = form.printer_fields()
    assert fields["api_key"] == SECRET
    assert fields["nozzle_diameter"] == Decimal("0.6")
    assert "clear_api_key" not in form.fields


def test_edit_blank_key_keeps_the_stored_one():
    printer = PrinterFactory(name="voron-1", api_key=SECRET, tags=["a", "b"], base_url="http://10.0.0.7:7125")
    form = PrinterForm(data(api_key=""), instance=printer)
    assert form.is_valid(), form.errors
    assert "api_key" not in form.printer_fields()
    assert form.initial["tags"] == "a, b"


def test_a_new_address_needs_the_key_again():
    printer = PrinterFactory(name="voron-1", api_key=SECRET, base_url="http://10.0.0.7:7125")
    form = PrinterForm(data(base_url="http://10.0.0.99:7125"), instance=printer)
    assert not form.is_valid()
    assert "enter the API key again" in form.errors["api_key"][0]
    assert PrinterForm(data(base_url="http://10.0.0.99:7125", api_key="k2"), instance=printer).is_valid()
    cleared = PrinterForm(data(base_url="http://10.0.0.99:7125", clear_api_key="on"), instance=printer)
    assert cleared.is_valid()
    assert cleared.printer_fields()["api_key"] == ""


def test_edit_new_key_replaces_and_clear_wins():
    printer = PrinterFactory(name="voron-1", api_key=SECRET)
    form = PrinterForm(data(api_key="other"), instance=printer)
    assert form.is_valid()
    assert form.printer_fields()["api_key"] == "other"

    form = PrinterForm(data(api_key="other", clear_api_key="on"), instance=printer)
    assert form.is_valid()
    assert form.printer_fields()["api_key"] == ""


def test_the_key_is_never_rendered_back():
    printer = PrinterFactory(name="voron-1", api_key=SECRET)
    assert SECRET not in str(PrinterForm(instance=printer))
    bound = PrinterForm(data(api_key=SECRET, base_url="bad"), instance=printer)
    assert not bound.is_valid()
    assert SECRET not in str(bound)
    assert 'type="password"' in str(bound["api_key"])


def test_connection_test_form_needs_protocol_and_address():
    form = ConnectionTestForm({"protocol": "octoprint", "base_url": "octopi.local"})
    assert form.is_valid()
    assert form.cleaned_data["base_url"] == "http://octopi.local"
    assert not ConnectionTestForm({"protocol": "telnet", "base_url": "http://x"}).is_valid()
