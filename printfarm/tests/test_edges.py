"""The edges an operator meets first (issue 12 item 7): the admin named for the farm, styled
404/500 pages with the navigation, and run_farm.sh's wait for the poller's first readings."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import RequestFactory

from printers.models import PrinterStatusRow
from printers.state import State
from printers.tests.factories import PrinterFactory, UserFactory, set_status
from printfarm.errors import server_error

pytestmark = pytest.mark.django_db


def test_admin_is_branded_with_readable_model_names(admin_client) -> None:
    body = admin_client.get("/admin/").content.decode()
    assert "printfarm administration" in body and "Django administration" not in body
    for name in ("Printer statuses", "Print files", "API tokens", "Files, queue and history"):
        assert name in body, name
    assert "Printer status rows" not in body and "Gcode files" not in body


def test_404_is_the_farm_page_with_its_navigation(client) -> None:
    client.force_login(UserFactory())
    response = client.get("/printers/999999/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "<h1>Not found</h1>" in body and 'aria-label="Main"' in body and "printfarm.css" in body


def test_500_page_has_the_navigation_and_survives_a_broken_context(monkeypatch) -> None:
    request = RequestFactory().get("/")
    request.user = UserFactory()
    response = server_error(request)
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong" in body and 'aria-label="Main"' in body

    def broken(request):
        raise RuntimeError("database gone")

    monkeypatch.setattr("printfarm.errors.loader.render_to_string", broken)
    fallback = server_error(request)
    assert fallback.status_code == 500 and b"Something went wrong" in fallback.content


def test_wait_poller_gives_up_after_its_timeout_and_says_so(capsys) -> None:
    PrinterFactory()
    call_command("wait_poller", "--timeout", "0.6")
    assert "has not read every printer within 0.6 s" in capsys.readouterr().err


def test_wait_poller_returns_once_every_printer_was_read(capsys) -> None:
    from printers.health import poller_heartbeat_begin

    printer = PrinterFactory()
    set_status(printer, State.IDLE)
    assert PrinterStatusRow.objects.get(pk=printer.pk).revision > 1
    poller_heartbeat_begin(shard=(0, 1), host="test", pid=1)
    call_command("wait_poller", "--timeout", "30")
    assert capsys.readouterr().err == ""


def test_demo_printers_are_registered_to_clear_their_own_beds(tmp_path) -> None:
    import json

    from printers.models import Printer

    listing = tmp_path / "printers.json"
    listing.write_text(
        json.dumps([{"name": "sim-1", "protocol": "moonraker", "base_url": "http://127.0.0.1:9"}])
    )
    call_command("register_printers", str(listing), "--tag", "demo", "--auto-clear")
    printer = Printer.objects.get(name="sim-1")
    assert printer.auto_clear and [t.name for t in printer.tags.all()] == ["demo"]


def test_demo_printers_bring_their_cameras(tmp_path) -> None:
    """The demo farm shows cameras: register_printers --find-cameras asks each simulated printer."""
    import json

    from printers.models import Printer
    from printers.simulator import running_farm

    with running_farm(count=2, protocol="mixed", speed=60) as farm:
        listing = tmp_path / "printers.json"
        listing.write_text(
            json.dumps(
                [{"name": p.name, "protocol": p.protocol, "base_url": p.base_url} for p in farm.printers]
            )
        )
        call_command("register_printers", str(listing), "--find-cameras")
    for printer in Printer.objects.all():
        assert printer.camera_snapshot_url.startswith(printer.base_url.rsplit(":", 1)[0]), printer.protocol
