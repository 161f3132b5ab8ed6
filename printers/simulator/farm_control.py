"""SimulatedFarm's thread-safe public calls (start a print, read the print log, describe, stats).

Each runs on the farm's event loop through `_call`, so tests and the control API may call them
from any thread. Mixed into SimulatedFarm (farm.py), whose __init__ sets the attributes
annotated below and which provides sim_now().
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from printers.simulator.bambu_state import TraySpec
from printers.simulator.files import UploadRejected, clean_path
from printers.simulator.printer import READY, SimPrinter
from printers.simulator.stats import FarmStats

if TYPE_CHECKING:
    from printers.simulator.bambu import BambuDevice
    from printers.simulator.prusalink_state import PrusaLinkDevice

T = TypeVar("T")
CALL_TIMEOUT = 30.0  # seconds a thread waits for the farm's loop to run a call


class FarmControl:
    """Thread-safe calls SimulatedFarm offers tests, demos and the control API."""

    printers: list[SimPrinter]
    bambu_devices: dict[int, BambuDevice]
    prusalink_devices: dict[int, PrusaLinkDevice]
    stats_counters: FarmStats
    _loop: asyncio.AbstractEventLoop | None
    _reopening: dict[int, asyncio.Task[None]]

    def _call(self, fn: Callable[[], T]) -> T:
        """Run fn on the farm's loop: directly when already there, else via the loop and wait."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop or not loop.is_running():
            return fn()

        async def run() -> T:
            value = fn()
            await asyncio.sleep(0)  # let aborted connections finish closing
            # Let a reopened socket finish registering, so "cleared" means served on return.
            for task in list(self._reopening.values()):
                with contextlib.suppress(BaseException):
                    await task
            return value

        return asyncio.run_coroutine_threadsafe(run(), loop).result(CALL_TIMEOUT)

    def _printer(self, index: int) -> SimPrinter:
        if not 0 <= index < len(self.printers):
            raise ValueError(f"No printer with index {index}")
        return self.printers[index]

    def start_print(self, index: int, filename: str, duration: float | None = None) -> None:
        """Start printing `filename` now (it need not have been uploaded); for tests and demos."""

        def run() -> None:
            p = self._printer(index)
            try:
                rel = clean_path(filename)
            except UploadRejected as exc:
                raise ValueError(exc.message) from exc
            now = self.sim_now()
            p.advance(now)
            if p.link != READY:
                raise RuntimeError(f"{p.name} firmware is not ready ({p.link})")
            device = self.bambu_devices.get(index)
            if device is not None:
                device.start_now(rel, duration)
            else:
                p.start(now, rel, duration=duration)

        self._call(run)

    def set_first_extrusion(self, index: int, seconds: float | None) -> None:
        """How many print seconds into each print (Moonraker) Klipper first extrudes; until then
        its print_duration reads 0. None: never, like a host without an extruder. Default 0."""
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0
        ):
            raise ValueError("first extrusion must be a number of seconds >= 0, or null for never")

        def run() -> None:
            self._printer(index).first_extrusion = None if seconds is None else float(seconds)

        self._call(run)

    def print_log(self, index: int | None = None) -> list[dict[str, Any]]:
        """Every print started on printer `index` (None: all printers), in start order: index,
        printer, protocol, job_id, filename, started, ended (unix time or None), outcome
        (in_progress, completed, cancelled, error, klippy_shutdown, klippy_disconnect)."""

        def run() -> list[dict[str, Any]]:
            printers = self.printers if index is None else [self._printer(index)]
            now = self.sim_now()
            log: list[dict[str, Any]] = []
            for p in printers:
                p.advance(now)
                log.extend(p.print_log(now))
            return sorted(log, key=lambda r: (r["started"], r["index"], r["job_id"]))

        return self._call(run)

    def stats(self) -> dict[str, Any]:
        return self._call(self.stats_counters.snapshot)

    def reset_stats(self) -> None:
        self._call(self.stats_counters.reset)

    def describe_printer(self, index: int) -> dict[str, Any]:
        described = self._describe_printer(index)
        device = self.prusalink_devices.get(index)
        return described if device is None else described | self._call(device.describe)

    def _describe_printer(self, index: int) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            p = self._printer(index)
            now = self.sim_now()
            p.advance(now)
            return {
                "index": p.index,
                "name": p.name,
                "protocol": p.protocol,
                "port": p.port,
                "base_url": p.base_url,
                "state": p.summary_state(),
                "fault": p.fault,
                "fault_delay": p.fault_delay,
                "first_extrusion": p.first_extrusion,
                "file": p.job_file,
                "progress": round(p.progress(now) * 100, 1) if p.job_file else None,
                "hotend": p.extruder.temperature(now),
                "bed": p.bed.temperature(now),
                "last_status_age": self.stats_counters.last_status_age(p.index),
            } | (self.bambu_devices[index].describe() if index in self.bambu_devices else {})

        return self._call(run)

    def prusalink(self, index: int) -> PrusaLinkDevice:
        """The PrusaLink side of printer `index`: password, model, serial, connection counters
        (connections, peak_connections, peak_active, waited), nonce_lifetime. Read it from any
        thread; change it through the calls below."""
        device = self.prusalink_devices.get(index)
        if device is None:
            raise ValueError(f"Printer {index} is not a PrusaLink printer")
        return device

    def prusalink_password(self, index: int) -> str:
        """Printer `index`'s PrusaLink password (user "maker"; also its X-Api-Key)."""
        return self.prusalink(index).password

    def set_ready(self, index: int) -> None:
        """Press "Set Ready" on PrusaLink printer `index`: IDLE, FINISHED or STOPPED read READY
        until the next print starts. RuntimeError in any other state."""

        def run() -> None:
            device = self.prusalink(index)
            device.printer.advance(self.sim_now())
            device.set_ready()

        self._call(run)

    def reset_connection_peaks(self, index: int) -> None:
        """Start counting a PrusaLink printer's peak connections and requests afresh."""
        self._call(lambda: self.prusalink(index).reset_peaks())

    def set_nonce_lifetime(self, index: int, seconds: float) -> None:
        """How many wall seconds a PrusaLink printer's digest nonce stays fresh (default 5)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise ValueError("nonce lifetime must be a number of seconds > 0")

        def run() -> None:
            self.prusalink(index).nonce_lifetime = float(seconds)

        self._call(run)

    def set_trays(
        self, index: int, trays: list[dict[str, Any]], external: dict[str, Any] | None = None
    ) -> None:
        """A Bambu printer's AMS slots (and external spool): [{"type", "colour" RRGGBBAA,
        "remain" %}], {} for an empty slot, up to 4 per AMS unit (one unit simulated)."""
        specs = [_tray(t) for t in trays]
        if len(specs) > 4:
            raise ValueError("one AMS unit holds 4 trays")
        spool = _tray(external) if external is not None else None

        def run() -> None:
            device = self.bambu_devices.get(index)
            if device is None:
                raise ValueError(f"Printer {index} is not a Bambu printer")
            device.trays = specs + [TraySpec() for _ in range(4 - len(specs))]
            if spool is not None:
                device.external = spool

        self._call(run)

    def describe(self) -> list[dict[str, Any]]:
        return self._call(lambda: [self.describe_printer(i) for i in range(len(self.printers))])


def _tray(data: dict[str, Any]) -> TraySpec:
    if not isinstance(data, dict):
        raise ValueError("a tray is an object {type, colour, remain}")
    kind, colour, remain = data.get("type", ""), data.get("colour", "FFFFFFFF"), data.get("remain", -1)
    if not isinstance(kind, str) or not isinstance(colour, str) or len(colour) not in (6, 8):
        raise ValueError("tray type must be text and colour RRGGBB or RRGGBBAA")
    if isinstance(remain, bool) or not isinstance(remain, int) or not -1 <= remain <= 100:
        raise ValueError("tray remain must be a percentage (-1: unknown)")
    colour = colour.upper() + ("FF" if len(colour) == 6 else "")
    return TraySpec(kind.upper(), colour if kind else "", remain)
