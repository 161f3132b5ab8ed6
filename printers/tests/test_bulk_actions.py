"""Bulk actions (issue 12 item 2): one action on many printers — real simulated printers over
loopback — with a result per printer, each action recorded and audited as a single click."""

from __future__ import annotations

import pytest
from django.urls import reverse

from printers.models import Printer, PrinterEvent
from printers.simulator import running_farm
from printers.state import State
from printers.tests.factories import PrinterFactory, UserFactory, set_status
from printfarm.accounts.models import AuditEntry, Role
from printfarm.accounts.roles import set_role
from printfarm.api.tests.clients import api_client, post

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_api_pauses_every_selected_printer_and_answers_for_each() -> None:
    operator, user = api_client(Role.OPERATOR)
    with running_farm(count=3, protocol="moonraker", speed=60) as farm:
        printers = []
        for i, sim in enumerate(farm.printers):
            farm.start_print(i, "part.gcode", duration=3600)
            printers.append(
                set_status(PrinterFactory(protocol=sim.protocol, base_url=sim.base_url), State.PRINTING)
            )
        idle = set_status(PrinterFactory(), State.IDLE)  # refused unsent: nothing to pause
        ids = [p.pk for p in printers] + [idle.pk, 999_999]
        response = post(operator, "/api/v1/printers/actions", {"action": "pause", "printers": ids})
        states = [farm.describe_printer(i)["state"] for i in range(3)]
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["action"], body["ok"], body["failed"]) == ("pause", 3, 2)
    assert [r["id"] for r in body["results"]] == ids
    assert [r["message"] for r in body["results"]] == [
        "Pause sent",
        "Pause sent",
        "Pause sent",
        "Nothing is printing",
        "No printer 999999.",
    ]
    assert states == ["paused"] * 3
    audited = AuditEntry.objects.filter(action="printer.command", username=user.username)
    assert sorted(int(a.target_id) for a in audited) == sorted([*(p.pk for p in printers), idle.pk])


def test_a_command_a_protocol_lacks_is_refused_for_that_printer_only() -> None:
    operator, _ = api_client(Role.OPERATOR)
    with running_farm(count=1, protocol="moonraker", speed=60) as farm:
        sim = farm.printers[0]
        klipper = set_status(PrinterFactory(protocol=sim.protocol, base_url=sim.base_url), State.IDLE)
        bambu = set_status(PrinterFactory(protocol="bambu", serial="01P00A000000003"), State.IDLE)
        response = post(
            operator,
            "/api/v1/printers/actions",
            {"action": "emergency-stop", "printers": [klipper.pk, bambu.pk]},
        )
    results = response.json()["results"]
    assert results[0]["ok"] and results[0]["message"] == "Emergency stop sent"
    assert (
        not results[1]["ok"] and results[1]["message"] == "Bambu Lab (LAN) printers have no “E-stop” command"
    )


def test_clear_beds_confirms_every_waiting_bed_in_one_request() -> None:
    operator, user = api_client(Role.OPERATOR)
    waiting = [PrinterFactory(bed_clear=False) for _ in range(3)]
    clear = PrinterFactory(bed_clear=True)
    PrinterFactory(bed_clear=False, enabled=False)  # disabled: not offered
    response = post(operator, "/api/v1/printers/clear-beds")
    body = response.json()
    assert (body["ok"], body["failed"]) == (3, 0)
    assert sorted(r["id"] for r in body["results"]) == sorted(p.pk for p in waiting)
    assert Printer.objects.filter(pk__in=[p.pk for p in waiting], bed_clear=True).count() == 3
    assert Printer.objects.get(pk=clear.pk).bed_clear
    assert AuditEntry.objects.filter(action="printer.bed_cleared", username=user.username).count() == 3


def test_enable_and_disable_need_an_admin() -> None:
    printers = [PrinterFactory() for _ in range(2)]
    ids = [p.pk for p in printers]
    operator, _ = api_client(Role.OPERATOR)
    refused = post(operator, "/api/v1/printers/actions", {"action": "disable", "printers": ids})
    assert refused.status_code == 403
    assert Printer.objects.filter(enabled=True).count() == 2
    admin, _ = api_client(Role.ADMIN)
    done = post(admin, "/api/v1/printers/actions", {"action": "disable", "printers": ids}).json()
    assert done["ok"] == 2 and Printer.objects.filter(enabled=False).count() == 2
    again = post(admin, "/api/v1/printers/actions", {"action": "disable", "printers": ids}).json()
    assert [r["message"] for r in again["results"]] == ["Already disabled."] * 2
    assert all(p.status.state == State.MAINTENANCE for p in Printer.objects.with_status())
    assert post(admin, "/api/v1/printers/actions", {"action": "explode", "printers": ids}).status_code == 404
    viewer, _ = api_client(Role.VIEWER)
    assert post(viewer, "/api/v1/printers/clear-beds").status_code == 403


def test_dashboard_bulk_form_answers_a_line_per_printer(client) -> None:
    user = UserFactory()
    set_role(user, Role.OPERATOR)
    client.force_login(user)
    printers = [set_status(PrinterFactory(bed_clear=False), State.FINISHED) for _ in range(2)]
    data = {"action": "bed-cleared", "printer": [str(p.pk) for p in printers]}
    response = client.post(reverse("printers:bulk"), data, **HX)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Bed cleared: done on 2 of 2 printer(s)" in body
    assert body.count("Bed marked clear: the next job can start.") == 2
    for p in printers:
        assert PrinterEvent.objects.filter(printer=p, message="Bed cleared", by=user.username).exists()
    # Without JS: a summary message and back to the dashboard.
    plain = client.post(reverse("printers:bulk"), {"action": "cooldown", "printer": [str(printers[0].pk)]})
    assert plain.status_code == 302
    assert client.post(reverse("printers:bulk"), {"action": "pause"}, **HX).status_code == 400
    assert (
        client.post(reverse("printers:bulk"), {"action": "enable", "printer": ["1"]}, **HX).status_code == 403
    )
    client.force_login(UserFactory(role=Role.VIEWER))
    assert client.post(reverse("printers:clear_beds"), **HX).status_code == 403
