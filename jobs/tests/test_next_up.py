"""The queue's "Next up" names the printer the dispatcher then picks: both offer free printers
in `jobs.matching.in_dispatch_order` (by id), whatever order their names sort in."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from jobs.dispatch import Dispatcher
from jobs.matching import Candidate, Needs, plan
from jobs.models import Job
from jobs.queries import candidates
from jobs.tests.factories import make_file
from jobs.tests.test_dispatch import eventually, queue
from printers.coordinator import Coordinator
from printers.models import Printer
from printers.services import printer_create
from printers.simulator import SimulatedFarm
from printers.state import State
from printers.tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]


def test_plan_offers_free_printers_by_id_whatever_order_they_come_in():
    by_name = [Candidate(pk=2, name="printer-10"), Candidate(pk=1, name="printer-2")]
    assert plan([Needs(7)], by_name) == {1: 7}


def next_up() -> list[tuple[str, int]]:
    """(printer name, job pk) for each "X gets #N" line of the queue page's Next up."""
    client = Client()
    client.force_login(UserFactory())
    page = client.get(reverse("jobs:queue")).content.decode()
    section = page.split('data-testid="next-up"', 1)[1].split("</ul>", 1)[0]
    return [
        (name, int(pk))
        for name, pk in re.findall(r'<strong>([^<]*)</strong> gets <a href="[^"]*">#(\d+)', section)
    ]


@contextlib.asynccontextmanager
async def polling() -> AsyncIterator[Coordinator]:
    coordinator = Coordinator(
        interval=0.1, timeout=1.0, backoff_max=0.4, flush_interval=0.05, reload_interval=0.2
    )
    await coordinator.start()
    try:
        yield coordinator
    finally:
        await coordinator.aclose()


async def both_recorded_idle() -> bool:
    return await Printer.objects.filter(status__state="idle").acount() == 2


def both_polled_idle(coordinator: Coordinator) -> bool:
    polled = [p.last for p in coordinator.printers.values()]
    return len(polled) == 2 and all(last is not None and last.state == State.IDLE for last in polled)


async def test_next_up_names_the_printer_the_dispatcher_then_picks(farm: SimulatedFarm):
    # Created in this order, "printer-2" has the lower id, while "printer-10" sorts first as text.
    for sim, name in zip(farm.printers, ("printer-2", "printer-10"), strict=False):
        fields = {"name": name, "protocol": sim.protocol, "base_url": sim.base_url}
        await sync_to_async(printer_create)(fields=fields)
    shown = [c.name for c in await sync_to_async(candidates)()]
    assert shown == ["printer-10", "printer-2"]  # the page reads printers by name

    # The poller records both printers idle and stops before anything is queued.
    async with polling():
        await eventually(both_recorded_idle)
    file = await sync_to_async(make_file)("cube.gcode", seconds=6000)
    (job,) = await queue(file)

    preview = await sync_to_async(next_up)()
    assert preview == [("printer-2", job.pk)]

    # Dispatch starts once both printers are polled, so it chooses between the two rather
    # than taking whichever answered first.
    async with polling() as coordinator:
        await eventually(lambda: both_polled_idle(coordinator))
        dispatcher = Dispatcher(coordinator, interval=0.05, retry_seconds=0.1)
        await dispatcher.start()
        try:
            await eventually(lambda: Job.objects.filter(pk=job.pk).exclude(state=Job.State.QUEUED).aexists())
        finally:
            await dispatcher.aclose()
    await job.arefresh_from_db()
    assert job.printer_name == preview[0][0]
