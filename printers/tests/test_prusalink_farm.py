"""A simulated PrusaLink printer under a real coordinator is a full member of the farm (issue 11,
item 4): dashboard card and wall, printer page with its chart and events, the card's three
commands (pause, resume, cancel) with their audit and roles, a preheat refused unsent, the API,
metrics, the attention dialog, and the queue with its bed gate opened by "Set Ready" on the
printer, history and statistics. One printer logs in by digest (user "maker"), one by X-Api-Key.

The driver polls a PrusaLink printer at most every 1.5 s (Buddy's connection slots): every
change is waited for, never slept on."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from jobs import services
from jobs.models import Job
from jobs.tests.factories import make_file
from jobs.tests.test_dispatch import running
from printers.coordinator import Coordinator
from printers.drivers.prusalink_status import ATTENTION
from printers.models import Printer, PrinterEvent, PrinterStatusRow, TemperatureSample
from printers.services import printer_create
from printers.simulator import SimulatedFarm
from printers.state import State
from printers.tests.factories import UserFactory
from printfarm.accounts.models import AuditEntry, Role
from printfarm.api.auth import forget_tokens
from printfarm.api.snapshot import snapshot
from printfarm.api.tests.clients import api_client
from printfarm.testing import eventually

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections", "fresh_api_caches"),
]

WAITS = "bed not confirmed clear: waiting for Set Ready on the printer or Bed cleared here"
SET_READY = "Bed confirmed clear on the printer (Set Ready)"
NO_PREHEAT = "Prusa (PrusaLink) printers have no “PLA” command"


@pytest.fixture
async def close_thread_connections():
    """The pages and the poller query from sync_to_async's worker thread; close its connection
    so PostgreSQL can drop the test database afterwards."""
    from django.db import connections

    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def fresh_api_caches():
    """The API's snapshot lives a second: not one built by the test before (printfarm.api.tests)."""
    forget_tokens()
    snapshot.invalidate()
    yield
    forget_tokens()
    snapshot.invalidate()


async def add_prusalink(farm: SimulatedFarm, index: int, *, digest: bool, **fields: object) -> Printer:
    """Printer `index` as an admin adds it: by digest, user "maker" and its password; else the
    password as its X-Api-Key."""
    values = {
        "name": f"prusa-{index}",
        "protocol": "prusalink",
        "base_url": farm.printers[index].base_url,
        "api_key": farm.prusalink_password(index),
        "username": "maker" if digest else "",
    }
    return await sync_to_async(printer_create)(fields=values | fields)


def coordinator() -> Coordinator:
    # A temperature sample every 0.2 s (as often as the driver's 1.5 s polls allow), so the
    # chart has points within the test.
    return Coordinator(
        interval=1.0,
        timeout=2.0,
        backoff_max=4.0,
        flush_interval=0.05,
        reload_interval=0.2,
        sample_interval=0.2,
    )


async def signed_in(role: Role) -> Client:
    client = Client()
    await sync_to_async(client.force_login)(await sync_to_async(UserFactory)(role=role))
    return client


async def page(client: Client, url: str, **query: str) -> str:
    response = await sync_to_async(client.get)(url, query)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


async def post(client: Client, url: str) -> int:
    return (await sync_to_async(client.post)(url)).status_code


def card_of(body: str, pk: int) -> str:
    return re.search(rf'<article id="printer-card-{pk}".*?</article>', body, re.S).group(0)


def buttons(card: str) -> list[str]:
    """The commands a card offers, in its order."""
    return re.findall(r'hx-post="[^"]*/command/([\w-]+)/"', card)


async def row_of(printer: Printer) -> PrinterStatusRow:
    return await PrinterStatusRow.objects.aget(pk=printer.pk)


async def shows(printer: Printer, *states: State, message: str = "") -> bool:
    row = await row_of(printer)
    return row.state in states and message in row.message


async def printing_a_file(printer: Printer) -> bool:
    row = await row_of(printer)
    return row.state == State.PRINTING and row.file == "cube.gcode" and row.progress is not None


async def charted(printer: Printer) -> bool:
    """Two readings sampled: a line on the chart (one poll every 1.5 s gives one at a time)."""
    samples = TemperatureSample.objects.filter(printer_id=printer.pk, hotend_actual__isnull=False)
    return await samples.acount() >= 2


async def command(client: Client, printer: Printer, name: str) -> int:
    return await post(client, reverse("printers:command", args=[printer.pk, name]))


async def api_command(client: Client, printer: Printer, name: str) -> tuple[int, object]:
    response = await sync_to_async(client.post)(f"/api/v1/printers/{printer.pk}/commands/{name}")
    return response.status_code, response.json()


async def test_a_prusalink_printer_on_every_page_and_obeying_its_card(make_farm, web) -> None:
    farm = await make_farm("prusalink", count=2, speed=60.0)
    digest = await add_prusalink(farm, 0, digest=True, name="mk4-1")
    keyed = await add_prusalink(farm, 1, digest=False, name="mk4-2")
    for index in (0, 1):  # 10 min at this speed: prints throughout
        farm.start_print(index, "cube.gcode", duration=36000)
    viewer, operator = await signed_in(Role.VIEWER), await signed_in(Role.OPERATOR)

    async with coordinator():
        for printer in (digest, keyed):
            await eventually(lambda printer=printer: printing_a_file(printer))
        await eventually(lambda: charted(digest))

        dashboard = reverse("printers:dashboard")
        body = await page(web, dashboard)
        for printer in (digest, keyed):
            card = card_of(body, printer.pk)
            assert '<span class="badge" data-testid="state">Printing</span>' in card
            assert re.search(r'data-testid="progress">\d+%</strong>', card)
            # PrusaLink v1 carries pause, resume and cancel: no preheat, no E-stop, no light.
            assert buttons(card) == ["pause", "cancel"]
        wall = card_of(await page(web, dashboard, view="wall"), digest.pk)
        assert '<span class="badge" data-testid="state">Printing</span>' in wall
        assert buttons(wall) == []  # the wall shows, it takes no commands

        detail = await page(web, reverse("printers:detail", args=[digest.pk]))
        assert "No temperature readings in the last hour." not in detail
        assert '<polyline class="line' in detail

        api, _ = await sync_to_async(api_client)(Role.VIEWER)
        response = await sync_to_async(api.get)(f"/api/v1/printers/{keyed.pk}")
        assert response.status_code == 200, response.content
        described = response.json()
        assert (described["protocol"], described["username"], described["has_api_key"]) == (
            "prusalink",
            "",
            True,
        )
        assert described["commands"] == ["pause", "cancel"]
        assert (described["status"]["state"], described["status"]["file"]) == ("printing", "cube.gcode")

        metrics = await page(web, "/metrics")
        counts = {
            s.labels["state"]: s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
            if s.name == "printfarm_printers"
        }
        assert counts["printing"] == 2

        # A viewer may look, not command: refused, and the printer never asked.
        assert await command(viewer, digest, "pause") == 403
        assert farm.describe_printer(0)["prusalink_state"] == "PRINTING"

        # Card commands reach the printer (by digest); the poller sees each take effect.
        assert await command(operator, digest, "pause") == 302
        assert farm.describe_printer(0)["prusalink_state"] == "PAUSED"
        await eventually(lambda: shows(digest, State.PAUSED))
        paused = card_of(await page(web, dashboard), digest.pk)
        assert buttons(paused) == ["resume", "cancel"]
        assert await command(operator, digest, "resume") == 302
        await eventually(lambda: shows(digest, State.PRINTING))
        assert await command(operator, digest, "cancel") == 302
        await eventually(lambda: shows(digest, *State.FREE))
        assert buttons(card_of(await page(web, dashboard), digest.pk)) == []

        # A preheat posted anyway is refused unsent, in the card's words, on the web and the API.
        targets = farm.printers[0].extruder.target, farm.printers[0].bed.target
        assert await command(operator, digest, "preheat-pla") == 302
        operator_api, _ = await sync_to_async(api_client)(Role.OPERATOR)
        answer = await api_command(operator_api, digest, "preheat-pla")
        assert answer == (409, {"ok": False, "message": NO_PREHEAT})
        assert (farm.printers[0].extruder.target, farm.printers[0].bed.target) == targets

        # A dialog on the printer's screen holds the print (by X-Api-Key): its card says
        # someone must act at the printer; dismissing it resumes the print.
        farm.set_fault(1, "attention")
        await eventually(lambda: shows(keyed, State.PAUSED, message=ATTENTION))
        card = card_of(await page(web, dashboard), keyed.pk)
        assert f'<p class="card-message" title="{ATTENTION}">' in card
        farm.set_fault(1, None)
        await eventually(lambda: shows(keyed, State.PRINTING))
        # Cancel through the API, as an operator.
        answer = await api_command(operator_api, keyed, "cancel")
        assert answer == (200, {"ok": True, "message": "Cancel sent"})
        await eventually(lambda: shows(keyed, *State.FREE))

        # A fault and its recovery are the printer's events.
        farm.set_fault(0, "offline")
        await eventually(lambda: shows(digest, State.OFFLINE))
        farm.set_fault(0, None)
        await eventually(lambda: shows(digest, *State.FREE))

    audited = [
        e.detail
        async for e in AuditEntry.objects.filter(action="printer.command", target_id=str(digest.pk)).order_by(
            "pk"
        )
    ]
    assert audited == [
        "pause: Pause sent",
        "resume: Resume sent",
        "cancel: Cancel sent",
        f"preheat-pla: {NO_PREHEAT}",
        f"preheat-pla: {NO_PREHEAT}",
    ]
    assert await AuditEntry.objects.filter(
        action="printer.command", target_id=str(keyed.pk), detail="cancel: Cancel sent"
    ).aexists()
    detail = await page(web, reverse("printers:detail", args=[digest.pk]))
    assert f"PLA not sent: {NO_PREHEAT}" in detail
    assert "Went offline" in detail
    assert "Back online" in detail


async def test_set_ready_on_a_prusalink_printer_lets_the_queue_go_on(make_farm, web) -> None:
    farm = await make_farm("prusalink", count=1, speed=60.0)
    printer = await add_prusalink(farm, 0, digest=True, name="mk4-1")
    # Two simulated minutes of PLA: two real seconds at this speed.
    file = await sync_to_async(make_file)("cube.gcode", seconds=120)
    first, second = await sync_to_async(services.jobs_create)(file=file, quantity=2)

    async with running():
        await eventually(lambda: state_is(first, Job.State.COMPLETED))
        # The job's end is written as the poller reads it; the part on the bed and the
        # printer's row a moment later.
        await eventually(lambda: finished_with_a_part_on_the_bed(printer))
        # The dispatcher's rule, not a wait for rounds that did nothing: the bed must be cleared,
        # and the queue says how a PrusaLink printer's bed is confirmed.
        assert await state_is(second, Job.State.QUEUED)
        explain = await page(web, reverse("jobs:explain", args=[second.pk]))
        assert WAITS in explain
        card = card_of(await page(web, reverse("printers:dashboard")), printer.pk)
        assert "Bed not confirmed clear" in card

        farm.set_ready(0)  # someone took the part off and pressed "Set Ready" on the printer
        await eventually(lambda: state_is(second, Job.State.COMPLETED))

    # Nobody clicked "Bed cleared": the printer's Set Ready opened the gate.
    assert not await AuditEntry.objects.filter(action="printer.bed_cleared").aexists()
    assert await PrinterEvent.objects.filter(printer_id=printer.pk, message=SET_READY).acount() == 1
    history = await page(web, reverse("jobs:history"))
    for job in (first, second):
        assert f'href="{reverse("jobs:job", args=[job.pk])}"' in history
    assert "mk4-1" in history
    statistics = await sync_to_async(web.get)(reverse("jobs:statistics"), {"period": "30d"})
    rows = {row.name: row.figures for row in statistics.context["by_printer"]}
    assert (rows["mk4-1"].finished, rows["mk4-1"].completed) == (2, 2)


async def finished_with_a_part_on_the_bed(printer: Printer) -> bool:
    occupied = await Printer.objects.filter(pk=printer.pk, bed_clear=False).aexists()
    return occupied and await shows(printer, State.FINISHED)


async def state_is(job: Job, state: str) -> bool:
    return await Job.objects.filter(pk=job.pk, state=state).aexists()
