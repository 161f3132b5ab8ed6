"""The web side of talking to a printer: card commands and "test connection".

Each call builds the printer's driver on a short-lived httpx client of its own. Commands
and probes are rare, human-paced requests; a per-request client costs one TCP handshake
and in exchange there is no process-wide client bound to one event loop to manage (tests
and async_to_sync run views on loops that come and go). The poller keeps its own shared
client for the high-frequency traffic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from asgiref.sync import sync_to_async

from printers.drivers import Driver, DriverConfig, DriverError, ProbeResult, get_driver
from printers.drivers.base import address_shown
from printers.drivers.http import make_client
from printers.models import Printer, PrinterEvent
from printers.services import printer_event_record
from printers.state import State

logger = logging.getLogger(__name__)

# A command waits for the printer's answer; Klipper runs a PAUSE macro before replying,
# so this is longer than a status poll, but short enough that a click never hangs.
COMMAND_TIMEOUT = 8.0
PROBE_TIMEOUT = 4.0
# Printing states where the head is moving: pause/cancel make sense, preheating does not.
_RUNNING = (State.PRINTING, State.PAUSED)


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # URL slug
    label: str  # button text
    done: str  # result line on success
    style: str = ""  # button variant (css)
    confirm: str = ""  # hx-confirm question; blank = no confirmation
    hint: str = ""  # button tooltip
    hotend: float | None = None
    bed: float | None = None

    async def run(self, driver: Driver) -> None:
        if self.name == "pause":
            await driver.pause()
        elif self.name == "resume":
            await driver.resume()
        elif self.name == "cancel":
            await driver.cancel()
        elif self.name == "emergency-stop":
            await driver.emergency_stop()
        else:
            await driver.set_temperature(hotend=self.hotend, bed=self.bed)


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("pause", "Pause", "Pause sent"),
        Command("resume", "Resume", "Resume sent"),
        Command("cancel", "Cancel", "Cancel sent", style="warn", confirm="Cancel the current print?"),
        Command(
            "emergency-stop",
            "E-stop",
            "Emergency stop sent",
            style="danger",
            confirm="Emergency stop? The printer halts at once and usually needs a firmware restart.",
        ),
        Command(
            "preheat-pla",
            "PLA",
            "Preheating for PLA (200/60 °C)",
            hint="Preheat for PLA: hotend 200 °C, bed 60 °C",
            hotend=200,
            bed=60,
        ),
        Command(
            "preheat-petg",
            "PETG",
            "Preheating for PETG (235/80 °C)",
            hint="Preheat for PETG: hotend 235 °C, bed 80 °C",
            hotend=235,
            bed=80,
        ),
        Command(
            "preheat-abs",
            "ABS",
            "Preheating for ABS (245/100 °C)",
            hint="Preheat for ABS: hotend 245 °C, bed 100 °C",
            hotend=245,
            bed=100,
        ),
        Command(
            "cooldown",
            "Cool down",
            "Cooling down (heaters off)",
            hint="Turn both heaters off",
            hotend=0,
            bed=0,
        ),
    )
}


def commands_for_state(state: str) -> list[Command]:
    """The buttons a card shows for a printer in `state`."""
    names: list[str] = []
    if state == State.PRINTING:
        names.append("pause")
    if state == State.PAUSED:
        names.append("resume")
    if state in _RUNNING:
        names.append("cancel")
    if state in (State.IDLE, State.FINISHED):
        names += ["preheat-pla", "preheat-petg", "preheat-abs", "cooldown"]
    if state != State.OFFLINE:
        names.append("emergency-stop")
    return [COMMANDS[n] for n in names]


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str
    probe: ProbeResult | None = None


async def _call(
    *,
    protocol: str,
    base_url: str,
    api_key: str,
    timeout: float,
    call: Callable[[Driver], Awaitable[ProbeResult | None]],
) -> ProbeResult | None:
    """Run one driver call; DriverError carries the message to show for anything that fails."""
    client_timeout = httpx.Timeout(timeout, connect=min(timeout, 3.0))
    try:
        async with make_client(timeout=client_timeout, max_connections=4) as client:
            driver = get_driver(protocol, DriverConfig(base_url=base_url, api_key=api_key), client)
            # The driver may pick longer per-request timeouts; this bounds the whole call.
            async with asyncio.timeout(timeout + 1):
                return await call(driver)
    except DriverError:
        raise
    except TimeoutError as exc:
        raise DriverError(f"No answer from {address_shown(base_url)} within {timeout:g} s") from exc
    except Exception as exc:
        # A driver bug must not become a 500 on a button click; keep the detail in the log.
        logger.exception("Unexpected error talking to %s", base_url)
        raise DriverError(f"Unexpected error talking to {address_shown(base_url)}: {exc}") from exc


async def connection_probe(
    *, protocol: str, base_url: str, api_key: str, timeout: float = PROBE_TIMEOUT
) -> Outcome:
    """What the "Test connection" button and the check after saving report."""
    try:
        result = await _call(
            protocol=protocol,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            call=lambda driver: driver.probe(),
        )
    except DriverError as exc:
        return Outcome(ok=False, message=exc.message)
    assert result is not None
    return Outcome(
        ok=True,
        message=f"Connected: {result.firmware} — state {result.status.state.label}",
        probe=result,
    )


async def command_send(
    *, printer: Printer, command: Command, by: str, timeout: float = COMMAND_TIMEOUT
) -> Outcome:
    """Send one card command to a printer and record it as a PrinterEvent (kind command)."""

    async def call(driver: Driver) -> None:
        await command.run(driver)

    try:
        await _call(
            protocol=printer.protocol,
            base_url=printer.base_url,
            api_key=printer.api_key,
            timeout=timeout,
            call=call,
        )
    except DriverError as exc:
        outcome = Outcome(ok=False, message=exc.message)
        event = f"{command.label} failed: {exc.message}"
        logger.info("Command %s to printer %s failed: %s", command.name, printer.pk, exc.message)
    else:
        outcome = Outcome(ok=True, message=command.done)
        event = command.done
    await sync_to_async(printer_event_record)(
        printer=printer, kind=PrinterEvent.Kind.COMMAND, message=event, by=by
    )
    return outcome
