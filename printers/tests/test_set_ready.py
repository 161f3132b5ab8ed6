"""A PrusaLink printer's "Set Ready" (its READY state) confirms the bed for the queue, as the
"Bed cleared" button does; the queue says a PrusaLink printer waits for either."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from jobs import services as job_services
from jobs.models import Job
from jobs.tests.factories import make_file
from jobs.views.queue import queue_context
from jobs.waiting import explain_waiting
from printers.coordinator import Coordinator
from printers.models import Printer, PrinterEvent
from printers.services import printer_bed_set, printer_create
from printers.simulator import SimulatedFarm
from printers.state import PrinterStatus, State
from printers.status_writer import status_write
from printers.tests.factories import PrinterFactory
from printfarm.testing import eventually

pytestmark = pytest.mark.django_db
SET_READY = "Bed confirmed clear on the printer (Set Ready)"
WAITS = "bed not confirmed clear: waiting for Set Ready on the printer or Bed cleared here"


def prusa(**fields) -> Printer:
    return PrinterFactory(protocol=Printer.Protocol.PRUSALINK, **fields)


def reading(printer: Printer, state: State = State.IDLE, **fields) -> None:
    """One poller flush of one reading (printers.status_writer, as the coordinator calls it)."""
    status_write([(printer.pk, PrinterStatus(state=state, **fields))], [])


def bed_clear(printer: Printer) -> bool:
    return Printer.objects.values_list("bed_clear", flat=True).get(pk=printer.pk)


def set_ready_events(printer: Printer) -> int:
    return PrinterEvent.objects.filter(printer=printer, message=SET_READY).count()


def test_set_ready_on_the_printer_clears_the_bed_once():
    printer = prusa()
    reading(printer, State.FINISHED, file="part.gcode", progress=100.0)
    job_services.print_ended(Printer.objects.get(pk=printer.pk))
    assert not bed_clear(printer)

    reading(printer, State.IDLE, message="Ready", bed_ready=True)
    assert bed_clear(printer)
    assert set_ready_events(printer) == 1
    event = PrinterEvent.objects.get(printer=printer, message=SET_READY)
    assert event.kind == PrinterEvent.Kind.COMMAND and event.by == ""

    reading(printer, State.IDLE, message="Ready", bed_ready=True, hotend_actual=30.0)
    assert set_ready_events(printer) == 1  # still READY: not said again


def test_ready_on_a_clear_bed_records_nothing():
    printer = prusa()
    reading(printer, State.IDLE, bed_ready=True)
    assert bed_clear(printer) and set_ready_events(printer) == 0


def test_a_print_ending_after_set_ready_was_read_leaves_the_bed_clear():
    # The print ended and "Set Ready" was pressed before the dispatcher saw the end: the
    # printer already reads READY, so the end must not mark the bed occupied again.
    printer = prusa()
    reading(printer, State.IDLE, bed_ready=True)
    job_services.print_ended(Printer.objects.get(pk=printer.pk))
    assert bed_clear(printer)


def test_a_print_ending_without_set_ready_occupies_the_bed():
    printer = prusa()
    reading(printer, State.FINISHED, file="part.gcode", progress=100.0)
    job_services.print_ended(Printer.objects.get(pk=printer.pk))
    assert not bed_clear(printer)
    reading(printer, State.IDLE)  # idle, not READY: the bed still waits
    assert not bed_clear(printer)


def test_the_queue_says_a_prusalink_bed_waits_for_set_ready_or_the_button():
    prusa_printer = prusa(name="mk4")
    other = PrinterFactory(name="voron")
    for printer in (prusa_printer, other):
        reading(printer, State.FINISHED, file="part.gcode", progress=100.0)
        job_services.print_ended(Printer.objects.get(pk=printer.pk))
    (job,) = job_services.jobs_create(file=make_file())
    job_query = Job.objects.select_related("file", "target_printer")
    job = job_query.prefetch_related("required_tags").get(pk=job.pk)
    waiting = explain_waiting([job], now=timezone.now())[job.pk]
    texts = {row.printer.name: [r.text for r in row.reasons] for row in waiting.printers}
    assert texts == {"mk4": [WAITS], "voron": ["bed not confirmed clear"]}
    unready = {u["printer"].name: u["why"] for u in queue_context()["unready"]}
    assert unready == {"mk4": WAITS, "voron": "bed not confirmed clear"}

    reading(prusa_printer, State.IDLE, bed_ready=True)
    unready = {u["printer"].name: u["why"] for u in queue_context()["unready"]}
    assert unready == {"voron": "bed not confirmed clear"}


@pytest.mark.django_db(transaction=True)
async def test_set_ready_on_a_simulated_printer_reaches_the_queue_through_the_poller():
    farm = SimulatedFarm(1, protocol="prusalink")
    await farm.start()
    try:
        device = farm.prusalink_devices[0]
        fields = {
            "name": "mk4",
            "protocol": Printer.Protocol.PRUSALINK,
            "base_url": farm.printers[0].base_url,
            "api_key": device.password,
        }
        printer = await sync_to_async(printer_create)(fields=fields)
        await sync_to_async(printer_bed_set)(printer.pk, clear=False)  # a print ended on it
        options = {"interval": 0.1, "timeout": 1.0, "backoff_max": 0.4, "flush_interval": 0.05}
        async with Coordinator(**options) as coordinator:
            await eventually(lambda: coordinator.printers[printer.pk].polls >= 1)
            device.set_ready()  # someone took the part off and pressed "Set Ready"
            await eventually(lambda: Printer.objects.filter(pk=printer.pk, bed_clear=True).aexists())
        assert await PrinterEvent.objects.filter(printer_id=printer.pk, message=SET_READY).acount() == 1
    finally:
        await farm.stop()
