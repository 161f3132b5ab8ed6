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

from printers.drivers import DRIVERS, Capability, Driver, DriverConfig, DriverError, ProbeResult, get_driver
from printers.drivers.base import address_shown
from printers.drivers.http import make_client
from printers.models import Printer, PrinterStatusRow
from printers.services import printer_command_record
from printers.state import State, shown_state

logger = logging.getLogger(__name__)

# A command waits for the printer's answer; Klipper runs a PAUSE macro before replying,
# so this is longer than a status poll, but short enough that a click never hangs.
COMMAND_TIMEOUT = 8.0
PROBE_TIMEOUT = 4.0
# Which states each command can work in (the state sets of printers.state): the one rule
# behind the card's buttons (commands_for_state) and the refusal of a command posted anyway
# (command_refusal). An emergency stop needs a printer that takes commands (State.REACHABLE):
# not an offline one, nor one still connecting (Klipper not ready, OctoPrint's serial port
# closed). Each command also needs its Capability in the printer's driver: a printer is never
# offered what its protocol can't carry (PrusaLink has no temperatures, Bambu no e-stop).


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # URL slug
    label: str  # button text
    done: str  # result line on success
    states: frozenset[State]  # where it can work; a card in any other state hides its button
    capability: Capability  # what the printer's driver must list to carry it
    style: str = ""  # button variant (css)
    confirm: str = ""  # hx-confirm question; blank = no confirmation
    hint: str = ""  # button tooltip
    hotend: float | None = None
    bed: float | None = None
    light: bool | None = None  # the light command: on or off

    async def run(self, driver: Driver) -> None:
        if self.name == "pause":
            await driver.pause()
        elif self.name == "resume":
            await driver.resume()
        elif self.name == "cancel":
            await driver.cancel()
        elif self.name == "emergency-stop":
            await driver.emergency_stop()
        elif self.light is not None:
            await driver.set_light(on=self.light)
        else:
            await driver.set_temperature(hotend=self.hotend, bed=self.bed)


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("pause", "Pause", "Pause sent", frozenset({State.PRINTING}), Capability.PAUSE),
        Command("resume", "Resume", "Resume sent", frozenset({State.PAUSED}), Capability.RESUME),
        Command(
            "cancel",
            "Cancel",
            "Cancel sent",
            State.RUNNING,
            Capability.CANCEL,
            style="warn",
            confirm="Cancel the current print?",
        ),
        Command(
            "preheat-pla",
            "PLA",
            "Preheating for PLA (200/60 °C)",
            State.FREE,
            Capability.TEMPERATURE,
            hint="Preheat for PLA: hotend 200 °C, bed 60 °C",
            hotend=200,
            bed=60,
        ),
        Command(
            "preheat-petg",
            "PETG",
            "Preheating for PETG (235/80 °C)",
            State.FREE,
            Capability.TEMPERATURE,
            hint="Preheat for PETG: hotend 235 °C, bed 80 °C",
            hotend=235,
            bed=80,
        ),
        Command(
            "preheat-abs",
            "ABS",
            "Preheating for ABS (245/100 °C)",
            State.FREE,
            Capability.TEMPERATURE,
            hint="Preheat for ABS: hotend 245 °C, bed 100 °C",
            hotend=245,
            bed=100,
        ),
        Command(
            "cooldown",
            "Cool down",
            "Cooling down (heaters off)",
            State.FREE,
            Capability.TEMPERATURE,
            hint="Turn both heaters off",
            hotend=0,
            bed=0,
        ),
        Command(
            "emergency-stop",
            "E-stop",
            "Emergency stop sent",
            State.REACHABLE,
            Capability.EMERGENCY_STOP,
            style="danger",
            confirm="Emergency stop? The printer halts at once and usually needs a firmware restart.",
        ),
        Command(
            "light-on",
            "Light on",
            "Light switched on",
            State.REACHABLE,
            Capability.LIGHT,
            hint="Switch the chamber light on",
            light=True,
        ),
        Command(
            "light-off",
            "Light off",
            "Light switched off",
            State.REACHABLE,
            Capability.LIGHT,
            hint="Switch the chamber light off",
            light=False,
        ),
    )
}


def capabilities_of(protocol: str) -> frozenset[Capability]:
    """What a printer of `protocol` can be told to do (nothing for a protocol this version
    has no driver for: a stale row can't be commanded)."""
    driver = DRIVERS.get(protocol)
    return driver.capabilities if driver is not None else frozenset()


def commands_for_state(state: State, protocol: str, *, light: bool | None = None) -> list[Command]:
    """The buttons a card shows for a printer of `protocol` in `state`, in COMMANDS order. A
    printer that reports its light gets the one switch that changes it, otherwise both."""
    offered = capabilities_of(protocol)
    return [
        c
        for c in COMMANDS.values()
        if state in c.states and c.capability in offered and (light is None or c.light != light)
    ]


def unsupported(command: Command, protocol: str) -> str:
    """Why a printer of `protocol` can't carry `command` at all; "" when it can."""
    if command.capability in capabilities_of(protocol):
        return ""
    driver = DRIVERS.get(protocol)
    kind = driver.label if driver is not None else f"“{protocol}”"
    return f"{kind} printers have no “{command.label}” command"


def command_refusal(command: Command, state: State, message: str = "", protocol: str = "") -> str:
    """Why `command` can't work on a printer of `protocol` in `state` (whose status says
    `message`), in the operator's words; "" when it can."""
    if protocol and (reason := unsupported(command, protocol)):
        return reason
    if state in command.states:
        return ""
    detail = f": {message}" if message else ""
    if state == State.OFFLINE:
        return f"The printer is offline{detail}"
    if state == State.CONNECTING:
        return f"The printer is still connecting{detail}"
    if state == State.MAINTENANCE:
        return "The printer is in maintenance (disabled)"
    if state == State.ERROR:
        return f"The printer is in error{detail}"
    if state in State.FREE:
        return "Nothing is printing"  # only the print commands want a print
    if command.name == "pause":
        return "The print is already paused"
    if command.name == "resume":
        return "The print is not paused"
    return "Not while a print is running"


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str
    probe: ProbeResult | None = None


def printer_config(printer: Printer) -> DriverConfig:
    """What a short-lived web-side driver needs to reach a stored printer."""
    return DriverConfig(
        base_url=printer.base_url,
        api_key=printer.api_key,
        username=printer.username,
        serial=printer.serial,
        certificate_pin=printer.certificate_pin,
    )


async def _call(
    *,
    protocol: str,
    config: DriverConfig,
    timeout: float,
    call: Callable[[Driver], Awaitable[ProbeResult | None]],
) -> ProbeResult | None:
    """Run one driver call; DriverError carries the message to show for anything that fails."""
    base_url = config.base_url
    client_timeout = httpx.Timeout(timeout, connect=min(timeout, 3.0))
    try:
        async with make_client(timeout=client_timeout, max_connections=4) as client:
            driver = get_driver(protocol, config, client)
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


async def connection_probe(*, protocol: str, config: DriverConfig, timeout: float = PROBE_TIMEOUT) -> Outcome:
    """What the "Test connection" button and the check after saving report. A Bambu printer's
    certificate is checked against `config.certificate_pin` but not pinned here (the poller pins)."""
    try:
        result = await _call(protocol=protocol, config=config, timeout=timeout, call=lambda d: d.probe())
    except DriverError as exc:
        return Outcome(ok=False, message=exc.message)
    assert result is not None
    return Outcome(
        ok=True,
        message=f"Connected: {result.firmware} — state {result.status.state.label}",
        probe=result,
    )


async def _refusal(printer: Printer, command: Command) -> str:
    """command_refusal for the printer's last recorded state (read now: the caller's copy may
    be older than the card the operator clicked)."""
    rows = PrinterStatusRow.objects.filter(printer_id=printer.pk).values_list("state", "message")
    row = await rows.afirst()
    stored, message = row if row is not None else (None, "")
    state = shown_state(enabled=printer.enabled, stored=stored)
    return command_refusal(command, state, message, printer.protocol)


async def command_send(
    *,
    printer: Printer,
    command: Command,
    by: object,
    via: str = "web",
    timeout: float = COMMAND_TIMEOUT,
    check_state: bool = True,
) -> Outcome:
    """Send one card command to a printer and record it as a PrinterEvent (kind command),
    audited when `by` is a user (printers.services.printer_command_record).

    A command the printer's recorded state can't use is refused unsent, in the words of
    command_refusal. `check_state=False` is for a caller that knows better than the last
    poll (a job record saying its print is under way before the poller has seen it start).
    """

    async def call(driver: Driver) -> None:
        await command.run(driver)

    refusal = await _refusal(printer, command) if check_state else unsupported(command, printer.protocol)
    if refusal:
        outcome = Outcome(ok=False, message=refusal)
        event = f"{command.label} not sent: {refusal}"
        logger.info("Command %s to printer %s not sent: %s", command.name, printer.pk, refusal)
    else:
        try:
            await _call(protocol=printer.protocol, config=printer_config(printer), timeout=timeout, call=call)
        except DriverError as exc:
            outcome = Outcome(ok=False, message=exc.message)
            event = f"{command.label} failed: {exc.message}"
            logger.info("Command %s to printer %s failed: %s", command.name, printer.pk, exc.message)
        else:
            outcome = Outcome(ok=True, message=command.done)
            event = command.done
    await sync_to_async(printer_command_record)(
        printer=printer, command=command.name, event=event, outcome=outcome.message, by=by, via=via
    )
    return outcome
