"""What a job's card, the queue and its record say about time (issue 8), against a simulated
Klipper over loopback: the recorded print time is the real one, a paused job reads paused, and
every screen writes durations one way."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from jobs.matching import Candidate, Needs, reasons
from jobs.models import Job
from jobs.outcomes import Follow, printed_seconds
from jobs.templatetags.jobs_format import duration
from jobs.tests.factories import make_file
from jobs.tests.test_dispatch import add_printers, queue, running
from printers.cards import render_card
from printers.drivers import DriverConfig, get_driver
from printers.drivers.http import make_client
from printers.models import Printer
from printers.presenters import Card, card_for
from printers.simulator import SimulatedFarm
from printers.state import State
from printers.tests.factories import UserFactory
from printfarm.testing import FarmFactory, eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]

S = Job.State
SPEED = 60.0  # a file estimated at 60 s prints in 1 s


@pytest.fixture
async def klipper(make_farm: FarmFactory) -> SimulatedFarm:
    return await make_farm("moonraker", speed=SPEED)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(timeout=2.0) as client:
        yield client


async def _job(job: Job) -> Job:
    await job.arefresh_from_db()
    return job


def _card(printer_id: int) -> Card:
    return card_for(Printer.objects.with_status().get(pk=printer_id))


def _page(name: str) -> str:
    web = Client()
    web.force_login(UserFactory())
    return web.get(reverse(name)).content.decode()


async def test_print_without_an_extruder_records_its_real_print_time(klipper):
    """The defect: Klipper's print_duration stays 0 on a host without an extruder, and the
    job was recorded with 0 s of print time. It is the time the print took."""
    klipper.set_first_extrusion(0, None)
    await add_printers(klipper)
    file = await sync_to_async(make_file)("plot.gcode", seconds=120)  # 2 s at SPEED
    (job,) = await queue(file)
    async with running():
        await eventually(lambda: _state_is(job, S.COMPLETED))
    job = await _job(job)
    assert job.print_seconds == 120
    history = await sync_to_async(_page)("jobs:history")
    row = re.search(rf'<tr id="history-job-{job.pk}">(.*?)</tr>', history, re.S).group(1)
    assert "2 min" in row


async def _state_is(job: Job, state: str) -> bool:
    return (await _job(job)).state == state


async def test_paused_job_reads_paused_on_its_card_and_in_the_queue(klipper, client):
    (printer,) = await add_printers(klipper)
    file = await sync_to_async(make_file)("long.gcode", seconds=36_000)  # 10 min at SPEED
    (job,) = await queue(file)
    driver = get_driver("moonraker", DriverConfig(base_url=klipper.printers[0].base_url), client)
    async with running():
        await eventually(lambda: _state_is(job, S.PRINTING))
        card = await sync_to_async(_card)(printer.pk)
        assert card.job is not None and card.job.state_label == "Printing"
        await driver.pause()
        await eventually(lambda: _card_state(printer.pk, State.PAUSED))
        card = await sync_to_async(_card)(printer.pk)
        assert card.job.state_label == "Paused"
        html = await sync_to_async(render_card)(card)
        assert f"Job #{job.pk} · paused" in html
        assert re.search(r"Paused · <strong[^>]*>\d+%</strong> · printed \d+ (s|min)", html), html
        assert "Paused · " in await sync_to_async(_page)("jobs:queue")

        await driver.resume()
        await eventually(lambda: _card_state(printer.pk, State.PRINTING))
        card = await sync_to_async(_card)(printer.pk)
        assert card.job.state_label == "Printing"
    assert (await _job(job)).state == S.PRINTING  # a pause is no end: the job kept printing


async def _card_state(printer_id: int, state: State) -> bool:
    return (await sync_to_async(_card)(printer_id)).state == state


# -- the recorded print time when the printer has none --------------------------------------

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_a_print_reported_as_0_s_is_timed_from_start_to_end_less_the_pauses_seen():
    follow = Follow(job_id=1, printer_id=1, remote_name="a.gcode", started=0.0, seen_running=True)
    follow.note_running(paused=False, now=10.0)
    follow.note_running(paused=True, now=100.0)
    follow.note_running(paused=True, now=150.0)
    follow.note_running(paused=False, now=400.0)  # paused for 300 s
    follow.note_running(paused=True, now=500.0)  # and paused when it ended, 60 s later
    end = START + dt.timedelta(seconds=1800)

    def recorded(reported: int | None, **overrides) -> int | None:
        options = {"seen_running": True, "started_at": START, "ended_at": end, "paused": follow.pauses(560.0)}
        return printed_seconds(reported, **(options | overrides))

    assert recorded(0) == 1800 - 360
    assert recorded(None) == 1800 - 360
    assert recorded(1234) == 1234  # the printer's own count wins
    assert recorded(0, seen_running=False) == 0  # never seen printing: nothing to time
    assert recorded(None, started_at=None) is None


# -- one duration style -----------------------------------------------------------------------

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_history_queue_and_reasons_write_durations_like_the_card():
    assert duration(3720) == "1 h 02 min"
    assert duration(720) == "12 min"
    assert duration(45) == "45 s"
    assert duration(None) == "—"
    assert duration("garbage") == "—"
    busy = Candidate(pk=1, name="sim-1", state=State.PRINTING, remaining=3720)
    assert [r.text for r in reasons(Needs(1), busy, NOW)] == ["busy, 1 h 02 min left"]
    offline = Candidate(pk=1, name="sim-1", state=State.OFFLINE, since=NOW - dt.timedelta(seconds=3720))
    assert [r.text for r in reasons(Needs(1), offline, NOW)] == ["offline for 1 h 02 min"]
