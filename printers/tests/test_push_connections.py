"""The coordinator's push connections (printers whose driver is a PushDriver): statuses written
as they arrive, failures as statuses, reconnects, run-time edits, certificate pins, shutdown.

Driven by a scripted push driver: a real PushDriver whose "printer" is a queue the test fills.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
from asgiref.sync import sync_to_async

from printers.coordinator import Coordinator
from printers.drivers import DRIVERS
from printers.drivers.base import DriverError, PrintOptions, ProbeResult, ProgressCallback, PushDriver
from printers.models import Printer, PrinterStatusRow
from printers.services import printer_create, printer_delete, printer_update
from printers.state import PrinterStatus, State, Tray
from printfarm.testing import FakeClock, eventually

pytestmark = pytest.mark.django_db(transaction=True)

PIN = "ab" * 32


@dataclass
class ScriptedPrinter:
    """What one scripted printer will push, and what the coordinator did with its connection."""

    pushes: asyncio.Queue[PrinterStatus | DriverError] = field(default_factory=asyncio.Queue)
    refuse: DriverError | None = None  # every connect fails with this while set
    connects: int = 0
    open: int = 0  # connections open now
    pins: list[str] = field(default_factory=list)  # certificate pins each connection was given


class ScriptedPushDriver(PushDriver):
    protocol: ClassVar[str] = "scripted"
    label: ClassVar[str] = "Scripted push printer (tests)"
    printers: ClassVar[dict[str, ScriptedPrinter]] = {}

    async def watch(self) -> AsyncGenerator[PrinterStatus, None]:
        printer = self.printers[self.config.base_url]
        printer.connects += 1
        printer.pins.append(self.config.certificate_pin)
        if printer.refuse is not None:
            raise printer.refuse
        if not self.config.certificate_pin and self.config.on_certificate is not None:
            await self.config.on_certificate(PIN)
        printer.open += 1
        try:
            while True:
                pushed = await printer.pushes.get()
                if isinstance(pushed, DriverError):
                    raise pushed
                yield pushed
        finally:
            printer.open -= 1

    async def probe(self) -> ProbeResult:
        raise DriverError("not scripted")

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def cancel(self) -> None: ...

    async def emergency_stop(self) -> None: ...

    async def set_temperature(self, *, hotend: float | None = None, bed: float | None = None) -> None: ...

    async def upload(
        self,
        path: Path,
        *,
        remote_name: str,
        start: bool = False,
        progress: ProgressCallback | None = None,
        options: PrintOptions | None = None,
    ) -> None: ...

    async def start(self, remote_name: str, options: PrintOptions | None = None) -> None: ...


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> dict[str, ScriptedPrinter]:
    monkeypatch.setitem(DRIVERS, ScriptedPushDriver.protocol, ScriptedPushDriver)
    monkeypatch.setattr(ScriptedPushDriver, "printers", {})
    return ScriptedPushDriver.printers


async def add(scripted: dict[str, ScriptedPrinter], name: str) -> tuple[Printer, ScriptedPrinter]:
    url = f"scripted://{name}"
    scripted[url] = ScriptedPrinter()
    printer = await sync_to_async(printer_create)(
        fields={"name": name, "protocol": ScriptedPushDriver.protocol, "base_url": url}
    )
    return printer, scripted[url]


def coordinator(clock: FakeClock) -> Coordinator:
    return Coordinator(
        interval=1.0, timeout=1.0, backoff_max=4.0, clock=clock, sleep=clock.sleep, flush_interval=0.1
    )


async def row(printer: Printer) -> PrinterStatusRow:
    return await PrinterStatusRow.objects.aget(pk=printer.pk)


async def shows(printer: Printer, state: State, message: str = "") -> bool:
    current = await row(printer)
    return current.state == state and message in current.message


async def test_pushed_statuses_are_written_as_they_arrive(scripted) -> None:
    clock = FakeClock()
    printer, script = await add(scripted, "x1")
    tray = Tray(id=1, type="PETG", colour="#FFFFFF", remaining=80, active=True)
    async with coordinator(clock) as poller:
        await script.pushes.put(PrinterStatus(state=State.IDLE, bed_actual=21.0))
        await eventually(lambda: shows(printer, State.IDLE), clock=clock)
        pushed = PrinterStatus(
            state=State.PRINTING, progress=5.0, chamber_actual=30.0, layer=3, layer_count=90, trays=(tray,)
        )
        await script.pushes.put(pushed)
        await eventually(lambda: shows(printer, State.PRINTING), clock=clock)
        writes = poller.writes
        await script.pushes.put(pushed)  # the same reading again: nothing to write
        await eventually(lambda: script.pushes.empty(), clock=clock)
        await poller.flush()
        assert poller.writes == writes
    stored = await row(printer)
    assert (stored.chamber_actual, stored.layer, stored.layer_count) == (30.0, 3, 90)
    assert stored.trays == [{"id": 1, "type": "PETG", "colour": "#FFFFFF", "remaining": 80, "active": True}]
    assert script.connects == 1


async def test_a_lost_connection_shows_and_is_reopened_with_backoff(scripted) -> None:
    clock = FakeClock()
    printer, script = await add(scripted, "p1")
    async with coordinator(clock) as poller:
        await script.pushes.put(PrinterStatus(state=State.IDLE))
        await eventually(lambda: shows(printer, State.IDLE), clock=clock)
        lost = DriverError("Lost the connection to the printer: reset")
        lost.__cause__ = ConnectionResetError()
        await script.pushes.put(lost)
        await eventually(lambda: shows(printer, State.OFFLINE, "Lost the connection"), clock=clock)
        assert poller.failures(printer.pk) == 1
        await script.pushes.put(PrinterStatus(state=State.PRINTING))
        await eventually(lambda: shows(printer, State.PRINTING), clock=clock)
        assert (script.connects, poller.failures(printer.pk)) == (2, 0)


async def test_a_refused_connection_is_an_error_status_and_retries_later_and_later(scripted) -> None:
    clock = FakeClock()
    printer, script = await add(scripted, "wrong-code")
    script.refuse = DriverError("The printer refused the LAN access code", permanent=True)
    async with coordinator(clock) as poller:
        await eventually(lambda: shows(printer, State.ERROR, "refused the LAN access code"), clock=clock)
        started = clock()
        await eventually(lambda: script.connects >= 5, clock=clock)
        # 1-30 s apart, growing: four waits of ~2, 4, 8, 16 s (+-10 %).
        assert 26 <= clock() - started <= 33
        assert poller.failures(printer.pk) >= 5


async def test_a_silent_printer_does_not_delay_another(scripted) -> None:
    clock = FakeClock()
    silent, _ = await add(scripted, "silent")
    chatty, script = await add(scripted, "chatty")
    async with coordinator(clock):
        await script.pushes.put(PrinterStatus(state=State.PRINTING))
        await eventually(lambda: shows(chatty, State.PRINTING), clock=clock)
    assert (await row(silent)).state == State.CONNECTING


async def test_certificate_pinned_on_first_use_is_stored_without_reconnecting(scripted) -> None:
    clock = FakeClock()
    printer, script = await add(scripted, "x1c")
    async with coordinator(clock) as poller:
        await eventually(lambda: script.open == 1, clock=clock)
        await eventually(
            lambda: Printer.objects.filter(pk=printer.pk, certificate_pin=PIN).aexists(), clock=clock
        )
        updated_at = (await Printer.objects.aget(pk=printer.pk)).updated_at
        await poller.reload()
        assert (script.connects, script.pins) == (1, [""])
        # An operator clears the pin (a replaced printer): the next connection pins afresh.
        await sync_to_async(printer_update)(printer=printer, fields={"certificate_pin": ""})
        await poller.reload()
        await eventually(lambda: script.connects == 2, clock=clock)
        assert script.pins == ["", ""]
    assert updated_at == printer.updated_at  # pinning is not an edit


async def test_edited_and_removed_printers_close_their_connections(scripted) -> None:
    clock = FakeClock()
    printer, script = await add(scripted, "a")
    other, other_script = await add(scripted, "b")
    scripted["scripted://moved"] = moved = ScriptedPrinter()
    async with coordinator(clock) as poller:
        await eventually(lambda: script.open == other_script.open == 1, clock=clock)
        await sync_to_async(printer_update)(printer=printer, fields={"base_url": "scripted://moved"})
        await sync_to_async(printer_delete)(printer=other)
        await poller.reload()
        assert (script.open, other_script.open) == (0, 0)
        await eventually(lambda: moved.open == 1, clock=clock)
    assert moved.open == 0  # shutdown closes every connection


async def test_a_restarted_poller_does_not_rewrite_an_unchanged_reading_with_trays(scripted) -> None:
    clock = FakeClock()
    printer, script = await add(scripted, "ams")
    tray = Tray(id=4, type="PLA", colour="#000000", remaining=None, active=False)
    reading = PrinterStatus(state=State.IDLE, chamber_actual=25.0, trays=(tray,))
    async with coordinator(clock):
        await script.pushes.put(reading)
        await eventually(lambda: shows(printer, State.IDLE), clock=clock)
    async with coordinator(clock) as restarted:
        await script.pushes.put(reading)
        await eventually(lambda: script.pushes.empty(), clock=clock)
        await restarted.flush()
        assert restarted.writes == 0
