"""What OctoPrint's `/api/printer`, `/api/job` and `/api/connection` say, worded for the farm.

A slicer's token is bound to a printer, to a tag, or to nothing (the whole farm). Cura's
OctoPrint plugin polls `/api/printer` and `/api/job` every few seconds: anything but a 200 marks
the printer offline, and it reads every state flag and `job.file.name` without checking they
are there. So the farm answers as an OctoPrint that is always connected: one printer (the
token's, or its tag's only one) is described as it is, several as one operational printer
that takes work. The printers' states are judged by `shown_state`, as their cards are.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from jobs.models import Job
from printers.models import Printer, PrinterStatusRow
from printers.queries import farm_state_counts
from printers.state import State, shown_state
from printfarm.accounts.models import ApiToken
from printfarm.api.octoprint_files import filament

PROFILE_ID = "_default"

FLAGS = ("operational", "printing", "pausing", "paused", "cancelling", "resuming", "finishing")
FLAGS += ("error", "closedOrError", "ready", "sdReady")


@dataclass(frozen=True, slots=True)
class Described:
    """What OctoPrint would say about the printer it drives."""

    text: str  # OctoPrint's state string ("Operational", "Printing", ...)
    flags: frozenset[str]  # the flags that are true
    printer: Printer | None  # the one printer meant, loaded with its status; None for several


def _row(printer: Printer) -> PrinterStatusRow | None:
    try:
        return printer.status
    except PrinterStatusRow.DoesNotExist:
        return None


def _state(printer: Printer) -> tuple[State, PrinterStatusRow | None]:
    row = _row(printer)
    return shown_state(enabled=printer.enabled, stored=row.state if row else None), row


def _one(printer: Printer) -> Described:
    state, row = _state(printer)
    if state in State.FREE:
        return Described("Operational", frozenset({"operational", "ready"}), printer)
    if state == State.PRINTING:
        return Described("Printing", frozenset({"operational", "printing"}), printer)
    if state == State.PAUSED:
        return Described("Paused", frozenset({"operational", "paused"}), printer)
    if state == State.ERROR:
        message = row.message if row else ""
        return Described(
            f"Error: {message}" if message else "Error", frozenset({"error", "closedOrError"}), printer
        )
    # Unreachable or in maintenance: the farm holds its jobs until it is back, so it stays
    # "operational" (Cura refuses to print only on the error, paused and printing flags).
    return Described("Offline", frozenset({"operational"}), printer)


def _several(printers: QuerySet[Printer] | None) -> Described:
    # A farm takes work while some of its printers print: never "printing", or Cura would
    # refuse to send a print while any printer is busy.
    free = sum(n for state, n in farm_state_counts(printers).items() if state in State.FREE)
    return Described("Operational", frozenset({"operational", "ready"} if free else {"operational"}), None)


def token_of(token_id: int | None) -> ApiToken | None:
    return ApiToken.objects.select_related("user", "printer", "tag").filter(pk=token_id).first()


def describe(token: ApiToken) -> Described:
    """The token's printer, its tag's printers (one: described as that printer), or the farm."""
    printers = Printer.objects.with_status()
    if token.printer_id:
        printer = printers.filter(pk=token.printer_id).first()
        if printer is not None:
            return _one(printer)
    elif token.tag_id:
        tagged = printers.filter(tags=token.tag_id)
        first_two = list(tagged[:2])
        if len(first_two) == 1:
            return _one(first_two[0])
        return _several(Printer.objects.filter(tags=token.tag_id))
    return _several(None)


def _temperature(actual: float | None, target: float | None) -> dict:
    return {"actual": actual, "target": target, "offset": 0}


def printer_state(described: Described) -> dict:
    """`GET /api/printer`: temperatures only where one printer is meant (and has a reading)."""
    body: dict = {
        "state": {
            "text": described.text,
            "flags": {flag: flag in described.flags for flag in FLAGS},
            "error": described.text.removeprefix("Error: ") if "error" in described.flags else "",
        },
        "sd": {"ready": False},
    }
    if described.printer is not None:
        state, row = _state(described.printer)
        live = row is not None and state not in State.NO_READING
        body["temperature"] = {
            "tool0": _temperature(row.hotend_actual, row.hotend_target) if live else _temperature(None, None),
            "bed": _temperature(row.bed_actual, row.bed_target) if live else _temperature(None, None),
        }
    return body


def last_job(token: ApiToken) -> Job | None:
    """The job the token's last "upload and print" (or select and print) queued."""
    jobs = Job.objects.filter(api_token=token).select_related("file", "created_by", "printer__status")
    return jobs.order_by("-created_at", "-pk").first()


def _job_text(job: Job, described: Described) -> str:
    if job.state in (Job.State.QUEUED, Job.State.ASSIGNED, Job.State.UPLOADING):
        return "Starting"  # Cura shows it as about to print, and leaves the printer's state alone
    if job.state == Job.State.PRINTING:
        paused = job.printer is not None and _state(job.printer)[0] == State.PAUSED
        return "Paused" if paused else "Printing"
    # Finished: as OctoPrint after a print, the printer's state with the last job's numbers.
    return described.text


def _progress(job: Job | None) -> dict:
    progress = {"completion": None, "filepos": None, "printTime": None, "printTimeLeft": None}
    if job is None:
        return {**progress, "printTimeLeftOrigin": None}
    if job.state == Job.State.PRINTING and job.printer is not None:
        row = _row(job.printer)
        if row is not None:
            progress |= {"completion": row.progress, "printTime": row.elapsed, "printTimeLeft": row.remaining}
    elif job.state == Job.State.COMPLETED:
        progress |= {"completion": 100.0, "printTime": job.print_seconds, "printTimeLeft": 0}
    return {**progress, "printTimeLeftOrigin": "estimate" if progress["printTimeLeft"] is not None else None}


def job_state(described: Described, job: Job | None, *, file_path: str, page_url: str) -> dict:
    """`GET /api/job`: the token's last slicer job, or OctoPrint's "no file selected" (all null)."""
    if job is None:
        nothing = {"name": None, "path": None, "display": None, "origin": None, "size": None, "date": None}
        return {
            "job": {"file": nothing, "estimatedPrintTime": None, "filament": None, "user": None},
            "progress": _progress(None),
            "state": described.text,
            "error": "",
        }
    file = job.file
    return {
        "job": {
            "file": {
                "name": file.name,
                "path": file_path,
                "display": file.name,
                "origin": "local",
                "size": file.size,
                "date": int(file.uploaded_at.timestamp()),
            },
            "estimatedPrintTime": file.estimated_seconds,
            "filament": filament(file) or None,
            "user": job.created_by.get_username() if job.created_by else None,
        },
        "progress": _progress(job),
        "state": _job_text(job, described),
        "error": job.reason if job.state == Job.State.FAILED else "",
        # Beyond OctoPrint: which farm job this is, for people reading the answer.
        "printfarm": {
            "job": job.pk,
            "state": job.state,
            "printer": job.printer_name or None,
            "url": page_url,
        },
    }


def profile(token: ApiToken) -> dict:
    """`GET /api/printerprofiles`' current profile: named for the token's printer or tag."""
    printer = token.printer if token.printer_id else None
    name = printer.name if printer else token.tag.name if token.tag_id else "printfarm"
    return {
        "id": PROFILE_ID,
        "name": name,
        "model": printer.model if printer else "",
        "default": True,
        "current": True,
        "extruder": {"count": 1},
    }


def connection_state(described: Described) -> dict:
    """`GET /api/connection`: always connected; the farm has no ports to choose."""
    return {
        "current": {
            "state": described.text,
            "port": "printfarm",
            "baudrate": None,
            "printerProfile": PROFILE_ID,
        },
        "options": {
            "ports": ["printfarm"],
            "baudrates": [],
            "printerProfiles": [{"id": PROFILE_ID, "name": "printfarm"}],
            "portPreference": "printfarm",
            "baudratePreference": None,
            "printerProfilePreference": PROFILE_ID,
            "autoconnect": True,
        },
    }
