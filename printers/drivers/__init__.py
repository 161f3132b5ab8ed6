"""The protocol drivers, one module each, behind a registry keyed by `Printer.Protocol` values.

A new protocol is a module with a `Driver` subclass (its `protocol` and `label` class
attributes) added to `_DRIVER_CLASSES`.
"""

from __future__ import annotations

import os

import httpx

from printers.drivers.bambu import BambuDriver
from printers.drivers.base import (
    Capability,
    Driver,
    DriverAuthError,
    DriverConfig,
    DriverError,
    PrinterBusy,
    ProbeResult,
    ProgressCallback,
    PushDriver,
)
from printers.drivers.moonraker import MoonrakerDriver
from printers.drivers.moonraker_ws import MoonrakerSocketDriver
from printers.drivers.octoprint import OctoPrintDriver
from printers.drivers.prusalink import PrusaLinkDriver

__all__ = [
    "DRIVERS",
    "PROTOCOLS",
    "Capability",
    "Driver",
    "DriverAuthError",
    "DriverConfig",
    "DriverError",
    "PrinterBusy",
    "ProbeResult",
    "ProgressCallback",
    "PushDriver",
    "UnknownProtocol",
    "get_driver",
]

_DRIVER_CLASSES: tuple[type[Driver], ...] = (MoonrakerDriver, OctoPrintDriver, BambuDriver, PrusaLinkDriver)

DRIVERS: dict[str, type[Driver]] = {cls.protocol: cls for cls in _DRIVER_CLASSES}

# (value, label) pairs, in the shape of a Django `choices`.
PROTOCOLS: list[tuple[str, str]] = [(cls.protocol, cls.label) for cls in _DRIVER_CLASSES]


class UnknownProtocol(DriverError, LookupError):
    """No driver for this protocol value (a stale row, or a module not registered)."""

    def __init__(self, protocol: str) -> None:
        super().__init__(
            f"Unknown printer protocol {protocol!r} (known: {', '.join(DRIVERS)})", permanent=True
        )


def moonraker_transport() -> str:
    """ "websocket" or "poll": how Moonraker printers report (PRINTFARM_MOONRAKER_TRANSPORT)."""
    from django.conf import settings

    if settings.configured:
        return str(getattr(settings, "PRINTFARM_MOONRAKER_TRANSPORT", "websocket"))
    return os.environ.get("PRINTFARM_MOONRAKER_TRANSPORT", "websocket").strip().lower()


def get_driver(
    protocol: str, config: DriverConfig, client: httpx.AsyncClient, *, transport: str | None = None
) -> Driver:
    """`transport` ("poll" or "websocket") overrides the setting for Moonraker printers."""
    try:
        cls = DRIVERS[protocol]
    except KeyError:
        raise UnknownProtocol(protocol) from None
    if cls is MoonrakerDriver and (transport or moonraker_transport()) == "websocket":
        cls = MoonrakerSocketDriver
    return cls(config, client)
