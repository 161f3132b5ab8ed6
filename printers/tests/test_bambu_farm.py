"""A simulated Bambu printer under a real coordinator is a full member of the farm (issue 10,
item 5): dashboard card and wall, printer page with its chart and events, card commands with
their audit and roles, the API, metrics, and the queue with bed-clear gating, history and
statistics."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from jobs import services
from jobs.models import Job
from jobs.tests.test_dispatch import running
from jobs.tests.test_threemf_jobs import store_threemf
from jobs.tests.threemf_samples import SamplePlate, write_threemf
from printers.coordinator import Coordinator
from printers.models import Printer, PrinterStatusRow, TemperatureSample
from printers.state import State
from printers.tests.drivers.test_bambu import add_bambu
from printers.tests.factories import UserFactory
from printfarm.accounts.models import AuditEntry, Role
from printfarm.api.tests.clients import api_client
from printfarm.testing import eventually

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


@pytest.fixture
async def close_thread_connections():
    """The pages and the poller query from sync_to_async's worker thread; close its connection
    so PostgreSQL can drop the test database afterwards."""
    from django.db import connections

    yield
    await sync_to_async(connections.close_all)()


def coordinator() -> Coordinator:
    # A temperature sample every 0.2 s, so the chart has points within the test.
    return Coordinator(
        interval=1.0,
        timeout=2.0,
        backoff_max=4.0,
        flush_interval=0.05,
        reload_interval=0.2,
        sample_interval=0.2,
    )


async def page(client: Client, url: str, **query: str) -> str:
    response = await sync_to_async(client.get)(url, query)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


async def post(client: Client, url: str) -> int:
    return (await sync_to_async(client.post)(url)).status_code


def card_of(body: str, pk: int) -> str:
    return re.search(rf'<article id="printer-card-{pk}".*?</article>', body, re.S).group(0)


async def row_of(printer: Printer) -> PrinterStatusRow:
    return await PrinterStatusRow.objects.aget(pk=printer.pk)


async def shows(printer: Printer, *states: State) -> bool:
    return (await row_of(printer)).state in states


async def printing_a_layer(printer: Printer) -> bool:
    row = await row_of(printer)
    return row.state == State.PRINTING and bool(row.layer) and row.layer_count == 100


async def sampled(printer: Printer) -> bool:
    return await TemperatureSample.objects.filter(
        printer_id=printer.pk, hotend_actual__isnull=False
    ).aexists()


async def command(client: Client, printer: Printer, name: str) -> int:
    return await post(client, reverse("printers:command", args=[printer.pk, name]))


async def test_a_bambu_printer_on_every_page_and_obeying_its_card(make_farm, web) -> None:
    farm = await make_farm("bambu", count=1, speed=60.0)
    printer = await add_bambu(farm, 0, name="x1c-1")
    farm.start_print(0, "cube.gcode.3mf", duration=36000)  # 10 min at this speed: prints throughout
    viewer = Client()
    await sync_to_async(viewer.force_login)(await sync_to_async(UserFactory)(role=Role.VIEWER))

    async with coordinator():
        await eventually(lambda: printing_a_layer(printer))
        # Push readings are sampled for the chart like polled ones.
        await eventually(lambda: sampled(printer))

        dashboard = reverse("printers:dashboard")
        for body in (await page(web, dashboard), await page(web, dashboard, view="wall")):
            card = card_of(body, printer.pk)
            assert '<span class="badge" data-testid="state">Printing</span>' in card
            assert re.search(r'data-testid="progress">\d+%</strong>', card)
        # The card tells the whole story; the wall's tile only what reads across a room.
        card = card_of(await page(web, dashboard), printer.pk)
        assert re.search(r'data-testid="layers"> · layer \d+ of 100</span>', card)  # defect: never shown
        assert 'title="AMS 1 slot 1: PLA black, 80% left (feeding)"' in card

        detail = await page(web, reverse("printers:detail", args=[printer.pk]))
        assert "No temperature readings in the last hour." not in detail
        assert '<polyline class="line' in detail
        assert 'data-testid="tray-table"' in detail

        api, _ = await sync_to_async(api_client)(Role.VIEWER)
        response = await sync_to_async(api.get)(f"/api/v1/printers/{printer.pk}")
        assert response.status_code == 200, response.content
        status = response.json()["status"]
        assert (status["state"], status["layer_count"]) == ("printing", 100)
        assert status["trays"][0] == {
            "id": 0,
            "type": "PLA",
            "colour": "#000000",
            "remaining": 80,
            "active": True,
        }

        metrics = await page(web, "/metrics")
        counts = {
            s.labels["state"]: s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
            if s.name == "printfarm_printers"
        }
        assert counts["printing"] == 1

        # A viewer may look, not command: refused, and the printer never asked.
        assert await command(viewer, printer, "pause") == 403
        assert farm.describe_printer(0)["gcode_state"] == "RUNNING"

        # Card commands reach the printer; the poller sees each take effect.
        assert await command(web, printer, "pause") == 302
        assert farm.describe_printer(0)["gcode_state"] == "PAUSE"
        await eventually(lambda: shows(printer, State.PAUSED))
        assert await command(web, printer, "resume") == 302
        await eventually(lambda: shows(printer, State.PRINTING))
        assert await command(web, printer, "cancel") == 302
        await eventually(lambda: shows(printer, *State.FREE))
        assert await command(web, printer, "preheat-pla") == 302
        assert (farm.printers[0].extruder.target, farm.printers[0].bed.target) == (200, 60)
        # The light switch the card offers (the printer reports its light: on at first).
        assert await command(web, printer, "light-off") == 302
        assert not farm.bambu(0).light_on
        await eventually(lambda: PrinterStatusRow.objects.filter(pk=printer.pk, light=False).aexists())

        # A fault and its recovery are the printer's events.
        farm.set_fault(0, "offline")
        await eventually(lambda: shows(printer, State.OFFLINE))
        farm.set_fault(0, None)
        await eventually(lambda: shows(printer, *State.FREE))

    audited = [
        e.detail
        async for e in AuditEntry.objects.filter(
            action="printer.command", target_id=str(printer.pk)
        ).order_by("pk")
    ]
    assert audited == [
        "pause: Pause sent",
        "resume: Resume sent",
        "cancel: Cancel sent",
        "preheat-pla: Preheating for PLA (200/60 °C)",
        "light-off: Light switched off",
    ]
    detail = await page(web, reverse("printers:detail", args=[printer.pk]))
    assert "Went offline" in detail
    assert "Back online" in detail


async def test_a_bambu_printer_takes_the_next_job_only_after_its_bed_is_cleared(
    make_farm, web, tmp_path
) -> None:
    farm = await make_farm("bambu", count=1, speed=60.0)
    printer = await add_bambu(farm, 0, name="p1s-1")
    # One minute of PLA black, which the simulated AMS holds in slot 1.
    cube = write_threemf(
        tmp_path / "cube.gcode.3mf",
        [SamplePlate(1, "Cube", seconds=60, filaments=[(1, "PLA", "#000000", 1.0, 3.0)])],
    )
    file = await sync_to_async(store_threemf)("cube.gcode.3mf", cube.read_bytes())
    first, second = await sync_to_async(services.jobs_create)(file=file, quantity=2)

    async with running():
        await eventually(lambda: state_is(first, Job.State.COMPLETED))
        # The job is marked completed a moment before the bed is marked occupied and the
        # status row reads finished: the queue's answer is checked once both are written.
        await eventually(lambda: finished_with_a_part_on_the_bed(printer))
        # The dispatcher's rule, not a wait for rounds that did nothing: the bed must be cleared.
        assert await state_is(second, Job.State.QUEUED)
        explain = await page(web, reverse("jobs:explain", args=[second.pk]))
        assert "bed not confirmed clear" in explain

        assert await post(web, reverse("printers:bed_cleared", args=[printer.pk])) == 302
        await eventually(lambda: state_is(second, Job.State.COMPLETED))

    assert await AuditEntry.objects.filter(action="printer.bed_cleared", target_id=str(printer.pk)).aexists()
    history = await page(web, reverse("jobs:history"))
    for job in (first, second):
        assert f'href="{reverse("jobs:job", args=[job.pk])}"' in history
    assert "p1s-1" in history
    statistics = await sync_to_async(web.get)(reverse("jobs:statistics"), {"period": "30d"})
    rows = {row.name: row.figures for row in statistics.context["by_printer"]}
    assert (rows["p1s-1"].finished, rows["p1s-1"].completed) == (2, 2)


async def finished_with_a_part_on_the_bed(printer: Printer) -> bool:
    occupied = await Printer.objects.filter(pk=printer.pk, bed_clear=False).aexists()
    return occupied and await shows(printer, State.FINISHED)


async def state_is(job: Job, state: str) -> bool:
    return await Job.objects.filter(pk=job.pk, state=state).aexists()
