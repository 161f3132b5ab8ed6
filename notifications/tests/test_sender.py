"""The sender end to end: events made by the real services reach real receivers on loopback
(a webhook, an SMTP server) through Apprise; rules, digests, quiet hours, retries, restarts."""

from __future__ import annotations

import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from jobs.models import Job
from jobs.services import job_transition, jobs_create, print_ended
from jobs.tests.factories import make_file
from notifications.events import record
from notifications.models import Delivery, DeliveryAttempt, Event, EventKind, Rule
from notifications.sender import Sender, prune
from notifications.tests.helpers import Clock, free_port, make_channel, make_rule
from printers.models import PollerHeartbeat, Tag
from printers.services import printer_bed_set
from printers.state import State
from printers.tests.factories import PrinterFactory, set_status
from printfarm.testing import eventually

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.State


async def _is(count, expected: int) -> bool:
    return await count == expected


def _job_on(printer, *, state: str, thumbnail: bool = False):
    file = make_file("bracket.gcode", thumbnail=(200, 40, 40) if thumbnail else None)
    with transaction.atomic():
        (job,) = jobs_create(file=file, printers=[printer])
    job_transition(job, S.ASSIGNED, printer=printer, printer_name=printer.name)
    job_transition(job, S.UPLOADING)
    if state in (S.PRINTING,):
        job_transition(job, S.PRINTING)
    return job


def print_finished(printer) -> None:
    job = _job_on(printer, state=S.PRINTING)
    job_transition(job, S.COMPLETED, reason="Finished on the printer")


def print_failed(printer) -> None:
    job = _job_on(printer, state=S.PRINTING)
    job_transition(job, S.FAILED, reason="The printer reported an error: thermal runaway")


def transfer_failed(printer) -> None:
    job = _job_on(printer, state=S.UPLOADING)
    job_transition(job, S.FAILED, reason="Upload failed 3 times: connection reset")


def printer_error(printer) -> None:
    set_status(printer, State.ERROR, message="MINTEMP on the bed")


def bed_to_clear(printer) -> None:
    print_ended(printer)


def printer_offline(printer) -> None:
    set_status(printer, State.OFFLINE, message="connection refused")


def queue_dry(printer) -> None:
    job = _job_on(printer, state=S.UPLOADING)  # assigned: it left the queue, which is empty now
    assert job.assigned_at is not None


def poller_stopped(printer) -> None:
    now = timezone.now()
    PollerHeartbeat.objects.create(
        shard_index=0, shard_count=1, host="pi", pid=4242, started_at=now, beat_at=now, stopped_at=now
    )


CAUSES = {
    EventKind.PRINT_FINISHED: (print_finished, "Finished on the printer"),
    EventKind.PRINT_FAILED: (print_failed, "thermal runaway"),
    EventKind.TRANSFER_FAILED: (transfer_failed, "connection reset"),
    EventKind.PRINTER_ERROR: (printer_error, "MINTEMP"),
    EventKind.BED_TO_CLEAR: (bed_to_clear, "clear the bed"),
    EventKind.PRINTER_OFFLINE: (printer_offline, "connection refused"),
    EventKind.QUEUE_DRY: (queue_dry, "No jobs are waiting"),
    EventKind.POLLER_STOPPED: (poller_stopped, "was shut down"),
}


@pytest.mark.parametrize("kind", list(CAUSES), ids=[k.value for k in CAUSES])
async def test_each_event_kind_reaches_the_channel(kind, webhook, start_sender, settings):
    settings.PRINTFARM_BASE_URL = "https://farm.example.com"
    cause, says = CAUSES[kind]
    printer = await sync_to_async(PrinterFactory)(name="Voron 1")
    channel = await make_channel(webhook.url)
    await make_rule([channel], [kind], digest_seconds=0, offline_minutes=0)
    await sync_to_async(cause)(printer)
    await start_sender()

    await eventually(lambda: Delivery.objects.filter(state=Delivery.State.SENT).aexists())
    (body,) = webhook.bodies
    assert body["title"].startswith(EventKind(kind).label)
    assert says in body["message"]
    if kind not in (EventKind.QUEUE_DRY, EventKind.POLLER_STOPPED):
        assert "Voron 1" in body["title"]
        assert f"https://farm.example.com/printers/{printer.pk}/" in body["message"]
    delivery = await Delivery.objects.aget()
    assert delivery.state == Delivery.State.SENT
    assert await DeliveryAttempt.objects.filter(delivery=delivery, ok=True).acount() == 1


async def test_failed_print_by_email_names_file_reason_and_attaches_thumbnail(mailbox, start_sender):
    printer = await sync_to_async(PrinterFactory)(name="Prusa 3")
    channel = await make_channel(mailbox.url)
    await make_rule([channel], [EventKind.PRINT_FAILED], digest_seconds=0)

    @sync_to_async
    def fail_a_print() -> None:
        job = _job_on(printer, state=S.PRINTING, thumbnail=True)
        job_transition(job, S.FAILED, reason="Klipper shut down during the print (klippy_shutdown)")

    await fail_a_print()
    await start_sender()

    await eventually(lambda: mailbox.messages)
    (message,) = mailbox.messages
    assert message["Subject"] == "Print failed: Prusa 3"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "bracket.gcode" in text and "klippy_shutdown" in text
    images = [part for part in message.iter_attachments() if part.get_content_type() == "image/png"]
    assert images and images[0].get_filename() == "bracket.png"


async def test_rules_route_by_event_kind_and_printer_tag(webhook, mailbox, start_sender):
    @sync_to_async
    def farm():
        lab = Tag.objects.create(name="lab")
        return PrinterFactory(name="in-lab", tags=["lab"]), PrinterFactory(name="elsewhere"), lab

    in_lab, elsewhere, lab = await farm()
    hook = await make_channel(webhook.url, name="hook")
    mail = await make_channel(mailbox.url, name="mail")
    await make_rule([hook], [EventKind.PRINTER_ERROR], tags=[lab], name="lab errors", digest_seconds=0)
    await make_rule([mail], [EventKind.BED_TO_CLEAR], name="beds", digest_seconds=0)

    @sync_to_async
    def happen() -> None:
        printer_error(in_lab)
        printer_error(elsewhere)  # not tagged lab: no rule wants it
        printer_bed_set(elsewhere.pk, clear=False)

    await happen()
    await start_sender()

    await eventually(lambda: webhook.bodies and mailbox.messages)
    assert webhook.titles() == ["Printer error: in-lab"]
    assert [m["Subject"] for m in mailbox.messages] == ["Bed needs clearing: elsewhere"]
    assert not await Event.objects.filter(routed_at__isnull=True).aexists()
    assert await Delivery.objects.acount() == 2


async def test_twenty_printers_offline_in_one_window_send_one_message(webhook, start_sender):
    clock = Clock()
    printers = await sync_to_async(lambda: [PrinterFactory(name=f"p{n:02d}") for n in range(20)])()
    channel = await make_channel(webhook.url)
    await make_rule([channel], [EventKind.PRINTER_OFFLINE], digest_seconds=120, offline_minutes=5)
    await start_sender(clock=clock)
    for printer in printers:
        await sync_to_async(printer_offline)(printer)
    clock.advance(minutes=6)  # past the threshold: every one is offline for long enough now

    await eventually(lambda: _is(Event.objects.filter(routed_at__isnull=False).acount(), 20))
    # All of them wait in one message for the digest window to close.
    assert await Delivery.objects.acount() == 1
    assert webhook.bodies == []
    clock.advance(seconds=121)

    await eventually(lambda: Delivery.objects.filter(state=Delivery.State.SENT).aexists())
    (body,) = webhook.bodies
    assert body["title"] == "printfarm: 20 × Printer offline"
    assert all(f"on p{n:02d}" in body["message"] for n in range(20))
    delivery = await Delivery.objects.aget()
    assert await delivery.events.acount() == 20
    assert delivery.state == Delivery.State.SENT


async def test_quiet_hours_hold_messages_until_they_end(webhook, start_sender):
    late = timezone.localtime().replace(hour=23, minute=0, second=0, microsecond=0)
    clock = Clock(late)
    printer = await sync_to_async(PrinterFactory)(name="night-owl")
    channel = await make_channel(webhook.url)
    await make_rule(
        [channel],
        [EventKind.PRINTER_ERROR],
        digest_seconds=0,
        quiet_start=dt.time(22, 0),
        quiet_end=dt.time(7, 0),
        quiet_action=Rule.QuietAction.HOLD,
    )
    await sync_to_async(printer_error)(printer)
    await start_sender(clock=clock)

    await eventually(lambda: Delivery.objects.filter(held=True).aexists())
    delivery = await Delivery.objects.aget()
    assert timezone.localtime(delivery.send_at).time() == dt.time(7, 0)
    assert delivery.send_at > late
    assert webhook.bodies == []
    clock.advance(hours=8, minutes=1)  # 07:01

    await eventually(lambda: webhook.bodies)
    assert webhook.titles() == ["Printer error: night-owl"]


async def test_quiet_hours_drop_when_the_rule_says_so(webhook, mailbox, start_sender):
    clock = Clock(timezone.localtime().replace(hour=3, minute=0, second=0, microsecond=0))
    printer = await sync_to_async(PrinterFactory)(name="p")
    hook = await make_channel(webhook.url, name="hook")
    mail = await make_channel(mailbox.url, name="mail")
    quiet = {"quiet_start": dt.time(22, 0), "quiet_end": dt.time(7, 0), "quiet_action": Rule.QuietAction.DROP}
    await make_rule([hook], [EventKind.PRINTER_ERROR], name="quiet", digest_seconds=0, **quiet)
    await make_rule([mail], [EventKind.PRINTER_ERROR], name="always", digest_seconds=0)
    await sync_to_async(printer_error)(printer)
    await start_sender(clock=clock)

    await eventually(lambda: mailbox.messages)  # the other rule's message went out
    dropped = await Delivery.objects.aget(channel=hook)
    assert dropped.state == Delivery.State.DROPPED
    assert "quiet hours" in dropped.answer
    assert not await DeliveryAttempt.objects.filter(delivery=dropped).aexists()
    assert webhook.bodies == []


async def test_a_channel_that_is_down_is_retried_with_backoff_then_given_up(fast_retries, start_sender):
    printer = await sync_to_async(PrinterFactory)(name="p")
    channel = await make_channel(f"json://127.0.0.1:{free_port()}/hook", name="down")
    await make_rule([channel], [EventKind.PRINTER_ERROR], digest_seconds=0)
    await sync_to_async(printer_error)(printer)
    await start_sender()

    await eventually(lambda: Delivery.objects.filter(state=Delivery.State.FAILED).aexists())
    delivery = await Delivery.objects.aget()
    tries = [t async for t in DeliveryAttempt.objects.filter(delivery=delivery).order_by("number")]
    assert [t.number for t in tries] == [1, 2, 3, 4]  # the first, then one per retry delay
    assert not any(t.ok for t in tries)
    assert all("Connection error" in t.answer for t in tries)
    assert delivery.attempts == 4 and "Connection error" in delivery.answer
    # Each retry waited at least its delay after the attempt before it.
    for before, after in zip(tries, tries[1:], strict=False):
        assert after.at - before.at >= dt.timedelta(seconds=fast_retries[before.number - 1])


async def test_a_channel_answering_an_error_is_retried_and_the_answer_recorded(webhook, start_sender):
    webhook.status = 500
    clock = Clock()
    printer = await sync_to_async(PrinterFactory)(name="p")
    channel = await make_channel(webhook.url)
    await make_rule([channel], [EventKind.PRINTER_ERROR], digest_seconds=0)
    await sync_to_async(printer_error)(printer)
    await start_sender(clock=clock)

    await eventually(lambda: Delivery.objects.filter(attempts=1, state=Delivery.State.PENDING).aexists())
    webhook.status = 200  # the receiver comes back: the retry, 30 s later, gets through
    clock.advance(seconds=31)
    await eventually(lambda: Delivery.objects.filter(state=Delivery.State.SENT).aexists())
    delivery = await Delivery.objects.aget()
    assert delivery.state == Delivery.State.SENT
    first = await DeliveryAttempt.objects.aget(delivery=delivery, number=1)
    assert not first.ok and "500" in first.answer


async def test_the_outbox_survives_a_sender_restart(webhook, start_sender):
    printers = await sync_to_async(lambda: [PrinterFactory(name=f"p{n}") for n in range(3)])()
    channel = await make_channel(webhook.url)
    await make_rule([channel], [EventKind.PRINTER_ERROR], digest_seconds=0)
    await sync_to_async(printer_error)(printers[0])  # recorded while no sender runs
    first = await start_sender()
    await eventually(lambda: webhook.bodies)
    await first.aclose()

    @sync_to_async
    def while_stopped() -> None:
        printer_error(printers[1])
        printer_error(printers[2])

    await while_stopped()
    await start_sender()  # a new process, as after a restart

    await eventually(lambda: len(webhook.bodies) >= 2)
    await eventually(lambda: _is(Delivery.objects.exclude(state=Delivery.State.SENT).acount(), 0))
    titles = sorted(webhook.titles())
    assert titles[0] == "Printer error: p0"
    assert sorted(t for t in titles[1:]) in (
        ["printfarm: 2 × Printer error"],  # routed together in one round
        ["Printer error: p1", "Printer error: p2"],
    )
    assert titles.count("Printer error: p0") == 1  # the one sent before the restart is not sent again


async def test_a_message_claimed_by_a_killed_sender_is_sent_after_its_claim_expires(webhook, start_sender):
    printer = await sync_to_async(PrinterFactory)(name="p")
    channel = await make_channel(webhook.url)
    await make_rule([channel], [EventKind.PRINTER_ERROR], digest_seconds=0)

    @sync_to_async
    def claimed_by_a_dead_sender() -> None:
        event = record(EventKind.PRINTER_ERROR, printer=printer, text="jammed")
        event.routed_at = timezone.now()
        event.save()
        delivery = Delivery.objects.create(
            channel=channel,
            channel_name=channel.name,
            state=Delivery.State.SENDING,
            send_at=timezone.now(),
            claimed_until=timezone.now() - dt.timedelta(seconds=1),
        )
        delivery.events.add(event)

    await claimed_by_a_dead_sender()
    await start_sender()
    await eventually(lambda: webhook.bodies)
    assert webhook.titles() == ["Printer error: p"]


async def test_a_poller_that_died_is_reported_by_the_next_one_to_start(webhook, start_sender):
    channel = await make_channel(webhook.url)
    await make_rule([channel], [EventKind.POLLER_STOPPED], digest_seconds=0)
    now = timezone.now()
    await PollerHeartbeat.objects.acreate(  # beat, never stopped cleanly: killed
        shard_index=0, shard_count=1, host="pi", pid=99, started_at=now, beat_at=now
    )
    await start_sender(poller_shard=(0, 1))

    await eventually(lambda: webhook.bodies)
    (body,) = webhook.bodies
    assert "stopped without shutting down" in body["message"]
    assert "pid 99" in body["message"]


async def test_a_poller_does_not_report_its_own_shard_as_stopped(webhook):
    channel = await make_channel(webhook.url)
    await make_rule([channel], [EventKind.POLLER_STOPPED], digest_seconds=0)
    now = timezone.now()
    await PollerHeartbeat.objects.acreate(  # the last run of this shard shut down cleanly
        shard_index=0, shard_count=1, host="pi", pid=99, started_at=now, beat_at=now, stopped_at=now
    )
    sender = Sender(interval=1, check_interval=1)
    sender._own_shard = (0, 1)
    await sender.run_once()
    assert not await Event.objects.aexists()
    await Sender(interval=1, check_interval=1).run_once()  # a watcher elsewhere reports it
    assert await Event.objects.filter(kind=EventKind.POLLER_STOPPED).aexists()


async def test_finished_messages_are_forgotten_after_a_month(webhook, start_sender):
    clock = Clock()
    printer = await sync_to_async(PrinterFactory)(name="p")
    channel = await make_channel(webhook.url)
    await make_rule([channel], [EventKind.PRINTER_ERROR], digest_seconds=0)
    await sync_to_async(printer_error)(printer)
    await start_sender(clock=clock)
    await eventually(lambda: Delivery.objects.filter(state=Delivery.State.SENT).aexists())

    assert await sync_to_async(prune)(clock.now + dt.timedelta(days=29)) == 0
    assert await sync_to_async(prune)(clock.now + dt.timedelta(days=31)) == 2  # the message, its event
    assert not await Delivery.objects.aexists() and not await Event.objects.aexists()
