"""PrusaLink v1 replies mapped onto PrinterStatus (printer-protocols.md §3.2, §6.1).

Two firmwares answer the same v1 API: Buddy (MK4/MK3.9/XL/MINI/Core One, the web server in
the printer) and Prusa-Link (Python on a Raspberry Pi beside an MK3/MK2.5). Where they differ
the comment names which one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from printers.drivers.base import DriverError
from printers.drivers.rest import obj, text
from printers.drivers.thumbnail_fetch import printer_path
from printers.state import PrinterStatus, State, clean_percent, clean_seconds, clean_temp

ATTENTION = (
    "Needs attention at the printer: a dialog on its screen (filament runout, a warning, "
    "remove the print…) waits for someone"
)
BUSY = "Printer busy: it is doing something started on its screen (calibration, a menu, a print being set up)"
READY = "Ready: the bed was confirmed clear on the printer (Set Ready)"
CANCELLED = "Print cancelled"
NO_STATE = "PrusaLink reported no printer state"

# printer.state -> (state without a job, state with a job, message)
_STATES: dict[str, tuple[State, State, str]] = {
    "IDLE": (State.IDLE, State.IDLE, ""),
    # "Set Ready" pressed on the printer (Buddy 5.x+, Prusa-Link 0.7+): free, and its bed is clear.
    "READY": (State.IDLE, State.IDLE, READY),
    # Buddy reports BUSY while a print is set up, cancelled or finished (Aborting_*,
    # Finishing_*, preview confirmed): the job is still on. Without a job it is a calibration or
    # a menu on the screen: the printer can't take a job, nor is it ready.
    "BUSY": (State.CONNECTING, State.PRINTING, ""),
    "PRINTING": (State.PRINTING, State.PRINTING, ""),
    # Buddy reports pausing as PAUSED too.
    "PAUSED": (State.PAUSED, State.PAUSED, ""),
    # A dialog waits for a person: a job's print waits (Buddy's /api/v1/job says PAUSED);
    # without a job nothing can start until someone answers it.
    "ATTENTION": (State.ERROR, State.PAUSED, ATTENTION),
    "FINISHED": (State.FINISHED, State.FINISHED, ""),
    # A cancelled print: the printer is free again (as Klipper's "cancelled").
    "STOPPED": (State.IDLE, State.IDLE, CANCELLED),
    "ERROR": (State.ERROR, State.ERROR, ""),
    # Buddy's internal state before its printer task is up.
    "UNKNOWN": (State.CONNECTING, State.CONNECTING, "The printer is starting up"),
}


@dataclass(frozen=True, slots=True)
class JobInfo:
    """What /api/v1/job says of a job that doesn't change while it runs (fetched once per id)."""

    id: int
    file: str  # relative to the storage: "parts/cube.gcode"
    estimate: int | None = None  # seconds, from the file's metadata
    # The printer's image of the file (file.refs.thumbnail, "thumb/l/usb/PARTS~1/CUBE.GCO":
    # Buddy's first image over 16x16 px) as a path under its address; "" without one.
    thumbnail: str = ""
    version: str = ""  # what tells the file's versions apart (size, m_timestamp) for its image's key


def job_id(status: Mapping[str, Any]) -> int | None:
    value = obj(status, "job").get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def printer_state(status: Mapping[str, Any]) -> str:
    return text(obj(status, "printer").get("state")).upper()


def parse_job(job: object, *, known_names: Mapping[str, str]) -> JobInfo | None:
    """/api/v1/job's reply (None: no job). `known_names` maps a file's name to the path it
    was uploaded or started under: Buddy reports the folders of its FAT drive by their short
    8.3 names ("PARTS~1"), only the file's own long name in display_name."""
    if not isinstance(job, dict):
        raise DriverError("Printer sent an unexpected reply to /api/v1/job (not a JSON object)")
    found = job.get("id")
    if not isinstance(found, int) or isinstance(found, bool):
        return None
    file = obj(job, "file")
    name = text(file.get("display_name")) or text(file.get("name"))
    if name in known_names:
        path = known_names[name]
    else:
        # "path" is the folder, with the storage in front ("/usb/parts", "/local").
        folder = text(file.get("path")).strip("/").partition("/")[2]
        path = f"{folder}/{name}" if folder and name else name
    meta = obj(file, "meta")
    estimate = clean_seconds(meta.get("estimated_print_time"))
    thumbnail = printer_path(text(obj(file, "refs").get("thumbnail"))) or ""
    version = f"{file.get('size')}:{file.get('m_timestamp')}"
    return JobInfo(id=found, file=path, estimate=estimate, thumbnail=thumbnail, version=version)


def parse_status(status: object, job: JobInfo | None, *, thumbnail: str = "") -> PrinterStatus:
    """/api/v1/status, with the job it names (from the cache, or just fetched); `thumbnail` is
    the key of the printer's image of its file, once stored."""
    if not isinstance(status, dict):
        raise DriverError("Printer sent an unexpected reply to /api/v1/status (not a JSON object)")
    printer = obj(status, "printer")
    word = printer_state(status)
    progress_job = obj(status, "job")
    has_job = job_id(status) is not None
    if word not in _STATES:
        state, message = (
            State.CONNECTING,
            (f"PrusaLink reported an unknown state {word!r}" if word else NO_STATE),
        )
    else:
        idle_state, job_state, message = _STATES[word]
        state = job_state if has_job else idle_state
        if word == "BUSY" and not has_job:
            message = BUSY
    if state is State.ERROR and not message:
        # No error text in v1; Prusa-Link (Pi) adds status_printer {ok, message}.
        detail = text(obj(status, "status_printer").get("message"))
        message = detail or "The printer reports an error: see its screen"
    elif state is State.CONNECTING and not message:
        message = NO_STATE

    progress = clean_percent(progress_job.get("progress"))
    file = job.file if job is not None and (has_job or state is State.FINISHED) else ""
    if state is State.FINISHED and progress is None:
        progress = 100.0  # Buddy drops the job from the status once it is over
    remaining = clean_seconds(progress_job.get("time_remaining"))
    elapsed = clean_seconds(progress_job.get("time_printing"))
    if remaining is None and job is not None and job.estimate is not None and elapsed is not None:
        remaining = max(0, job.estimate - elapsed)
    if state not in State.RUNNING and state is not State.FINISHED:
        progress = remaining = elapsed = None
    return PrinterStatus(
        state=state,
        message=message,
        hotend_actual=clean_temp(printer.get("temp_nozzle")),
        hotend_target=clean_temp(printer.get("target_nozzle")),
        bed_actual=clean_temp(printer.get("temp_bed")),
        bed_target=clean_temp(printer.get("target_bed")),
        progress=progress,
        file=file,
        elapsed=elapsed,
        remaining=remaining,
        bed_ready=word == "READY",
        thumbnail=thumbnail if file else "",
    )


def storage_names(listing: object) -> list[str]:
    """The writable storages of /api/v1/storage ({"storage_list": [...]}), best first: Buddy
    has its USB drive ("usb", "available": false without one), Prusa-Link "local" (its
    "sdcard" is the printer's card, read-only over the network)."""
    entries = listing.get("storage_list") if isinstance(listing, dict) else None
    names: list[str] = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or entry.get("read_only") is True or entry.get("available") is False:
            continue
        name = text(entry.get("name")) or text(entry.get("path")).strip("/")
        if name:
            names.append(name)
    return sorted(names, key=lambda n: (n not in ("usb", "local"), n))


def status_storage(status: Mapping[str, Any]) -> str:
    """The storage /api/v1/status names: an object on Buddy, a list on Prusa-Link."""
    storage = status.get("storage")
    entries = storage if isinstance(storage, list) else [storage]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("read_only") is not True:
            name = text(entry.get("name")) or text(entry.get("path")).strip("/")
            if name:
                return name
    return ""


def firmware_text(version: Mapping[str, Any]) -> str:
    """/api/version: Buddy {"text": "PrusaLink", "firmware": "6.1.3+…", "server": <lwIP>};
    Prusa-Link {"text": "PrusaLink", "server": "0.7.2", "firmware": <the MK3's>}."""
    name = text(version.get("text")) or "PrusaLink"
    firmware = text(version.get("firmware"))
    if firmware:
        return f"{name} (firmware {firmware})"
    server = text(version.get("server"))
    return f"{name} {server}" if server else name
