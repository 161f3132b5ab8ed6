"""What a simulated PrusaLink (Buddy firmware: MK4/XL/MINI/Core One) printer adds to SimPrinter:
its password, the "Set Ready" flag, the attention dialog, the one upload it can take at a time,
its digest nonces and its connection slots; and the v1 `printer.state` computed from all that.

States (Buddy src/state/printer_state.cpp): SimPrinter's job states map onto PRINTING, PAUSED,
FINISHED (complete), STOPPED (cancelled), ERROR (the "disconnect" fault: the printer halted with
an error screen) and IDLE; PrusaLink adds READY (an operator pressed "Set Ready": IDLE,
FINISHED and STOPPED read READY until the next print starts), ATTENTION (a dialog on the
printer waits for a person, here the "attention" fault) and BUSY (the "not_ready" fault: the
firmware is still starting).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass
from typing import Any

from printers.simulator.printer import CANCELLED, COMPLETE, ERROR, LOST, PAUSED, PRINTING, READY, SimPrinter

USERNAME = "maker"  # fixed on Buddy (PRUSA_LINK_USERNAME)
REALM = "Printer API"  # Buddy lib/WUI/nhttp/status_page.h AUTH_REALM
# Buddy firmware before 5.1 kept a nonce 5 s (8 s for PUT/POST), newer firmware 300 s; the short
# lifetime is the one a client must survive, so it is the default.
NONCE_LIFETIME = 5.0  # wall seconds
ACTIVE_CONNS = 3  # Buddy nhttp server.h: requests served at once; the rest wait in TCP
MODELS = ("MK4S", "COREONE", "XL", "MINI")
FREE_SPACE = 16 * 1024**3  # bytes on the simulated USB stick

IDLE_STATE, BUSY_STATE, PRINTING_STATE, PAUSED_STATE = "IDLE", "BUSY", "PRINTING", "PAUSED"
FINISHED_STATE, STOPPED_STATE, ERROR_STATE = "FINISHED", "STOPPED", "ERROR"
ATTENTION_STATE, READY_STATE = "ATTENTION", "READY"


def password_for(index: int) -> str:
    """Printer `index`'s PrusaLink password: 8 letters and digits, the same in every run (Buddy
    generates one at first boot and shows it in Settings > Network > PrusaLink)."""
    digest = hashlib.sha256(f"printfarm-sim-prusalink-{index}".encode()).digest()
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:8])


@dataclass(slots=True)
class Transfer:
    """The upload in progress (Buddy's transfers::Monitor slot)."""

    id: int
    path: str  # relative to the USB root
    size: int  # Content-Length
    to_print: bool
    started: float  # time.monotonic()
    transferred: int = 0
    stopped: bool = False  # DELETE /api/v1/transfer/{id}

    def describe(self) -> dict[str, Any]:
        """The `transfer` object of /api/v1/status. Buddy's progress here is a fraction 0..1
        (Monitor::Status::progress_estimate), unlike the job's percent."""
        return {
            "id": self.id,
            "time_transferring": int(time.monotonic() - self.started),
            "progress": round(self.transferred / self.size, 2) if self.size else 0.0,
            "transferred": self.transferred,
        }


class PrusaLinkDevice:
    """The PrusaLink side of one SimPrinter whose protocol is "prusalink"."""

    def __init__(self, printer: SimPrinter) -> None:
        self.printer = printer
        self.password = password_for(printer.index)
        self.model = MODELS[printer.index % len(MODELS)]
        self.serial = f"10{printer.index + 1:05d}{printer.index % 97:02d}SIM"
        self.hostname = f"prusa-{self.model.lower()}-{printer.index + 1}"
        self.ready_at: int | None = None  # len(printer.prints) when "Set Ready" was pressed
        self.attention_paused = False  # the attention dialog paused a running print
        self.transfer: Transfer | None = None
        self.transfer_ids = 0
        self.usb_bytes_limit: int | None = None  # fault "usb_full" answers 507 regardless
        self.nonce_random = random.getrandbits(32) or 1
        self.nonce_lifetime = NONCE_LIFETIME
        self.last_issued = 0  # ms of the last nonce issued
        self.used_nonces: set[str] = set()  # the "stale_nonce" fault: a nonce serves one request
        self.slots: asyncio.Semaphore | None = None  # created on the farm's loop
        self.connections = 0  # TCP connections open now
        self.peak_connections = 0
        self.active = 0  # requests being served now (<= ACTIVE_CONNS)
        self.peak_active = 0
        self.waited = 0  # requests that had to wait for a slot

    # -- nonces ---------------------------------------------------------------------------

    def new_nonce(self) -> str:
        """Buddy: 32 random bits (per boot) and the time it was issued, 16 hex digits. Here in
        milliseconds and never the same twice (Buddy's seconds repeat), so that a single-use
        nonce ("stale_nonce") is really used once."""
        self.last_issued = max(int(time.monotonic() * 1000), self.last_issued + 1)
        return self.last_nonce()

    def last_nonce(self) -> str:
        """The nonce issued last (tests wait for it to go stale)."""
        return f"{self.nonce_random:08x}{self.last_issued & 0xFFFFFFFF:08x}"

    def nonce_fresh(self, nonce: str) -> bool:
        if len(nonce) != 16:
            return False
        try:
            random_part, issued = int(nonce[:8], 16), int(nonce[8:], 16)
        except ValueError:
            return False
        age = ((int(time.monotonic() * 1000) - issued) & 0xFFFFFFFF) / 1000
        if age > 2**31 / 1000:  # issued a few ms ahead of the clock (see new_nonce)
            age = 0.0
        if random_part != self.nonce_random or age >= self.nonce_lifetime:
            return False
        if self.printer.fault == "stale_nonce":
            if nonce in self.used_nonces:
                return False
            if len(self.used_nonces) > 1000:
                self.used_nonces.clear()
            self.used_nonces.add(nonce)
        return True

    # -- connections ----------------------------------------------------------------------

    def connection_opened(self) -> None:
        self.connections += 1
        self.peak_connections = max(self.peak_connections, self.connections)

    def connection_closed(self) -> None:
        self.connections -= 1

    def reset_peaks(self) -> None:
        self.peak_connections = self.connections
        self.peak_active = self.active
        self.waited = 0

    # -- state ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.ready_at is not None and self.ready_at == len(self.printer.prints)

    def set_ready(self) -> None:
        """The printer's "Set Ready" menu item: only from IDLE, FINISHED or STOPPED."""
        state = self.state()
        if state not in (IDLE_STATE, FINISHED_STATE, STOPPED_STATE, READY_STATE):
            raise RuntimeError(f"{self.printer.name} is {state}; Set Ready needs IDLE, FINISHED or STOPPED")
        self.ready_at = len(self.printer.prints)

    def clear_ready(self) -> None:
        self.ready_at = None

    def state(self) -> str:
        p = self.printer
        if p.fault == "not_ready":
            return BUSY_STATE
        if p.link == LOST or p.link != READY:
            return ERROR_STATE
        if p.fault == "attention":
            return ATTENTION_STATE
        job = p.job_state
        if job == PRINTING:
            return PRINTING_STATE
        if job == PAUSED:
            return PAUSED_STATE
        if job == ERROR:
            return ERROR_STATE
        if self.ready:
            return READY_STATE
        if job == COMPLETE:
            return FINISHED_STATE
        if job == CANCELLED:
            return STOPPED_STATE
        return IDLE_STATE

    def has_job(self) -> bool:
        """Buddy printer_state::has_job: a job exists while printing, paused or in a dialog
        during a print; FINISHED and STOPPED have none (status without `job`, /job 204)."""
        return bool(self.printer.prints) and self.printer.busy and self.printer.fault != "not_ready"

    def job_id(self) -> int:
        return self.printer.prints[-1].job_id if self.printer.prints else 0

    def can_start(self) -> bool:
        """Buddy remote_print_ready: IDLE, READY, STOPPED or FINISHED."""
        return self.state() in (IDLE_STATE, READY_STATE, STOPPED_STATE, FINISHED_STATE)

    def fault_changed(self, old: str | None, new: str | None, now: float) -> None:
        """The attention dialog appears (pausing a running print) or is dismissed (resuming it)."""
        p = self.printer
        if new == "attention" and old != "attention":
            if p.job_state == PRINTING:
                p.pause(now)
                self.attention_paused = True
        elif old == "attention" and new != "attention":
            if self.attention_paused and p.job_state == PAUSED:
                p.resume(now)
            self.attention_paused = False
        if old == "stale_nonce":
            self.used_nonces.clear()

    def describe(self) -> dict[str, Any]:
        """Extra fields of the control API's printer description."""
        return {
            "prusalink_state": self.state(),
            "username": USERNAME,
            "password": self.password,
            "model": self.model,
            "serial": self.serial,
            "transfer": self.transfer.describe() if self.transfer else None,
            "connections": self.connections,
            "peak_connections": self.peak_connections,
            "peak_active": self.peak_active,
        }


class Slot:
    """One of the server's ACTIVE_CONNS request slots; an upload gives its slot back once its
    body starts streaming (Buddy moves it to the separate transfer slot)."""

    __slots__ = ("device", "held")

    def __init__(self, device: PrusaLinkDevice) -> None:
        self.device = device
        self.held = False

    async def acquire(self) -> None:
        device = self.device
        if device.slots is None:
            device.slots = asyncio.Semaphore(ACTIVE_CONNS)
        if device.slots.locked():
            device.waited += 1
        await device.slots.acquire()
        self.held = True
        device.active += 1
        device.peak_active = max(device.peak_active, device.active)

    def release(self) -> None:
        if self.held:
            self.held = False
            self.device.active -= 1
            assert self.device.slots is not None
            self.device.slots.release()
