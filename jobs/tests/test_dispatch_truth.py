"""Records that stay true through bad replies, lost connections, crashes and stalls (issue 7).

Each test reproduces a reported defect against the simulator over loopback."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import sync_to_async

from jobs import services
from jobs.models import Job, JobEvent
from jobs.outcomes import START_GRACE
from jobs.presenters import card_jobs
from jobs.tests.factories import make_file
from jobs.tests.test_dispatch import (
    _equals,
    add_printers,
    count,
    events_of,
    queue,
    running,
)
from jobs.transfer import remote_name_for
from printers.commands import COMMANDS, command_send
from printers.models import Printer, PrinterStatusRow
from printers.simulator.printer import SERIAL_ERROR
from printers.state import State
from printfarm.testing import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_thread_connections")]

S = Job.State


async def _job(job: Job) -> Job:
    await job.arefresh_from_db()
    return job


async def _reason_has(job: Job, text: str) -> bool:
    return text in (await _job(job)).reason


@pytest.mark.parametrize("fault", ["http500", "malformed"])
async def test_one_bad_reply_does_not_end_a_running_print(farm, fault):
    await add_printers(farm, 1)
    file = await sync_to_async(make_file)("long.gcode", seconds=360)  # 6 s at this speed
    (job,) = await queue(file)
    async with running():
        await eventually(lambda: _equals(count(state=S.PRINTING), 1))
        farm.set_fault(0, fault)
        # The loss shows on the job at once; the print is not ended by an unreadable reply.
        await eventually(lambda: _reason_has(job, "Lost contact"))
        on_card = await sync_to_async(card_jobs)([job.printer_id])
        assert on_card[job.printer_id].note.startswith("Lost contact with sim-0")
        farm.set_fault(0, None)
        await eventually(lambda: _equals(count(state=S.COMPLETED), 1))
    job = await _job(job)
    assert await events_of(job) == ["queued", "assigned", "uploading", "printing", "completed"]
    assert job.reason.startswith("Finished on the printer")


async def test_unreachable_printer_fails_its_print_after_the_grace(farm):
    await add_printers(farm, 1)
    file = await sync_to_async(make_file)("slow.gcode", seconds=60_000)
    (job,) = await queue(file)
    async with running(lost_seconds=1.5):
        await eventually(lambda: _equals(count(state=S.PRINTING), 1))
        farm.set_fault(0, "offline")
        await eventually(lambda: _reason_has(job, "Lost contact"))
        assert (await _job(job)).state == S.PRINTING
        await eventually(lambda: _equals(count(state=S.FAILED), 1))
    job = await _job(job)
    assert "unreachable for" in job.reason and "outcome is unknown" in job.reason
    assert "cancel" not in job.reason.lower()


async def test_printer_back_without_the_print_after_a_loss_is_failed_not_cancelled(farm):
    """Klippy stopped (Moonraker) or OctoPrint's serial link lost, mid-print."""
    await add_printers(farm, 2)
    file = await sync_to_async(make_file)("lost.gcode", seconds=60_000)
    jobs = await queue(file, quantity=2)
    async with running():
        await eventually(lambda: _equals(count(state=S.PRINTING), 2))
        by_protocol = {
            await Printer.objects.filter(jobs=job).values_list("protocol", flat=True).aget(): job
            for job in jobs
        }
        for index in (0, 1):
            farm.set_fault(index, "disconnect")
        # Moonraker answers "Klipper not ready": the loss shows on the job while it lasts
        # (unless a reading already shows Klipper back idle and its history says why).
        await eventually(lambda: _lost_or_failed(by_protocol["moonraker"]))
        # OctoPrint itself reports the print's end: "Offline after error" with its error text.
        await eventually(lambda: _is_failed(by_protocol["octoprint"]))
        for index in (0, 1):
            farm.set_fault(index, None)
        await eventually(lambda: _equals(count(state=S.FAILED), 2))
    moonraker, octoprint = [await _job(by_protocol[p]) for p in ("moonraker", "octoprint")]
    # Moonraker's own job history names the cause once Klipper is back.
    assert "Klipper disconnected during the print (klippy_disconnect)" in moonraker.reason
    assert "SerialException" in octoprint.reason
    assert "cancel" not in (moonraker.reason + octoprint.reason).lower()


async def _is_failed(job: Job) -> bool:
    return (await _job(job)).state == S.FAILED


async def _lost_or_failed(job: Job) -> bool:
    job = await _job(job)
    return (job.state, job.reason[:12]) == (S.PRINTING, "Lost contact") or job.state == S.FAILED


async def test_octoprint_back_without_the_print_after_an_unreachable_spell_is_failed(farm):
    """No history to ask: a print that vanished while the printer was away is failed, not
    put down as a cancel."""
    (_, printer) = await add_printers(farm, 2)
    file = await sync_to_async(make_file)("gone.gcode", seconds=60_000)
    (job,) = await queue(file, printers=[printer])
    async with running():
        await eventually(lambda: _equals(count(state=S.PRINTING), 1))
        farm.set_fault(1, "offline")
        await eventually(lambda: _reason_has(job, "Lost contact"))
        await _cancel_at_printer(farm.printers[1], farm=farm)
        farm.set_fault(1, None)
        await eventually(lambda: _equals(count(state=S.FAILED), 1))
    job = await _job(job)
    assert "came back without the print" in job.reason


async def test_cancel_from_the_card_is_recorded_with_who(farm):
    (printer,) = await add_printers(farm, 1)
    file = await sync_to_async(make_file)("card.gcode", seconds=60_000)
    (job,) = await queue(file)
    async with running():
        await eventually(lambda: _equals(count(state=S.PRINTING), 1))
        # The card offers cancel once the poller has recorded the print.
        await eventually(PrinterStatusRow.objects.filter(printer_id=printer.pk, state="printing").aexists)
        printer = await Printer.objects.aget(pk=printer.pk)
        outcome = await command_send(printer=printer, command=COMMANDS["cancel"], by="alice")
        assert outcome.ok
        await eventually(lambda: _equals(count(state=S.CANCELLED), 1))
    job = await _job(job)
    assert job.reason == "Cancelled from printfarm by alice"
    last = await JobEvent.objects.filter(job=job).alast()
    assert (last.to_state, last.by) == (S.CANCELLED, "alice")


async def test_a_cancel_at_the_printer_is_recorded_as_such(farm):
    await add_printers(farm, 2)
    file = await sync_to_async(make_file)("there.gcode", seconds=60_000)
    jobs = await queue(file, quantity=2)
    async with running():
        await eventually(lambda: _equals(count(state=S.PRINTING), 2))
        for sim in farm.printers[:2]:
            await _cancel_at_printer(sim)
        await eventually(lambda: _equals(count(state=S.CANCELLED), 2))
    for job in jobs:
        job = await _job(job)
        assert "at the printer" in job.reason.lower()
        assert (await JobEvent.objects.filter(job=job).alast()).by == ""


@pytest.mark.parametrize("index", [0, 1], ids=["moonraker", "octoprint"])
async def test_a_cancel_at_the_printer_before_any_reading_showed_the_print(farm, index):
    """Cancelled on the printer's screen as it began: no reading ever shows it printing (on
    a busy machine the poll after the start can come late), only the printer idle with the
    job's file as its last job."""
    printers = await add_printers(farm, 2)
    sim = farm.printers[index]

    def cancel_as_it_starts(entry: dict) -> None:  # inside the start request, before its reply
        if entry["index"] == index and entry["outcome"] == "in_progress":
            sim.cancel(farm.sim_now())

    farm.add_print_listener(cancel_as_it_starts)
    file = await sync_to_async(make_file)("brief.gcode", seconds=60_000)
    (job,) = await queue(file, printers=[printers[index]])
    async with running():
        # Waits past the start grace, so that a wrong verdict shows as itself, not as a timeout.
        await eventually(lambda: _has_ended(job), timeout=START_GRACE + 10)
    job = await _job(job)
    assert (job.state, "at the printer" in job.reason.lower()) == (S.CANCELLED, True), job.reason


async def _has_ended(job: Job) -> bool:
    return (await _job(job)).is_finished


async def test_an_error_between_two_rounds_is_not_taken_for_a_cancel(farm):
    """OctoPrint's serial link lost and back between two dispatch rounds (a round held up on
    a busy machine): the next look shows the printer idle with the job's file, as after a
    cancel; the poller's reading in between said how the print ended."""
    printers = await add_printers(farm, 2)
    file = await sync_to_async(make_file)("between.gcode", seconds=60_000)
    (job,) = await queue(file, printers=[printers[1]])
    async with running(interval=3600.0) as dispatcher:  # rounds only when the test runs one
        poller = dispatcher.coordinator.printers[printers[1].pk]

        async def seen_printing() -> bool:
            await dispatcher.tick()
            follow = dispatcher.following.get(job.pk)
            return follow is not None and follow.seen_running

        await eventually(seen_printing)
        farm.set_fault(1, "disconnect")
        await eventually(lambda: poller.last.state == State.ERROR)
        farm.set_fault(1, None)
        await eventually(lambda: poller.last.state == State.IDLE)

        async def ended() -> bool:
            await dispatcher.tick()
            return await _has_ended(job)

        await eventually(ended)
    job = await _job(job)
    assert (job.state, job.reason) == (S.FAILED, f"The printer reported an error: {SERIAL_ERROR}")


async def _cancel_at_printer(sim, *, farm=None) -> None:
    """Someone presses cancel on the printer's own screen: its API, not printfarm's (or, given
    the farm, on the simulated printer itself while its API is unreachable)."""
    import httpx

    if farm is not None:
        now = farm.sim_now()
        sim.advance(now)
        sim.cancel(now)
        return

    async with httpx.AsyncClient() as client:
        if sim.protocol == "moonraker":
            response = await client.post(f"{sim.base_url}/printer/print/cancel")
        else:
            response = await client.post(f"{sim.base_url}/api/job", json={"command": "cancel"})
    assert response.is_success


async def _put_printing_on_printer(farm, index: int, job: Job, *, seconds: float) -> None:
    """The crash window: the printer started this job's file, the database still says uploading."""
    remote = remote_name_for(job)
    await sync_to_async(services.job_transition)(job, S.ASSIGNED, printer_id=job.target_printer_id)
    await sync_to_async(services.job_transition)(job, S.UPLOADING, attempts=1, remote_name=remote)
    farm.start_print(index, remote, duration=seconds)


async def test_crash_between_start_and_record_follows_the_print_without_resending(farm):
    (printer,) = await add_printers(farm, 1)
    file = await sync_to_async(make_file)("twice.gcode", seconds=60)
    (job,) = await queue(file, printers=[printer])
    await _put_printing_on_printer(farm, 0, job, seconds=240)  # 4 s
    async with running():
        await eventually(lambda: _equals(count(state=S.PRINTING), 1))
        await eventually(lambda: _equals(count(state=S.COMPLETED), 1))
    job = await _job(job)
    assert job.attempts == 1
    assert (await events_of(job)).count("uploading") == 1  # never sent again
    log = [r for r in farm.print_log() if r["filename"].endswith(job.remote_name)]
    assert len(log) == 1 and log[0]["outcome"] == "completed"


async def test_crash_after_the_print_finished_records_it_completed(farm):
    (printer,) = await add_printers(farm, 1)
    file = await sync_to_async(make_file)("done.gcode", seconds=60)
    (job,) = await queue(file, printers=[printer])
    await _put_printing_on_printer(farm, 0, job, seconds=30)  # 0.5 s: over before we look
    await eventually(lambda: [r["outcome"] for r in farm.print_log()] == ["completed"])
    async with running():
        await eventually(lambda: _equals(count(state=S.COMPLETED), 1))
    assert (await events_of(job)).count("uploading") == 1
    assert len([r for r in farm.print_log() if r["filename"].endswith(job.remote_name)]) == 1


async def test_crash_at_the_last_attempt_does_not_exceed_the_limit(farm):
    (printer,) = await add_printers(farm, 1)
    file = await sync_to_async(make_file)("third.gcode", seconds=60)
    (job,) = await queue(file, printers=[printer])
    await sync_to_async(services.job_transition)(job, S.ASSIGNED, printer_id=printer.pk)
    # The poller died during attempt 3 of 3; the printer holds nothing of it.
    await sync_to_async(services.job_transition)(
        job, S.UPLOADING, attempts=3, remote_name=remote_name_for(job)
    )
    farm.set_fault(0, "reset_upload")
    async with running(attempts=3):
        await eventually(lambda: _equals(count(state=S.FAILED), 1))
    job = await _job(job)
    assert job.attempts == 3
    assert "after 3 attempts" in job.reason


async def test_each_job_has_its_own_file_name_on_the_printer(farm):
    await add_printers(farm, 1, auto_clear=True)
    file = await sync_to_async(make_file)("same.gcode", seconds=60)
    jobs = await queue(file, quantity=2)
    async with running():
        await eventually(lambda: _equals(count(state=S.COMPLETED), 2))
    names = {(await _job(job)).remote_name for job in jobs}
    assert names == {f"same-job{jobs[0].pk}.gcode", f"same-job{jobs[1].pk}.gcode"}
    assert names <= set(farm.printers[0].files)


async def test_stalled_transfer_is_detected_by_progress_and_retried(farm):
    await add_printers(farm, 1)
    farm.set_fault(0, "stall_upload")
    file = await sync_to_async(make_file)("stall.gcode", padding=24_000_000)  # more than socket buffers
    (job,) = await queue(file)
    async with running(attempts=2, stall_seconds=0.6, retry_seconds=0.2):
        await eventually(lambda: _reason_has(job, "Retrying in"))
        assert "Transfer stalled: no bytes accepted for 0.6 s" in (await _job(job)).reason
        await eventually(lambda: _equals(count(state=S.FAILED), 1))
    job = await _job(job)
    assert "after 2 attempts: Transfer stalled" in job.reason
    farm.set_fault(0, None)


async def test_unanswered_transfer_never_shows_100_percent(farm):
    (printer,) = await add_printers(farm, 1, bed_clear=False)
    file = await sync_to_async(make_file)("hole.gcode", seconds=60)  # fits in the socket buffers
    (job,) = await queue(file)
    async with running(attempts=1, confirm_seconds=1.0):
        await eventually(lambda: _state_is(printer, "idle"))
        # The printer stops answering just as it gets the job: its last reading still says idle.
        farm.set_fault(0, "blackhole")
        await sync_to_async(services.printer_bed_set)(printer.pk, clear=True)
        await eventually(lambda: _reason_has(job, "waiting for the printer to confirm"))
        assert (await _job(job)).transfer_percent < 100
        await eventually(lambda: _equals(count(state=S.FAILED), 1))
    assert "did not confirm it within 1 s" in (await _job(job)).reason


async def _state_is(printer: Printer, state: str) -> bool:
    return await PrinterStatusRow.objects.filter(pk=printer.pk, state=state).aexists()


async def test_cancel_during_transfer_logs_no_traceback(farm, caplog):
    await add_printers(farm, 1)
    farm.set_fault(0, "stall_upload")
    file = await sync_to_async(make_file)("quiet.gcode", padding=24_000_000)
    (job,) = await queue(file)
    with caplog.at_level(logging.INFO):
        async with running() as dispatcher:
            await eventually(lambda: _equals(count(state=S.UPLOADING), 1))
            await sync_to_async(services.job_cancel)(await _job(job), by="tester")
            await eventually(lambda: not dispatcher.transfers and not dispatcher.busy)
    farm.set_fault(0, None)
    noisy = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert noisy == []


@pytest.mark.parametrize(("fault", "started"), [("garbled", True), ("malformed", False)])
async def test_a_start_answered_with_garbage_counts_only_once_the_printer_confirms(farm, fault, started):
    """garbled: the printer started and answered garbage; malformed: it answered garbage and
    did nothing. The staggered start holds the second job between its upload and its start,
    which is when its printer begins to answer garbage."""
    printers = await add_printers(farm, 2)
    file = await sync_to_async(make_file)("gate.gcode", seconds=600)
    jobs = await queue(file, printers=printers)
    async with running(stagger=(1, 4.0)):
        # Whichever job's upload finished second waits for its turn.
        await eventually(lambda: _any_waiting(jobs))
        job = next(j for j in jobs if "Waiting for its turn" in j.reason)
        index = [p.pk for p in printers].index(job.printer_id)
        farm.set_fault(index, fault)
        await eventually(lambda: _reason_has(job, "Start not confirmed"))
        assert (await _job(job)).state == S.UPLOADING
        farm.set_fault(index, None)
        await eventually(lambda: _equals(count(pk=job.pk, state=S.PRINTING), 1))
    job = await _job(job)
    events = await events_of(job)
    if started:  # confirmed by the printer's status: one upload, one print
        assert events == ["queued", "assigned", "uploading", "printing"]
        assert job.reason == "The printer confirmed the print"
    else:  # the printer said it is idle: the start was tried again
        assert events == ["queued", "assigned", "uploading", "assigned", "uploading", "printing"]
    prints = [r for r in farm.print_log(index) if r["filename"].endswith(job.remote_name)]
    assert len(prints) == 1


async def _any_waiting(jobs: list[Job]) -> bool:
    for job in jobs:
        await job.arefresh_from_db()
    return any("Waiting for its turn" in job.reason for job in jobs)
