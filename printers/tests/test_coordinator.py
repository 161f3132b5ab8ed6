"""The poller: schedules, backoff, failures as statuses, run-time config, change-only writes."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import signal
from collections.abc import AsyncIterator

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs.management.commands.poll_printers import Command as PollCommand
from printers.coordinator import Coordinator, parse_shard
from printers.drivers import DRIVERS
from printers.models import Printer, PrinterStatusRow, TemperatureSample
from printers.polling import next_delay
from printers.services import printer_create, printer_delete, printer_update
from printers.simulator import SimulatedFarm, running_farm
from printers.state import State
from printfarm.testing import FakeClock, eventually

pytestmark = pytest.mark.django_db(transaction=True)


# -- pure functions -------------------------------------------------------------------------


def test_next_delay_is_the_interval_while_healthy():
    assert next_delay(0, 2.0, 60.0, random.Random(1)) == 2.0


def test_next_delay_doubles_per_failure_with_jitter_up_to_the_cap():
    rng = random.Random(7)
    for failures, base in [(1, 4.0), (2, 8.0), (3, 16.0), (4, 32.0)]:
        delays = [next_delay(failures, 2.0, 60.0, rng) for _ in range(200)]
        assert all(base * 0.9 <= d <= base * 1.1 for d in delays)
        assert max(delays) - min(delays) > base * 0.1  # jittered, not constant
    capped = [next_delay(n, 2.0, 60.0, rng) for n in (5, 6, 50, 10_000)]
    assert all(54.0 <= d <= 60.0 for d in capped)


def test_next_delay_never_goes_below_the_interval():
    assert next_delay(3, 5.0, 2.0, random.Random(1)) == 5.0


@pytest.mark.parametrize(("text", "shard"), [("0/1", (0, 1)), ("0/2", (0, 2)), ("3/4", (3, 4))])
def test_parse_shard_accepts_k_of_n(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["", "1", "2/2", "-1/2", "0/0", "a/b", "1/2/3", "1-2"])
def test_parse_shard_rejects_garbage(text):
    with pytest.raises(ValueError, match="K/N"):
        parse_shard(text)


# -- against the simulator ------------------------------------------------------------------


@pytest.fixture
async def farm() -> AsyncIterator[SimulatedFarm]:
    farm = SimulatedFarm(4, protocol="moonraker")
    await farm.start()
    yield farm
    await farm.stop()


async def add_printer(url: str, name: str, protocol: str = "moonraker") -> Printer:
    return await sync_to_async(printer_create)(fields={"name": name, "protocol": protocol, "base_url": url})


async def add_printers(farm: SimulatedFarm, count: int) -> list[Printer]:
    return [await add_printer(farm.printers[i].base_url, f"sim-{i}") for i in range(count)]


async def status_of(printer: Printer) -> PrinterStatusRow:
    return await PrinterStatusRow.objects.aget(pk=printer.pk)


def fast(clock: FakeClock | None = None, **kwargs) -> Coordinator:
    """A coordinator on short intervals; with a `clock`, its schedules run on that fake time."""
    options = {"interval": 0.1, "timeout": 0.5, "backoff_max": 0.4, "flush_interval": 0.05}
    if clock is not None:
        options |= {"clock": clock, "sleep": clock.sleep}
    return Coordinator(**(options | kwargs))


async def test_blackholed_printer_does_not_delay_the_others(farm):
    printers = await add_printers(farm, 3)
    farm.set_fault(0, "blackhole")
    holed, healthy = printers[0], printers[1:]
    clock = FakeClock()
    # The schedules run on fake time, the black hole's request on real time (its 2 s timeout):
    # the healthy printers' polls follow each other as fast as they are answered, so ten of
    # them fit well inside the one request the black hole holds, however loaded the machine.
    async with fast(clock=clock, timeout=2.0, backoff_max=2.0) as coordinator:
        hole = coordinator.printers[holed.pk]
        await eventually(lambda: all(coordinator.printers[p.pk].polls >= 10 for p in healthy), clock=clock)
        assert hole.polls == 0  # still waiting for its first answer: it held nobody up
        await eventually(lambda: hole.failures >= 1, clock=clock)
        assert all(coordinator.failures(p.pk) == 0 for p in healthy)
    row = await status_of(holed)
    assert row.state == State.OFFLINE
    assert "No answer" in row.message
    assert {(await status_of(p)).state for p in healthy} == {State.IDLE}


async def test_offline_printer_backs_off_then_recovers_at_once(farm):
    (printer,) = await add_printers(farm, 1)
    farm.set_fault(0, "offline")
    clock = FakeClock()  # the clock stands still between a poll and the look at its schedule
    async with fast(clock=clock, backoff_max=0.8) as coordinator:
        poller = coordinator.printers[printer.pk]
        await eventually(lambda: poller.failures >= 3, clock=clock)
        # Three failures at a 0.1 s interval: the next poll is 0.8 s (less 10 % jitter) away.
        assert 0.72 <= poller.next_at - clock() <= 0.8
        await eventually(lambda: coordinator.pending == {} and coordinator.flushes >= 1, clock=clock)
        row = await status_of(printer)
        assert row.state == State.OFFLINE
        assert "refused" in row.message
        assert row.last_seen is None

        farm.set_fault(0, None)
        # At the next poll after the fault cleared, and on the normal interval again right after.
        await eventually(lambda: poller.failures == 0, clock=clock)
        polls = poller.polls
        assert poller.next_at - clock() <= coordinator.interval + 1e-9  # float rounding
        await eventually(lambda: poller.polls >= polls + 3, clock=clock)
        await eventually(
            lambda: PrinterStatusRow.objects.filter(pk=printer.pk, state=State.IDLE).aexists(), clock=clock
        )
    row = await status_of(printer)
    assert row.message == ""
    assert row.last_seen is not None


async def test_printers_added_edited_and_removed_while_running(farm):
    (first,) = await add_printers(farm, 1)
    async with fast(reload_interval=3600) as coordinator:
        assert set(coordinator.printers) == {first.pk}

        second = await add_printer(farm.printers[1].base_url, "added-later")
        await coordinator.reload()
        assert set(coordinator.printers) == {first.pk, second.pk}
        await eventually(lambda: coordinator.printers[second.pk].polls >= 1)
        await eventually(lambda: PrinterStatusRow.objects.filter(pk=second.pk, state=State.IDLE).aexists())

        # Renaming doesn't disturb the poll; a new address restarts it.
        old = coordinator.printers[second.pk]
        await sync_to_async(printer_update)(printer=second, fields={"name": "renamed"})
        await coordinator.reload()
        assert coordinator.printers[second.pk] is old
        assert old.name == "renamed"
        await sync_to_async(printer_update)(printer=second, fields={"base_url": farm.printers[2].base_url})
        await coordinator.reload()
        new = coordinator.printers[second.pk]
        assert new is not old
        assert old.task.cancelled()
        assert new.config.base_url == farm.printers[2].base_url
        await eventually(lambda: new.polls >= 1)

        await sync_to_async(printer_update)(printer=second, fields={"enabled": False})
        await coordinator.reload()
        assert second.pk not in coordinator.printers
        assert new.task.cancelled()
        # The disabled printer keeps the "maintenance" status the web wrote, also through a
        # flush (which waits for one under way).
        await coordinator.flush()
        assert (await status_of(second)).state == State.MAINTENANCE

        task = coordinator.printers[first.pk].task
        await sync_to_async(printer_delete)(printer=first)
        await coordinator.reload()
        assert coordinator.printers == {}
        assert task.cancelled()


async def test_reload_runs_by_itself(farm):
    async with fast(reload_interval=0.1) as coordinator:
        assert coordinator.printers == {}
        (printer,) = await add_printers(farm, 1)
        await eventually(lambda: printer.pk in coordinator.printers)
        await eventually(lambda: PrinterStatusRow.objects.filter(pk=printer.pk, state=State.IDLE).aexists())


async def test_disabled_and_reenabled_between_reloads_is_written_again(farm):
    (printer,) = await add_printers(farm, 1)
    async with fast(reload_interval=3600) as coordinator:  # reloads only when asked
        await eventually(lambda: PrinterStatusRow.objects.filter(pk=printer.pk, state=State.IDLE).aexists())
        stored = await Printer.objects.aget(pk=printer.pk)
        await sync_to_async(printer_update)(printer=stored, fields={"enabled": False})
        await sync_to_async(printer_update)(printer=stored, fields={"enabled": True})
        assert (await status_of(printer)).state == State.CONNECTING  # what the web wrote
        await coordinator.reload()
        # The reading equals what the poller last wrote, but the row was rewritten meanwhile.
        await eventually(lambda: PrinterStatusRow.objects.filter(pk=printer.pk, state=State.IDLE).aexists())


async def test_firmware_is_learned_once_and_stored(farm):
    (printer,) = await add_printers(farm, 1)
    async with fast() as coordinator:
        await eventually(
            lambda: PrinterStatusRow.objects.filter(pk=printer.pk, firmware__contains="Moonraker").aexists()
        )
        polls = farm.stats()["requests"]
        await eventually(lambda: coordinator.polls >= 10)
        # Probing costs a few requests once; afterwards one request per poll.
        assert farm.stats()["requests"] - polls <= coordinator.polls


async def test_nothing_is_written_while_nothing_changes(farm):
    printers = await add_printers(farm, 2)
    async with fast(sample_interval=0.3) as coordinator:
        await eventually(lambda: coordinator.writes == 2)  # "waiting for the first poll" -> idle
        revisions = [(await status_of(p)).revision for p in printers]
        polls = coordinator.polls
        await eventually(lambda: coordinator.polls >= polls + 20)
        await eventually(lambda: coordinator.flushes >= 3)  # temperature samples only
        assert coordinator.writes == 2
        assert [(await status_of(p)).revision for p in printers] == revisions
        # Temperature history is sampled on its own, slower clock.
        await eventually(lambda: TemperatureSample.objects.filter(printer=printers[0]).aexists())

    # A restarted poller starts from what is stored instead of rewriting every row.
    async with fast() as coordinator:
        await eventually(lambda: coordinator.polls >= 10)
    assert coordinator.writes == 0  # the final flush at exit included
    assert [(await status_of(p)).revision for p in printers] == revisions


async def test_driver_failures_become_statuses_and_polling_goes_on(farm, monkeypatch):
    printers = await add_printers(farm, 3)
    # A value no driver is registered for (a stale row, or a module not registered): every
    # protocol has its driver now, so one is unregistered for the test.
    monkeypatch.delitem(DRIVERS, "prusalink")
    unknown = await add_printer("http://127.0.0.1:9", "unknown-protocol", protocol="prusalink")
    farm.set_fault(0, "http500")
    farm.set_fault(1, "malformed")
    async with fast() as coordinator:
        await eventually(lambda: all(coordinator.printers[p.pk].polls >= 3 for p in [*printers, unknown]))
        await eventually(lambda: coordinator.pending == {})
        assert all(not task.done() for task in coordinator._background)
    http500, malformed, healthy, unknown_row = [await status_of(p) for p in [*printers, unknown]]
    assert (http500.state, malformed.state) == (State.ERROR, State.ERROR)
    assert "HTTP 500" in http500.message
    assert "invalid JSON" in malformed.message
    assert healthy.state == State.IDLE
    assert unknown_row.state == State.ERROR
    assert "Unknown printer protocol" in unknown_row.message


class BrokenTransport(httpx.AsyncBaseTransport):
    """A transport with a bug in it: raises what no driver expects."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")


async def test_unexpected_exception_becomes_an_error_status(farm):
    (printer,) = await add_printers(farm, 1)
    async with httpx.AsyncClient(transport=BrokenTransport()) as client, fast(client=client) as coordinator:
        await eventually(lambda: coordinator.printers[printer.pk].polls >= 2)
        assert coordinator.errors >= 2
    row = await status_of(printer)
    assert row.state == State.ERROR
    assert row.message == "Unexpected RuntimeError: boom"


async def test_sigterm_drains_and_stops_the_command(farm):
    (printer,) = await add_printers(farm, 1)
    coordinator = fast(flush_interval=3600)  # only the final flush writes
    task = asyncio.create_task(PollCommand()._run(coordinator))
    await eventually(lambda: coordinator.polls >= 1)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 5)
    gc.unfreeze()  # the command froze the test process's heap
    assert coordinator.client.is_closed
    assert all(p.task.done() for p in coordinator.printers.values())
    assert (await status_of(printer)).state == State.IDLE


# -- the command ----------------------------------------------------------------------------


def test_poll_printers_once_writes_statuses():
    with running_farm(3, protocol="mixed") as sim:
        sim.set_fault(2, "offline")
        printers = [
            printer_create(fields={"name": p.name, "protocol": p.protocol, "base_url": p.base_url})
            for p in sim.printers
        ]
        call_command("poll_printers", "--once", "--timeout", "1")
    states = [PrinterStatusRow.objects.get(pk=p.pk).state for p in printers]
    assert states == [State.IDLE, State.IDLE, State.OFFLINE]


def test_poll_printers_shard_polls_only_its_share():
    with running_farm(4, protocol="moonraker") as sim:
        printers = [
            printer_create(fields={"name": p.name, "protocol": p.protocol, "base_url": p.base_url})
            for p in sim.printers
        ]
        call_command("poll_printers", "--once", "--shard", "1/2")
    polled = {p.pk for p in printers if PrinterStatusRow.objects.get(pk=p.pk).state == State.IDLE}
    assert polled == {p.pk for p in printers if p.pk % 2 == 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "2/2"], "shard must be K/N"),
        (["--shard", "half"], "shard must be K/N"),
        (["--interval", "0"], "greater than 0"),
        (["--concurrency", "x"], "not a number"),
    ],
)
def test_poll_printers_rejects_bad_options(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("poll_printers", "--once", *args)
