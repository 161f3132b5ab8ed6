"""The protocol drivers, one module each, behind a registry keyed by `Printer.Protocol` values.

A new protocol is a module with a `Driver` subclass (its `protocol` and `label` class
attributes) added to `_DRIVER_CLASSES`.
"""

from __future__ import annotations

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
from printers.drivers.octoprint import OctoPrintDriver

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

_DRIVER_CLASSES: tuple[type[Driver], ...] = (MoonrakerDriver, OctoPrintDriver, BambuDriver)

DRIVERS: dict[str, type[Driver]] = {cls.protocol: cls for cls in _DRIVER_CLASSES}

# (value, label) pairs, in the shape of a Django `choices`.
PROTOCOLS: list[tuple[str, str]] = [(cls.protocol, cls.label) for cls in _DRIVER_CLASSES]


class UnknownProtocol(DriverError, LookupError):
    """No driver for this protocol value (a stale row, or a module not registered)."""

    def __init__(self, protocol: str) -> None:
        super().__init__(
            f"Unknown printer protocol {protocol!r} (known: {', '.join(DRIVERS)})", permanent=True
        )


def get_driver(protocol: str, config: DriverConfig, client: httpx.AsyncClient) -> Driver:
    try:
        cls = DRIVERS[protocol]
    except KeyError:
        raise UnknownProtocol(protocol) from None
    return cls(config, client)
