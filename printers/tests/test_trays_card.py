"""A printer's AMS trays and external spool on its card (and in the live push of that card), on
its page, and in the API's status."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from printers.models import PrinterStatusRow
from printers.realtime import render_cards
from printers.state import EXTERNAL_TRAY, State, Tray
from printers.tests.factories import PrinterFactory, set_status
from printfarm.accounts.models import Role
from printfarm.api.snapshot import snapshot
from printfarm.api.tests.clients import api_client

pytestmark = pytest.mark.django_db

TRAYS = (
    Tray(0, "PLA", "#000000", 80, active=True),
    Tray(1, "PETG", "#FFFFFF", None),
    Tray(2, "", "", None),  # an empty slot
    Tray(EXTERNAL_TRAY, "TPU", "#C12E1F", 15),
)


@pytest.fixture
def bambu():
    return set_status(PrinterFactory(name="x1c-1"), State.IDLE, trays=TRAYS)


def card_of(body: str, pk: int) -> str:
    return re.search(rf'<article id="printer-card-{pk}".*?</article>', body, re.S).group(0)


def swatch(colour: str) -> str:
    return f'<rect x=".5" y=".5" width="11" height="11" rx="2" fill="{colour}"/>'


def test_the_card_shows_each_tray_with_its_colour_and_marks_the_active_one(web, bambu):
    card = card_of(web.get(reverse("printers:dashboard")).content.decode(), bambu.pk)
    trays = re.findall(
        r'<span class="tray( tray-active)?" title="([^"]*)" data-testid="tray">(.*?)</span>', card
    )
    assert [(active != "", title) for active, title, _ in trays] == [
        (True, "AMS 1 slot 1: PLA black, 80% left (feeding)"),
        (False, "AMS 1 slot 2: PETG white"),
        (False, "AMS 1 slot 3: empty"),
        (False, "external spool: TPU red, 15% left"),
    ]
    assert swatch("#000000") in trays[0][2] and trays[0][2].endswith("PLA")
    assert "<svg" not in trays[2][2] and trays[2][2] == "empty"
    assert swatch("#C12E1F") in trays[3][2]


def test_the_live_push_carries_the_trays(bambu):
    assert 'title="AMS 1 slot 1: PLA black, 80% left (feeding)"' in render_cards([bambu.pk])


def test_a_printer_without_trays_shows_none(web):
    printer = set_status(PrinterFactory(), State.IDLE)
    card = card_of(web.get(reverse("printers:dashboard")).content.decode(), printer.pk)
    assert "card-trays" not in card


def test_an_offline_printer_shows_no_trays(web, bambu):
    PrinterStatusRow.objects.filter(pk=bambu.pk).update(state=State.OFFLINE)
    card = card_of(web.get(reverse("printers:dashboard")).content.decode(), bambu.pk)
    assert "card-trays" not in card


def test_a_colour_is_drawn_only_as_a_checked_hex(web, bambu):
    # The row holds what a printer on the network said; only #RRGGBB reaches the page.
    PrinterStatusRow.objects.filter(pk=bambu.pk).update(
        trays=[
            {"id": 0, "type": "PLA", "colour": 'red" onload="alert(1)', "remaining": 50, "active": False},
            {"id": 1, "type": "PLA", "colour": "#00ff00cc", "remaining": "lots", "active": "yes"},
            {"id": "x", "type": "PLA"},
            "junk",
        ]
    )
    card = card_of(web.get(reverse("printers:dashboard")).content.decode(), bambu.pk)
    assert "onload" not in card
    assert card.count('data-testid="tray"') == 2
    assert swatch("#00FF00") in card
    assert 'title="AMS 1 slot 2: PLA green"' in card  # no remaining, not active


def test_the_printer_page_lists_the_trays(web, bambu):
    body = web.get(reverse("printers:detail", args=[bambu.pk])).content.decode()
    table = re.search(r'<table [^>]*data-testid="tray-table">.*?</table>', body, re.S).group(0)
    rows = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]
    ]
    assert rows == [
        ["AMS 1 slot 1", "PLA", "#000000black", "80%", "yes"],
        ["AMS 1 slot 2", "PETG", "#FFFFFFwhite", "—", ""],
        ["AMS 1 slot 3", "empty", "—", "—", ""],
        ["external spool", "TPU", "#C12E1Fred", "15%", ""],
    ]
    assert swatch("#C12E1F") in table


def test_the_api_status_has_trays_chamber_and_layers(bambu):
    set_status(bambu, State.PRINTING, trays=TRAYS[:1], chamber_actual=35.5, layer=12, layer_count=80)
    snapshot.invalidate()
    viewer, _ = api_client(Role.VIEWER)
    status = viewer.get(f"/api/v1/printers/{bambu.pk}").json()["status"]
    assert {k: status[k] for k in ("chamber_actual", "layer", "layer_count", "trays")} == {
        "chamber_actual": 35.5,
        "layer": 12,
        "layer_count": 80,
        "trays": [{"id": 0, "type": "PLA", "colour": "#000000", "remaining": 80, "active": True}],
    }
    farm = viewer.get("/api/v1/status").json()["status"]
    assert [p["trays"] for p in farm if p["id"] == bambu.pk] == [status["trays"]]
    schema = viewer.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert set(schema["TrayOut"]["properties"]) == {"id", "type", "colour", "remaining", "active"}
