"""The dashboard's counts bar, the API's `/status` and `/metrics` count the farm alike."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from printers.models import Printer, PrinterStatusRow
from printers.services import printer_update
from printers.state import State
from printers.tests.factories import PrinterFactory, set_status
from printfarm.api.snapshot import snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_snapshot():
    snapshot.invalidate()
    yield
    snapshot.invalidate()


def dashboard_counts(client) -> dict[str, int]:
    page = client.get(reverse("printers:dashboard")).content.decode()
    return {
        state: int(n) for state, n in re.findall(r'class="count st-(\w+)[^"]*"[^>]*>.*?<b>(\d+)</b>', page)
    }


def api_counts(client) -> dict[str, int]:
    response = client.get("/api/v1/status")
    assert response.status_code == 200, response.content
    return response.json()["by_state"]


def metrics_counts(client) -> dict[str, int]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    families = text_string_to_metric_families(response.content.decode())
    family = next(f for f in families if f.name == "printfarm_printers")
    return {s.labels["state"]: int(s.value) for s in family.samples}


def test_dashboard_api_and_metrics_agree(admin_client):
    for state in (State.PRINTING, State.PRINTING, State.PAUSED, State.IDLE, State.FINISHED):
        set_status(PrinterFactory(), state, progress=10.0 if state in State.RUNNING else None)
    set_status(PrinterFactory(), State.OFFLINE)
    set_status(PrinterFactory(), State.ERROR, message="Thermal runaway")
    PrinterFactory()  # not polled yet: connecting
    # Disabled through the form: its row says maintenance.
    printer_update(printer=PrinterFactory(), fields={"enabled": False}, tags=None)
    # Disabled while its last reading still says printing: maintenance, not printing.
    stale = set_status(PrinterFactory(), State.PRINTING, progress=50.0)
    Printer.objects.filter(pk=stale.pk).update(enabled=False)
    # Created outside the services, so without a status row: connecting.
    Printer.objects.create(name="bare", protocol=Printer.Protocol.OCTOPRINT, base_url="http://127.0.0.1:9")
    # A state a newer release wrote, unknown to this one: shown, and counted, as error.
    future = PrinterFactory()
    PrinterStatusRow.objects.filter(pk=future.pk).update(state="sleeping")

    expected = dict.fromkeys((s.value for s in State), 0) | {
        "printing": 2,
        "paused": 1,
        "idle": 1,
        "finished": 1,
        "offline": 1,
        "error": 2,
        "connecting": 2,
        "maintenance": 2,
    }
    assert sum(expected.values()) == Printer.objects.count()
    assert dashboard_counts(admin_client) == expected
    assert api_counts(admin_client) == expected
    assert metrics_counts(admin_client) == expected
