"""The async interface every printer protocol driver implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx

from printers.state import PrinterStatus

# (bytes sent so far, total bytes) -> None; called from the upload's task.
ProgressCallback = Callable[[int, int], None]


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
class DriverConfig:
    base_url: str  # e.g. http://10.0.0.7:7125 (no trailing slash needed)
    api_key: str = ""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What "test connection" found."""

    firmware: str  # e.g. "Moonraker v0.9.3 / Klipper v0.12.0"
    status: PrinterStatus


class Driver(ABC):
    protocol: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, config: DriverConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client
        self.base_url = config.base_url.rstrip("/")

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
    ) -> None:
        """Stream a local file to the printer (never read whole into memory)."""

    @abstractmethod
    async def start(self, remote_name: str) -> None:
        """Start printing a file already on the printer."""
