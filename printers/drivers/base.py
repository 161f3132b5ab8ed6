"""The async interface every printer protocol driver implements."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

import httpx

from printers.state import PrinterStatus

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")

# (bytes sent so far, total bytes) -> None; called from the upload's task.
ProgressCallback = Callable[[int, int], None]


def address_shown(url: str) -> str:
    """A stored address fit to show: without the user name and password an old row may hold
    (the forms refuse them now; messages built from an address reach every role)."""
    return _USERINFO.sub(r"\1", url)


class Capability(StrEnum):
    """What a printer can be told to do beyond printing a file: a driver lists the ones its
    protocol carries, and a card, the API and the command view offer only those."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    TEMPERATURE = "temperature"  # set hotend/bed targets (preheat, cool down)
    EMERGENCY_STOP = "emergency-stop"  # halt at once (M112 / Klipper's emergency stop)
    LIGHT = "light"  # chamber or work light on/off


class DriverError(Exception):
    """A printer call failed. `permanent` means retrying will not help (bad URL, refused file)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class DriverAuthError(DriverError):
    """The printer refused our credentials (wrong or missing API key)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class PrinterBusy(DriverError):
    """The printer refused a command because of its current state (409 / Klippy error)."""


@dataclass(frozen=True, slots=True)
class PrintRecord:
    """The printer's own record of one print (Moonraker's job history)."""

    file: str
    # Moonraker's vocabulary: completed, cancelled, error, klippy_shutdown, klippy_disconnect,
    # interrupted (Moonraker restarted mid-print), in_progress.
    outcome: str
    print_seconds: int | None = None

    @property
    def finished(self) -> bool:
        return self.outcome != "in_progress"


@dataclass(frozen=True, slots=True)
class PrintOptions:
    """What starting a print needs beyond its file name (Bambu's `project_file`): the plate of
    a 3MF, and the tray that feeds each of the file's filament slots."""

    plate: int | None = None  # 1-based, as in Metadata/plate_<n>.gcode
    # Index: the file's filament slot - 1; value: a printers.state.Tray id, -1 for a slot unused.
    trays: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DriverConfig:
    base_url: str  # e.g. http://10.0.0.7:7125 (no trailing slash needed)
    api_key: str = ""
    username: str = ""  # PrusaLink: set = HTTP digest with api_key as the password
    serial: str = ""  # Bambu Lab: names the MQTT topics and the printer's certificate
    certificate_pin: str = ""  # SHA-256 hex of the printer's TLS certificate; blank = not pinned yet
    # Called with a certificate's SHA-256 the first time a printer without a pin is reached (the
    # poller stores it); None = nothing records it (the web's short-lived connections).
    on_certificate: Callable[[str], Awaitable[None]] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What "test connection" found."""

    firmware: str  # e.g. "Moonraker v0.9.3 / Klipper v0.12.0"
    status: PrinterStatus


class Driver(ABC):
    protocol: ClassVar[str]
    label: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.PAUSE,
            Capability.RESUME,
            Capability.CANCEL,
            Capability.TEMPERATURE,
            Capability.EMERGENCY_STOP,
        }
    )
    # The shortest time between two polls this protocol's printers stand (None: the farm's
    # interval); PrusaLink's Buddy serves three connections for every client on the network.
    poll_interval: ClassVar[float | None] = None

    def __init__(self, config: DriverConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client
        # Without user:password: the forms refuse them now, an older row may hold them, every
        # message built from the address reaches every role, and the transport can't send them
        # beside the API key anyway.
        self.base_url = address_shown(config.base_url.rstrip("/"))

    @abstractmethod
    async def fetch_status(self) -> PrinterStatus:
        """One reading. Raises DriverError (never httpx errors) when the printer can't be read;
        firmware-not-ready is a status (State.CONNECTING), not an error."""

    @abstractmethod
    async def probe(self) -> ProbeResult:
        """Identify the printer for "test connection"."""

    @abstractmethod
    async def pause(self) -> None: ...

    @abstractmethod
    async def resume(self) -> None: ...

    @abstractmethod
    async def cancel(self) -> None: ...

    @abstractmethod
    async def emergency_stop(self) -> None: ...

    @abstractmethod
    async def set_temperature(self, *, hotend: float | None = None, bed: float | None = None) -> None:
        """Set targets; None leaves that heater alone, 0 turns it off."""

    @abstractmethod
    async def upload(
        self,
        path: Path,
        *,
        remote_name: str,
        start: bool = False,
        progress: ProgressCallback | None = None,
        options: PrintOptions | None = None,
    ) -> None:
        """Stream a local file to the printer (never read whole into memory)."""

    @abstractmethod
    async def start(self, remote_name: str, options: PrintOptions | None = None) -> None:
        """Start printing a file already on the printer. Returns only when the printer's reply
        says the print was taken; an unreadable reply raises (the caller then asks the status)."""

    async def set_light(self, *, on: bool) -> None:
        """Switch the chamber/work light (drivers listing Capability.LIGHT)."""
        raise DriverError("This printer has no light printfarm can switch", permanent=True)

    async def print_history(self, remote_name: str) -> PrintRecord | None:
        """The printer's record of the newest print of `remote_name`, or None when it keeps no
        history (OctoPrint) or has no entry for that file."""
        return None


class PushDriver(Driver):
    """A driver whose printer pushes its status over a connection kept open (Bambu's MQTT):
    the coordinator runs `watch()` per printer instead of polling `fetch_status()`."""

    @abstractmethod
    def watch(self) -> AsyncGenerator[PrinterStatus, None]:
        """Connect, then yield a status whenever the printer reports one, until the connection
        fails: then raise DriverError (never return). Cancelling the iteration closes it."""

    async def fetch_status(self) -> PrinterStatus:
        """One reading: connect, take the first full status, close."""
        stream = self.watch()
        try:
            return await anext(stream)
        except StopAsyncIteration:
            raise DriverError("The printer closed the connection before reporting") from None
        finally:
            await stream.aclose()
