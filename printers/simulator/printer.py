"""One simulated printer: heaters, the job state machine and its files, all computed lazily from time.

Nothing ticks: every value is a function of simulated time (`now`, seconds) evaluated when a
request asks, so 1,000 idle printers cost nothing between polls. Callers call `advance(now)`
first so that a print that ended between two requests ends at the right moment.

Every print start and end is kept in `prints` (a PrintRecord each, for the farm's life): the
farm's print log and Moonraker's job history (/server/history/*) are read from it. Outcomes use
Moonraker's history vocabulary: in_progress, completed, cancelled, error, klippy_shutdown,
klippy_disconnect.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from printers.simulator.files import SimFile, describe_file

FAULTS = (
    "offline",
    "blackhole",
    "slow",
    "http500",
    "malformed",
    "not_ready",
    "reset_upload",
    "stall_upload",
    "disconnect",  # firmware link lost, host answers: Klippy disconnected / serial port gone
    "garbled",  # the request is carried out, then its reply replaced by a malformed body
)
# Bambu printers (bambu.py) take the faults of their transport, not the HTTP ones.
BAMBU_FAULTS = (
    "offline",
    "blackhole",  # TCP accepted, TLS never completes; live connections go silent
    "no_connack",  # TLS completes, CONNECT is never answered
    "bad_access_code",  # the printer's LAN access code changed: CONNACK 5, FTPS 530
    "dev_mode_off",  # LAN-only + Developer Mode off: commands rejected, status still pushed
    "cert_changed",  # the printer presents another certificate
    "push_stop",  # pushes stop, the connection stays up, until the client sends pushall
    "malformed",  # pushes are cut-off JSON
    "garbled",  # commands are carried out, their replies are cut-off JSON
    "huge_push",  # every push carries megabytes
    "runout",  # filament runs out: a running print pauses (stg_cur 6)
    "reset_upload",  # FTPS data connection reset mid-file
    "stall_upload",  # FTPS stops reading mid-file until the fault clears
)
# PrusaLink printers (prusalink.py) take the HTTP faults plus their USB stick's and dialogs'.
PRUSALINK_FAULTS = (
    *FAULTS,
    "no_usb",  # no USB stick: uploads 507 "Missing USB drive", the file list is empty
    "usb_full",  # uploads 507 "USB drive full"
    "slow_usb",  # uploads are accepted at a crawl (16 KiB per 0.1 s)
    "stale_nonce",  # a digest nonce serves one request, then it is stale (401 stale=true)
    "attention",  # a dialog waits for a person: ATTENTION, a running print pauses until cleared
)
PROTOCOLS = ("moonraker", "octoprint", "bambu", "prusalink")
# "mixed" cycles three Moonraker/OctoPrint pairs, two Bambu printers, then two PrusaLink
# printers: a farm of up to six (what most tests use) stays Moonraker/OctoPrint-only and the
# first eight printers are what they were before PrusaLink; 1,000 mixed are 300/300/200/200.
MIXED_CYCLE = ("moonraker", "octoprint") * 3 + ("bambu", "bambu") + ("prusalink", "prusalink")


def faults_for(protocol: str) -> tuple[str, ...]:
    if protocol == "bambu":
        return BAMBU_FAULTS
    return PRUSALINK_FAULTS if protocol == "prusalink" else FAULTS


AMBIENT = 22.0
SETTLE = 0.3  # within this of the goal a heater reads exactly the goal
# Heater time constants in real seconds at speed 1; scaled by 1/sqrt(speed) so heat-up stays
# visible in a sped-up demo while prints race through.
EXTRUDER_TAU = 15.0
BED_TAU = 30.0
DEFAULT_DURATION = 600.0  # simulated seconds when the file carries no slicer estimate
DEFAULT_HOTEND = 210.0
DEFAULT_BED = 60.0
RESTART_SECONDS = 2.0  # simulated time Klipper takes to come back after FIRMWARE_RESTART
FILAMENT_PER_SECOND = 8.0  # mm of filament per simulated print second (for print_stats)

# Job states use Klipper's print_stats vocabulary; OctoPrint renders them as its state texts.
STANDBY, PRINTING, PAUSED, COMPLETE, CANCELLED, ERROR = (
    "standby",
    "printing",
    "paused",
    "complete",
    "cancelled",
    "error",
)
# Firmware link: Klippy state for Moonraker, serial connection for OctoPrint.
READY = "ready"
SHUTDOWN = "shutdown"  # Klippy after an e-stop; OctoPrint "Offline after error"
STARTUP = "startup"  # Klippy restarting after FIRMWARE_RESTART
CLOSED = "closed"  # OctoPrint serial disconnected by the user
LOST = "lost"  # the "disconnect" fault: Klippy disconnected / OctoPrint serial error

# Print outcomes (Moonraker's job history statuses)
IN_PROGRESS, COMPLETED, CANCELLED_OUTCOME, ERROR_OUTCOME = "in_progress", "completed", "cancelled", "error"
KLIPPY_SHUTDOWN, KLIPPY_DISCONNECT = "klippy_shutdown", "klippy_disconnect"
SERIAL_ERROR = "SerialException: device reports readiness to read but returned no data"


@dataclass(slots=True)
class PrintRecord:
    """One print on one printer, from its start to its end (Moonraker's history entry)."""

    job_id: int  # per printer, from 1, like Moonraker's history ids
    filename: str
    started: float  # wall time (unix)
    start_sim: float  # simulated time of the start
    ended: float | None = None  # wall time; None while in progress
    outcome: str = IN_PROGRESS
    print_duration: float = 0.0  # simulated seconds, final once ended
    total_duration: float = 0.0


def wall_now(sim: float) -> float:
    """Default sim -> wall clock of a printer outside a farm: now."""
    return time.time()


class Heater:
    """Exponential approach to max(target, ambient), settling exactly on the goal."""

    __slots__ = ("t0", "tau", "target", "temp0")

    def __init__(self, tau: float) -> None:
        self.tau = tau  # simulated seconds
        self.t0 = 0.0
        self.temp0 = AMBIENT
        self.target = 0.0

    def _exact(self, now: float) -> float:
        goal = self.target if self.target > AMBIENT else AMBIENT
        temp = goal + (self.temp0 - goal) * math.exp(-max(0.0, now - self.t0) / self.tau)
        return goal if abs(temp - goal) <= SETTLE else temp

    def temperature(self, now: float) -> float:
        return round(self._exact(now), 1)

    def power(self, now: float) -> float:
        if self.target <= 0:
            return 0.0
        temp = self._exact(now)
        if temp < self.target - 2:
            return 1.0
        return 0.35 if temp <= self.target else 0.0

    def set_target(self, now: float, target: float) -> None:
        self.temp0 = self._exact(now)
        self.t0 = now
        self.target = max(0.0, float(target))


class SimPrinter:
    """State of one simulated printer. Protocol modules read it and call its transitions."""

    def __init__(self, *, index: int, protocol: str, host: str, port: int, speed: float, storage: Path):
        self.index = index
        self.protocol = protocol
        self.name = f"sim-{protocol}-{index + 1}"
        self.host = host
        self.port = port  # Bambu: the MQTT port
        self.ftps_port = 0  # Bambu only
        self.camera_port = 0  # Bambu P1/A1 only (an X1's camera is RTSPS, not simulated)
        self.fault: str | None = None
        self.fault_delay = 3.0
        self.storage = storage  # this printer's directory; G-code lives in `files_dir`
        self.files: dict[str, SimFile] = {}
        scale = math.sqrt(speed)
        self.extruder = Heater(EXTRUDER_TAU * scale)
        self.bed = Heater(BED_TAU * scale)
        self.link = READY
        self.link_message = ""
        self.link_until = 0.0  # sim time a STARTUP link becomes READY
        self.job_state = STANDBY
        self.job_file = ""  # Klipper's loaded file / OctoPrint's selected file ("" = none)
        self.job_size = 0
        self.job_duration = DEFAULT_DURATION
        self.job_from_estimate = False
        self.job_message = ""
        self.job_started = 0.0  # sim time the job started (total_duration)
        self.job_ended: float | None = None
        self.job_elapsed = 0.0  # print seconds accumulated before `resumed_at`
        self.resumed_at: float | None = None  # sim time printing last (re)started; None unless printing
        self.last_print_time: float | None = None  # OctoPrint's lastPrintTime of the selected file
        # Print seconds into each print before its first extrusion, when Klipper's print clock
        # (print_stats.print_duration) starts; None: it never starts, as on a host without an
        # extruder. total_duration and the file progress run from the start regardless.
        self.first_extrusion: float | None = 0.0
        self.server: asyncio.AbstractServer | None = None  # set by the farm while listening
        self.prints: list[PrintRecord] = []
        self.wall_time: Callable[[float], float] = wall_now  # sim time -> unix time; set by the farm
        # called on every print start and end, on the farm's loop (the farm's print listeners)
        self.on_print: Callable[[SimPrinter, PrintRecord, float], None] | None = None
        self.on_upload: Callable[[SimPrinter, str], None] | None = None  # a file stored, not yet answered

    # -- identity -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.protocol == "bambu":
            camera = f"&camera={self.camera_port}" if self.camera_port else ""
            return f"mqtts://{host}:{self.port}?ftps={self.ftps_port}{camera}"
        return f"http://{host}:{self.port}"

    @property
    def files_dir(self) -> Path:
        if self.protocol == "bambu":
            return self.storage  # the SD card root, where FTPS STOR puts files
        return self.storage / {"moonraker": "gcodes", "prusalink": "usb"}.get(self.protocol, "local")

    def file_path(self, rel_path: str) -> Path:
        return self.files_dir / rel_path

    # -- time -----------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Apply transitions that happened since the last request (print end, restart done)."""
        if self.resumed_at is not None and self.job_state == PRINTING:
            end = self.resumed_at + (self.job_duration - self.job_elapsed)
            if now >= end:
                self.job_elapsed = self.job_duration
                self.resumed_at = None
                self.job_state = COMPLETE
                self.job_ended = end
                self.last_print_time = self.job_duration
                self.extruder.set_target(end, 0)
                self.bed.set_target(end, 0)
                self._end_print(end, COMPLETED)
        if self.link == STARTUP and now >= self.link_until:
            self.link = READY
            self.link_message = ""

    def print_duration(self, now: float) -> float:
        if self.resumed_at is None:
            return self.job_elapsed
        return min(self.job_duration, self.job_elapsed + now - self.resumed_at)

    def klipper_duration(self, printed: float) -> float:
        """Klipper's print_duration after `printed` seconds of printing (pauses excluded): it
        leaves out the time before the first extrusion (klippy/extras/print_stats.py)."""
        if self.first_extrusion is None:
            return 0.0
        return max(0.0, printed - self.first_extrusion)

    def total_duration(self, now: float) -> float:
        if self.job_state == STANDBY and not self.job_file:
            return 0.0
        end = self.job_ended if self.job_ended is not None else now
        return max(0.0, end - self.job_started)

    def progress(self, now: float) -> float:
        """Fraction 0..1 of the current/last job."""
        if self.job_duration <= 0:
            return 1.0 if self.job_state == COMPLETE else 0.0
        return min(1.0, self.print_duration(now) / self.job_duration)

    # -- state ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.job_state in (PRINTING, PAUSED)

    def summary_state(self) -> str:
        """Protocol-neutral state for the control API (printers.state vocabulary)."""
        if self.fault == "offline":
            return "offline"
        if self.link == SHUTDOWN or (self.link == LOST and self.protocol in ("octoprint", "prusalink")):
            return "error"
        if self.link != READY or self.fault == "not_ready":
            return "connecting"
        return {COMPLETE: "finished", STANDBY: "idle"}.get(self.job_state, self.job_state)

    # -- transitions (callers check the protocol's busy rules first) -----------------------

    def start(self, now: float, rel_path: str, *, duration: float | None = None) -> None:
        if self.busy:  # only the control API's start_print gets here busy: the old print stops
            self.cancel(now)
        info = self.files.get(rel_path)
        if duration is None:
            duration = info.estimated_time if info and info.estimated_time else None
            self.job_from_estimate = duration is not None
        else:
            self.job_from_estimate = False
        self.job_duration = float(duration if duration is not None else DEFAULT_DURATION)
        self.job_file = rel_path
        self.job_size = info.size if info else 0
        self.job_state = PRINTING
        self.job_message = ""
        self.job_started = now
        self.job_ended = None
        self.job_elapsed = 0.0
        self.resumed_at = now
        self.prints.append(
            PrintRecord(
                job_id=len(self.prints) + 1, filename=rel_path, started=self.wall_time(now), start_sim=now
            )
        )
        if self.on_print is not None:
            self.on_print(self, self.prints[-1], now)
        self.extruder.set_target(now, info.hotend_temp if info and info.hotend_temp else DEFAULT_HOTEND)
        self.bed.set_target(now, info.bed_temp if info and info.bed_temp is not None else DEFAULT_BED)

    def select(self, rel_path: str) -> None:
        """OctoPrint: load a file without printing it."""
        info = self.files.get(rel_path)
        self.job_file = rel_path
        self.job_size = info.size if info else 0
        self.job_duration = info.estimated_time if info and info.estimated_time else DEFAULT_DURATION
        self.job_from_estimate = bool(info and info.estimated_time)
        self.job_state = STANDBY
        self.job_elapsed = 0.0
        self.resumed_at = None
        self.job_ended = None
        self.last_print_time = None

    def pause(self, now: float) -> None:
        self.job_elapsed = self.print_duration(now)
        self.resumed_at = None
        self.job_state = PAUSED

    def resume(self, now: float) -> None:
        self.resumed_at = now
        self.job_state = PRINTING

    def restart_job(self, now: float) -> None:
        """OctoPrint "restart": the paused job from the beginning."""
        self.start(now, self.job_file, duration=None if self.job_file in self.files else self.job_duration)

    def cancel(self, now: float, outcome: str = CANCELLED_OUTCOME) -> None:
        self.job_elapsed = self.print_duration(now)
        self.resumed_at = None
        self.job_state = CANCELLED
        self.job_ended = now
        self.extruder.set_target(now, 0)
        self.bed.set_target(now, 0)
        self._end_print(now, outcome)

    def emergency_stop(self, now: float, message: str = "Emergency stop") -> None:
        if self.busy:
            self.job_elapsed = self.print_duration(now)
            self.resumed_at = None
            self.job_state = ERROR
            self.job_message = message
            self.job_ended = now
            self._end_print(now, KLIPPY_SHUTDOWN if self.protocol == "moonraker" else ERROR_OUTCOME)
        self.link = SHUTDOWN
        self.link_message = message
        self.extruder.set_target(now, 0)
        self.bed.set_target(now, 0)

    def firmware_restart(self, now: float) -> None:
        """Klipper FIRMWARE_RESTART: objects are rebuilt, so print_stats is back to standby."""
        if self.busy:  # Klippy drops its API socket while it restarts
            self.cancel(now, KLIPPY_DISCONNECT)
        self.link = STARTUP
        self.link_message = "Printer is restarting"
        self.link_until = now + RESTART_SECONDS
        self._fresh_klippy()
        self.extruder.set_target(now, 0)
        self.bed.set_target(now, 0)

    def connect(self) -> None:
        """OctoPrint: (re)open the serial connection."""
        self.link = READY
        self.link_message = ""
        if self.job_state == ERROR:
            self.job_state = STANDBY

    def disconnect(self, now: float) -> None:
        if self.busy:  # OctoPrint reports PrintFailed when the port closes under a print
            self.cancel(now, ERROR_OUTCOME)
        self.link = CLOSED
        self.link_message = ""

    def lose_link(self, now: float) -> None:
        """The "disconnect" fault: Klippy's socket / the serial port is gone; a print ends.

        Moonraker: Klippy comes back as a fresh process, so print_stats will read standby with
        no file. OctoPrint: the print fails; the file stays selected."""
        was_busy = self.busy
        if was_busy:
            self.job_elapsed = self.print_duration(now)
            self.resumed_at = None
            self.job_ended = now
            self._end_print(now, KLIPPY_DISCONNECT if self.protocol == "moonraker" else ERROR_OUTCOME)
        self.extruder.set_target(now, 0)
        self.bed.set_target(now, 0)
        self.link = LOST
        self.link_message = "Klippy Disconnected" if self.protocol == "moonraker" else SERIAL_ERROR
        if self.protocol == "moonraker":
            self._fresh_klippy()
        elif was_busy:
            self.job_state = ERROR
            self.job_message = SERIAL_ERROR

    def restore_link(self) -> None:
        """The "disconnect" fault cleared: Klippy ready / serial reconnected, without the print."""
        self.link = READY
        self.link_message = ""
        if self.job_state == ERROR:
            self.job_state = STANDBY
            self.job_message = ""

    def _fresh_klippy(self) -> None:
        """A Klippy process that (re)started: print_stats reads standby with no file."""
        self.job_state = STANDBY
        self.job_file = ""
        self.job_size = 0
        self.job_message = ""
        self.job_elapsed = 0.0
        self.job_ended = None

    def _end_print(self, now: float, outcome: str) -> None:
        record = self.prints[-1] if self.prints else None
        if record is None or record.outcome != IN_PROGRESS:
            return
        record.outcome = outcome
        record.ended = self.wall_time(now)
        record.print_duration = self.job_elapsed
        record.total_duration = max(0.0, now - record.start_sim)
        if self.on_print is not None:
            self.on_print(self, record, now)

    def record_durations(self, record: PrintRecord, now: float) -> tuple[float, float]:
        """(print, total) simulated seconds of a record, live while it is in progress."""
        if record.outcome == IN_PROGRESS:
            return self.print_duration(now), max(0.0, now - record.start_sim)
        return record.print_duration, record.total_duration

    def print_log(self, now: float) -> list[dict[str, Any]]:
        """This printer's prints as the control API's /prints lists them, oldest first."""
        return [self.describe_print(record, now) for record in self.prints]

    def describe_print(self, record: PrintRecord, now: float) -> dict[str, Any]:
        print_duration, _ = self.record_durations(record, now)
        return {
            "index": self.index,
            "printer": self.name,
            "protocol": self.protocol,
            "job_id": record.job_id,
            "filename": record.filename,
            "started": round(record.started, 3),
            "ended": None if record.ended is None else round(record.ended, 3),
            "outcome": record.outcome,
            "print_duration": round(print_duration, 3),
        }

    def set_targets(self, now: float, *, hotend: float | None = None, bed: float | None = None) -> None:
        if hotend is not None:
            self.extruder.set_target(now, hotend)
        if bed is not None:
            self.bed.set_target(now, bed)

    # -- files ----------------------------------------------------------------------------

    def add_file(self, info: SimFile) -> None:
        self.files[info.path] = info
        if self.on_upload is not None:
            self.on_upload(self, info.path)

    def delete_file(self, rel_path: str) -> None:
        self.files.pop(rel_path, None)
        path = self.file_path(rel_path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def scan_files(self) -> None:
        """Pick up files already in files_dir (a reused upload_dir)."""
        root = self.files_dir
        if not root.is_dir():
            return
        for path in root.rglob("*"):
            if path.is_file() and not path.name.startswith(".sim-upload-"):
                rel = path.relative_to(root).as_posix()
                self.files[rel] = describe_file(rel, path)
