"""The queue on PrusaLink printers over loopback: digest login, one connection per printer while
the poller and the dispatcher share it, and beds confirmed clear by "Set Ready" on the printer."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from jobs.models import Job
from jobs.tests.factories import make_file
from jobs.tests.test_dispatch import LIFECYCLE, _equals, count, events_of, queue, running
from printers.models import Printer, PrinterEvent
from printers.services import printer_create
from printers.simulator import SimulatedFarm
from printfarm.testing import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]

S = Job.State


@pytest.fixture
async def prusa_farm(make_farm) -> SimulatedFarm:
    return await make_farm("prusalink", count=2)


async def test_jobs_run_on_prusalink_printers_and_set_ready_frees_the_bed(prusa_farm: SimulatedFarm) -> None:
    for sim in prusa_farm.printers:
        device = prusa_farm.prusalink_devices[sim.index]
        fields = {
            "name": f"mk4-{sim.index}",
            "protocol": Printer.Protocol.PRUSALINK,
            "base_url": sim.base_url,
            "username": "maker",
            "api_key": device.password,
        }
        await sync_to_async(printer_create)(fields=fields)
        device.reset_peaks()
    file = await sync_to_async(make_file)("cube.gcode", seconds=60)
    jobs = await queue(file, quantity=4)
    async with running():
        await eventually(lambda: _equals(count(state=S.COMPLETED), 2))
        assert not await Printer.objects.filter(bed_clear=True).aexists()
        assert await count(state=S.QUEUED) == 2
        for device in prusa_farm.prusalink_devices.values():
            device.set_ready()  # parts taken off, "Set Ready" pressed on each printer
        await eventually(lambda: _equals(count(state=S.COMPLETED), 4))
    for job in jobs:
        assert await events_of(job) == LIFECYCLE
    confirmed = PrinterEvent.objects.filter(message="Bed confirmed clear on the printer (Set Ready)")
    assert await confirmed.acount() == 2
    for device in prusa_farm.prusalink_devices.values():
        assert device.peak_connections == 1  # the poller and the dispatcher took turns
