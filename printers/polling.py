"""One printer's polling: what reaches it, its run-time state, its backoff, and what a failed
poll shows (offline when the printer could not be reached, error when it answered badly)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import dataclass

import aiohttp
import httpx

from printers.drivers.base import Driver, DriverError
from printers.state import PrinterStatus

JITTER = 0.1  # +-10 % on backoff delays, so printers that died together don't retry together
MESSAGE_MAX = 500  # PrinterStatusRow.message
# Causes that mean "could not reach the printer" (shown as offline) rather than "it answered
# badly" (shown as error). Drivers chain them: `raise DriverError(...) from exc`.
_UNREACHABLE = (httpx.TransportError, aiohttp.ClientConnectionError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class PrinterConfig:
    """What the poller needs to reach one printer; a change restarts its task."""

    pk: int
    protocol: str
    base_url: str
    api_key: str = ""
    username: str = ""
    serial: str = ""
    certificate_pin: str = ""


@dataclass(eq=False)
class PrinterPoller:
    """Run-time state of one printer's polling."""

    config: PrinterConfig
    name: str = ""
    edited_at: dt.datetime | None = None  # Printer.updated_at when last read
    task: asyncio.Task[None] | None = None
    driver: Driver | None = None
    polls: int = 0
    failures: int = 0  # consecutive failed polls; 0 while healthy
    last: PrinterStatus | None = None
    # The latest reading in which the printer itself reported an error, and `polls` then: a
    # reader that looks less often than readings come still learns of it.
    error: PrinterStatus | None = None
    error_poll: int = 0
    next_at: float = 0.0  # clock() time of the next poll


def next_delay(failures: int, interval: float, backoff_max: float, rng: random.Random) -> float:
    """Seconds to wait before the next poll after `failures` consecutive failed polls.

    0 failures is the normal interval; the Nth failure waits interval * 2**N with +-10 %
    jitter, never more than backoff_max and never less than the interval.
    """
    if failures <= 0:
        return interval
    base = min(backoff_max, interval * 2.0 ** min(failures, 32))
    return max(interval, min(backoff_max, base * rng.uniform(1 - JITTER, 1 + JITTER)))


def is_unreachable(exc: DriverError) -> bool:
    """Did this failure come from the transport (refused, reset, timed out) rather than a reply?"""
    if exc.permanent:
        return False  # a bad address or a refused key: the printer needs an operator, show ERROR
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, _UNREACHABLE):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return False


def describe_unexpected(exc: BaseException) -> str:
    detail = str(exc)
    return f"Unexpected {type(exc).__name__}: {detail}" if detail else f"Unexpected {type(exc).__name__}"
