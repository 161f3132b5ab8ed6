"""PrinterForm: address rules, tags, unique names, and the write-only API key."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from printers import views
from printers.drivers.base import address_shown
from printers.forms import ConnectionTestForm, PrinterForm, parse_tags
from printers.models import Printer
from printers.tests.factories import PrinterFactory, UserFactory
from printfarm.accounts.models import Role

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


# -- addresses a printer may not have ------------------------------------------------------------


def both_forms(address: str) -> tuple[PrinterForm, ConnectionTestForm]:
    return PrinterForm(data(base_url=address)), ConnectionTestForm(
        {"protocol": "moonraker", "base_url": address}
    )


@pytest.mark.parametrize(
    "raw",
    [
        "http://user:pw@10.0.0.7:7125",
        "http://user@10.0.0.7",
        "http://:pw@10.0.0.7",
        "user:pw@10.0.0.7:7125",  # the http:// that is assumed doesn't hide them
    ],
)
def test_credentials_in_the_address_are_refused_pointing_to_the_api_key(raw):
    for form in both_forms(raw):
        assert not form.is_valid()
        assert list(form.errors) == ["base_url"]
        assert "API key" in form.errors["base_url"][0]


def test_a_backslash_is_refused():
    # urlsplit finds host 10.0.0.8 here; browsers and some clients read 10.0.0.7 (its "user").
    for form in both_forms("http://10.0.0.7:80\\@10.0.0.8"):
        assert form.errors["base_url"] == ["Use / in an address, not \\."]


@pytest.mark.parametrize("raw", ["http://10.0.0.7:99999", "http://10.0.0.7:65536", "http://10.0.0.7:0"])
def test_the_port_must_be_1_to_65535(raw):
    form = PrinterForm(data(base_url=raw))
    assert not form.is_valid()
    assert form.errors["base_url"] == ["The port must be between 1 and 65535."]


@pytest.mark.parametrize(
    "raw",
    [
        "http://169.254.169.254",  # the cloud metadata service
        "http://169.254.169.254:80/latest/meta-data",
        "http://169.254.0.1:7125",
        "https://[fe80::1]:7125",
        "http://[FE80::a:b:c:d]",
        "http://[febf::1]",  # still fe80::/10
        "http://[::ffff:169.254.169.254]",  # IPv4-mapped
        "http://[::ffff:a9fe:a9fe]",
        "http://[64:ff9b::a9fe:a9fe]",  # NAT64
        "http://[fd00:ec2::254]",  # AWS's metadata service over IPv6
        "http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",  # full-width
        "http://2852039166",  # 169.254.169.254 as one number, as inet_aton reads it
        "http://0xA9FEA9FE",
        "http://0251.0376.0251.0376",
        "http://169.254.43518",
    ],
)
def test_link_local_and_metadata_addresses_are_refused(raw):
    for form in both_forms(raw):
        assert not form.is_valid(), raw
        assert list(form.errors) == ["base_url"]


@pytest.mark.parametrize(
    "raw",
    [
        "http://10.0.0.7:65535",
        "http://192.168.1.50:1",
        "http://127.0.0.1:7125",
        "http://[::1]:7125",
        "http://[fd12:3456::7]:7125",
        "http://100.64.1.2",  # a VPN's (CGNAT) address is a LAN too
        "https://octopi.local",
        "http://printer-7.farm.example.org:7125/octoprint",
    ],
)
def test_lan_and_loopback_addresses_are_fine(raw):
    form = PrinterForm(data(base_url=raw))
    assert form.is_valid(), form.errors


def test_address_shown_drops_what_a_stored_address_should_never_have_held():
    assert address_shown("http://user:pw@10.0.0.7:7125/x") == "http://10.0.0.7:7125/x"
    assert address_shown("http://a:b@c@10.0.0.7") == "http://10.0.0.7"
    assert address_shown("http://10.0.0.7:7125") == "http://10.0.0.7:7125"
    assert address_shown("https://[::1]:80/p?q=1") == "https://[::1]:80/p?q=1"


def stored_with_credentials() -> Printer:
    printer = PrinterFactory(name="old-row")
    # Rows saved before the form refused credentials: the address itself is fine to show.
    Printer.objects.filter(pk=printer.pk).update(base_url="http://olduser:oldpass@10.0.0.7:7125")
    return printer


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.ADMIN])
def test_a_stored_address_is_shown_without_its_credentials(role):
    printer = stored_with_credentials()
    client = Client()
    client.force_login(UserFactory(role=role))
    page = client.get(reverse("printers:detail", args=[printer.pk])).content.decode()
    assert "http://10.0.0.7:7125" in page
    assert "oldpass" not in page and "olduser" not in page


def test_test_connection_refuses_a_metadata_address_before_any_request(monkeypatch):
    async def never(**kwargs):
        raise AssertionError(f"a request was attempted: {kwargs}")

    monkeypatch.setattr(views, "connection_probe", never)
    client = Client()
    client.force_login(UserFactory(role=Role.ADMIN))
    for raw in ("http://169.254.169.254", "http://[fe80::1]:7125", "http://me:pw@10.0.0.7"):
        response = client.post(
            reverse("printers:test_connection"),
            {"protocol": "moonraker", "base_url": raw},
            HTTP_HX_REQUEST="true",
        )
        assert response.status_code == 200
        assert "t test yet" in response.content.decode()  # "Can't test yet — Address: ..."
