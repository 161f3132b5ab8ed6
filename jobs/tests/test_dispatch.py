"""Dispatch against the simulator over loopback: queue -> printer -> upload -> print -> end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async

from jobs import services
from jobs.dispatch import Dispatcher, StartGate
from jobs.models import Job, JobEvent
from jobs.tests.factories import make_file
from printers.coordinator import Coordinator
from printers.models import Printer
from printers.services import printer_create
from printers.simulator import SimulatedFarm
from printfarm.testing import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]

S = Job.State
SPEED = 60.0  # a file estimated at 60 s prints in 1 s
LIFECYCLE = ["queued", "assigned", "uploading", "printing", "completed"]


async def add_printers(farm: SimulatedFarm, count: int | None = None, **fields) -> list[Printer]:
    printers = []
    for sim in farm.printers[:count]:
        values = {"name": f"sim-{sim.index}", "protocol": sim.protocol, "base_url": sim.base_url} | fields
        printers.append(await sync_to_async(printer_create)(fields=values))
    return printers


@contextlib.asynccontextmanager
async def running(**options) -> AsyncIterator[Dispatcher]:
    coordinator = Coordinator(
        interval=0.1, timeout=1.0, backoff_max=0.4, flush_interval=0.05, reload_interval=0.2
    )
    dispatch_options = {"interval": 0.05, "retry_seconds": 0.1} | options
    dispatcher = Dispatcher(coordinator, **dispatch_options)
    await coordinator.start()
    await dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.aclose()
        await coordinator.aclose()


def states() -> dict[int, str]:
    return dict(Job.objects.values_list("pk", "state"))


async def count(**filters) -> int:
    return await Job.objects.filter(**filters).acount()


async def queue(file, **options) -> list[Job]:
    return await sync_to_async(services.jobs_create)(file=file, **options)


async def clear_beds() -> None:
    for pk in await sync_to_async(list)(Printer.objects.values_list("pk", flat=True)):
        await sync_to_async(services.printer_bed_set)(pk, clear=True, by="tester")


async def events_of(job: Job) -> list[str]:
    return [e async for e in JobEvent.objects.filter(job=job).values_list("to_state", flat=True)]


async def test_six_jobs_on_three_printers_wait_for_cleared_beds(farm):
    printers = await add_printers(farm)
    file = await sync_to_async(make_file)("cube.gcode", seconds=60)
    jobs = await queue(file, quantity=6)
    async with running():
        await eventually(lambda: _equals(count(state=S.COMPLETED), 3))
        # Each printer finished one and now waits for an operator: nothing else starts.
        await asyncio.sleep(0.5)
        assert await count(state=S.QUEUED) == 3
        assert not await Printer.objects.filter(bed_clear=True).aexists()
        await clear_beds()
        await eventually(lambda: _equals(count(state=S.COMPLETED), 6))
    for job in jobs:
        assert await events_of(job) == LIFECYCLE
    per_printer = [await count(printer=p, state=S.COMPLETED) for p in printers]
    assert per_printer == [2, 2, 2]
    done = await Job.objects.filter(state=S.COMPLETED).afirst()
    assert done.finished_at and done.started_at and done.filament_mm == pytest.approx(1234.5)
    # The simulator really received the file on every printer.
    assert all(sim.files for sim in farm.printers)


async def _equals(value, expected) -> bool:
    return (await value) == expected


async def test_requirements_pick_the_matching_printer(farm):
    pla, petg, tagged = await add_printers(farm)
    await sync_to_async(Printer.objects.filter(pk=pla.pk).update)(material="PLA")
    await sync_to_async(Printer.objects.filter(pk=petg.pk).update)(material="PETG")
    await sync_to_async(tagged.tags.add)(await _tag("big"))
    file = await sync_to_async(make_file)("a.gcode", seconds=6000)
    (petg_job,) = await queue(file, material="PETG")
    (big_job,) = await queue(file, tags=[await _tag("big")])
    async with running():
        await eventually(lambda: _equals(count(state=S.PRINTING), 2))
    await petg_job.arefresh_from_db()
    await big_job.arefresh_from_db()
    assert petg_job.printer_id == petg.pk
    assert big_job.printer_id == tagged.pk


async def _tag(name: str):
    from printers.models import Tag

    tag, _ = await Tag.objects.aget_or_create(name=name)
    return tag


async def test_higher_priority_goes_first(farm):
    (printer,) = await add_printers(farm, 1)
    file = await sync_to_async(make_file)("slow.gcode", seconds=6000)
    (low,) = await queue(file, priority=0)
    (high,) = await queue(file, priority=5)
    async with running():
        await eventually(lambda: _equals(count(state=S.PRINTING), 1))
    await high.arefresh_from_db()
    await low.arefresh_from_db()
    assert (high.state, low.state) == (S.PRINTING, S.QUEUED)


async def test_broken_transfer_is_retried_then_fails_with_the_reason(farm):
    (printer,) = await add_printers(farm, 1)
    farm.set_fault(0, "reset_upload")
    file = await sync_to_async(make_file)("big.gcode", padding=300_000)
    (job,) = await queue(file)
    async with running(attempts=3):
        await eventually(lambda: _equals(count(state=S.FAILED), 1))
    await job.arefresh_from_db()
    assert job.attempts == 3
    assert "after 3 attempts" in job.reason
    assert await events_of(job) == [
        "queued",
        "assigned",
        "uploading",
        "assigned",
        "uploading",
        "assigned",
        "uploading",
        "failed",
    ]
    # Never started on a partial file: the printer stayed idle and holds no file.
    assert farm.printers[0].summary_state() != "printing"
    assert not farm.printers[0].files


async def test_offline_printer_mid_transfer_recovers_on_retry(farm):
    (printer,) = await add_printers(farm, 1)
    file = await sync_to_async(make_file)("x.gcode", seconds=60)
    farm.set_fault(0, "reset_upload")
    (job,) = await queue(file)
    async with running(attempts=5, retry_seconds=0.3):
        await eventually(lambda: _attempts(job, 2))
        farm.set_fault(0, None)
        await eventually(lambda: _equals(count(state=S.COMPLETED), 1))
    await job.arefresh_from_db()
    assert job.attempts >= 2


async def _attempts(job: Job, n: int) -> bool:
    await job.arefresh_from_db()
    return job.attempts >= n


async def test_poller_restart_mid_print_records_the_end_once(farm):
    (printer,) = await add_printers(farm, 1)
    file = await sync_to_async(make_file)("r.gcode", seconds=180)  # 3 s at this speed
    (job,) = await queue(file)
    async with running():
        await eventually(lambda: _equals(count(state=S.PRINTING), 1))
    # The poller is down while the print ends.
    await eventually(lambda: farm.print_log(0)[-1]["outcome"] != "in_progress")
    async with running():
        await eventually(lambda: _equals(count(state=S.COMPLETED), 1))
        await asyncio.sleep(0.5)
    assert (await events_of(job)).count("completed") == 1
    await job.arefresh_from_db()
    assert "while the poller was away" in job.reason


async def test_poller_restart_mid_upload_sends_again(farm):
    (printer,) = await add_printers(farm, 1)
    farm.set_fault(0, "stall_upload")  # the printer stops reading mid-upload
    file = await sync_to_async(make_file)("u.gcode", seconds=60)
    (job,) = await queue(file)
    async with running():
        await eventually(lambda: _equals(count(state=S.UPLOADING), 1))
    assert await count(state=S.UPLOADING) == 1  # left as it was by the shutdown
    farm.set_fault(0, None)
    async with running():
        await eventually(lambda: _equals(count(state=S.COMPLETED), 1))
    events = await events_of(job)
    assert events[:4] == ["queued", "assigned", "uploading", "assigned"]
    assert events.count("completed") == 1


async def test_cancel_while_uploading_stops_the_transfer(farm):
    (printer,) = await add_printers(farm, 1)
    farm.set_fault(0, "stall_upload")
    file = await sync_to_async(make_file)("c.gcode", seconds=60)
    (job,) = await queue(file)
    async with running() as dispatcher:
        await eventually(lambda: _equals(count(state=S.UPLOADING), 1))
        await job.arefresh_from_db()
        await sync_to_async(services.job_cancel)(job, by="tester")
        await eventually(lambda: not dispatcher.transfers and not dispatcher.busy)
    farm.set_fault(0, None)
    await job.arefresh_from_db()
    assert job.state == S.CANCELLED
    assert farm.printers[0].summary_state() != "printing"


async def test_cancel_while_printing_stops_the_printer(farm):
    from jobs.control import job_stop

    (printer,) = await add_printers(farm, 1)
    file = await sync_to_async(make_file)("p.gcode", seconds=60_000)
    (job,) = await queue(file)
    async with running() as dispatcher:
        await eventually(lambda: _equals(count(state=S.PRINTING), 1))
        await job.arefresh_from_db()
        await job_stop(job, by="tester")
        await eventually(lambda: not dispatcher.busy)
    await job.arefresh_from_db()
    assert job.state == S.CANCELLED
    # Whichever saw it first, the web or the poller, the record says who cancelled it.
    assert (await JobEvent.objects.filter(job=job).alast()).by == "tester"
    assert farm.printers[0].summary_state() != "printing"
    # A half-printed part is on the bed.
    assert not (await Printer.objects.aget(pk=printer.pk)).bed_clear


async def test_auto_clear_printer_takes_the_next_job_at_once(farm):
    (printer,) = await add_printers(farm, 1, auto_clear=True)
    file = await sync_to_async(make_file)("a.gcode", seconds=30)
    await queue(file, quantity=2)
    async with running():
        await eventually(lambda: _equals(count(state=S.COMPLETED), 2))


async def test_upload_only_puts_the_file_on_the_printer_without_printing(farm):
    (printer,) = await add_printers(farm, 1)
    file = await sync_to_async(make_file)("only.gcode", seconds=60)
    (job,) = await queue(file, action=Job.Action.UPLOAD)
    async with running():
        await eventually(lambda: _equals(count(state=S.COMPLETED), 1))
    assert farm.printers[0].files
    assert farm.printers[0].summary_state() != "printing"
    assert (await Printer.objects.aget(pk=printer.pk)).bed_clear  # nothing was printed


async def test_start_gate_lets_k_starts_through_per_window():
    now = [0.0]
    gate = StartGate(2, 10.0, clock=lambda: now[0])
    assert gate.delay() == 0
    gate.starts.extend([0.0, 1.0])
    assert gate.delay() == pytest.approx(10.0)
    now[0] = 10.5
    assert gate.delay() == 0
    assert StartGate(0, 10.0).delay() == 0


async def test_staggered_start_spaces_the_starts(farm):
    await add_printers(farm, 2)
    file = await sync_to_async(make_file)("s.gcode", seconds=60_000)
    await queue(file, quantity=2)
    async with running(stagger=(1, 1.5)):
        await eventually(lambda: _equals(count(state=S.PRINTING), 2))
    starts = sorted([j.started_at async for j in Job.objects.filter(state=S.PRINTING)])
    assert (starts[1] - starts[0]).total_seconds() >= 1.4


async def test_printer_going_offline_mid_transfer_fails_the_job_with_the_reason(farm):
    (printer,) = await add_printers(farm, 1)
    farm.set_fault(0, "stall_upload")
    file = await sync_to_async(make_file)("o.gcode", seconds=60)
    (job,) = await queue(file)
    async with running(attempts=2, retry_seconds=0.2):
        await eventually(lambda: _equals(count(state=S.UPLOADING), 1))
        farm.set_fault(0, "offline")  # the stalled transfer breaks; the retry finds nobody
        await eventually(lambda: _equals(count(state=S.FAILED), 1))
    await job.arefresh_from_db()
    assert job.attempts == 2
    assert job.reason.startswith("Sending to sim-0 failed after 2 attempts: ")
    assert "refused" in job.reason or "connect" in job.reason
    assert farm.printers[0].summary_state() != "printing"
