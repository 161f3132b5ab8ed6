"""OctoPrint's REST API, 1.11.x (printer-protocols.md §2, mapping §6.1)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from printers.drivers.base import (
    DriverConfig,
    DriverError,
    PrinterBusy,
    PrintOptions,
    ProbeResult,
    ProgressCallback,
)
from printers.drivers.rest import (
    RestDriver,
    auth_error,
    busy_error,
    check_target,
    error_text,
    http_error,
    obj,
    text,
)
from printers.drivers.thumbnail_fetch import ThumbnailFetch, printer_path
from printers.state import PrinterStatus, State, clean_percent, clean_seconds, clean_temp
from printers.thumbnails import thumbnail_key

PRINTER_PATH = "/api/printer?exclude=sd,history"
JOB_PATH = "/api/job"
NOT_CONNECTED = "Printer not connected to OctoPrint (serial closed)"

# comm.py getStateString(), for when the flags don't decide. Anything starting with "Error"
# or "Offline after error" is an error (pre-1.5 OctoPrint appended the message to "Error: ").
_TEXT_STATES: dict[str, State] = {
    "Operational": State.IDLE,
    "Starting": State.PRINTING,
    "Starting print from SD": State.PRINTING,
    "Printing": State.PRINTING,
    "Printing from SD": State.PRINTING,
    "Sending file to SD": State.PRINTING,
    "Transferring file to SD": State.PRINTING,
    "Resuming": State.PRINTING,
    "Finishing": State.PRINTING,
    # Still moving: busy, not yet free for the next job.
    "Cancelling": State.PRINTING,
    "Pausing": State.PAUSED,
    "Paused": State.PAUSED,
    "Offline": State.CONNECTING,
    "Opening serial connection": State.CONNECTING,
    "Detecting serial connection": State.CONNECTING,
    "Detecting serial port": State.CONNECTING,
    "Detecting baudrate": State.CONNECTING,
    "Connecting": State.CONNECTING,
}
# In order: cancelling and pausing also come with printing set.
_BUSY_FLAGS = (
    ("cancelling", State.PRINTING),
    ("pausing", State.PAUSED),
    ("paused", State.PAUSED),
    ("printing", State.PRINTING),
)
# Texts that say nothing the state doesn't.
_PLAIN_TEXTS = frozenset({"Operational", "Printing", "Paused", "Offline"})


def _is_error_text(state_text: str) -> bool:
    return state_text.startswith(("Error", "Offline after error"))


def _from_text(state_text: str) -> State | None:
    if _is_error_text(state_text):
        return State.ERROR
    return _TEXT_STATES.get(state_text)


def parse_status(printer: object | None, job: object, *, thumbnail: str = "") -> PrinterStatus:
    """Map /api/printer and /api/job replies onto PrinterStatus; `printer` is None when
    /api/printer answered 409 (OctoPrint is up, its serial connection is not); `thumbnail` is
    the key of the job file's stored image."""
    if not isinstance(job, dict):
        raise DriverError("Printer sent an unexpected reply to /api/job (not a JSON object)")
    if printer is not None and not isinstance(printer, dict):
        raise DriverError("Printer sent an unexpected reply to /api/printer (not a JSON object)")
    job_text = text(job.get("state"))
    job_error = text(job.get("error"))

    if printer is None:
        if _is_error_text(job_text):
            # The job OctoPrint last ran stays in /api/job: its file and how far it got tell
            # a print the error cut short from one that had finished before it.
            return PrinterStatus(
                state=State.ERROR,
                message=job_error or job_text,
                progress=clean_percent(obj(job, "progress").get("completion")),
                file=_job_path(job),
            )
        if job_text != "Offline" and _from_text(job_text) is State.CONNECTING:
            return PrinterStatus(state=State.CONNECTING, message=f"OctoPrint is connecting ({job_text})")
        return PrinterStatus(state=State.CONNECTING, message=NOT_CONNECTED)

    printer_state = obj(printer, "state")
    flags = obj(printer_state, "flags")
    state_text = text(printer_state.get("text")) or job_text
    state = _state(flags, state_text)

    progress = obj(job, "progress")
    completion = clean_percent(progress.get("completion"))
    path = _job_path(job)
    if state is State.IDLE and state_text == "Operational" and path and completion == 100:
        # OctoPrint drops back to Operational when a print ends and only a PrintDone push
        # event says it finished; the job stays selected at 100 %, which a cancelled or
        # never-started job does not show.
        state = State.FINISHED

    if state is State.ERROR:
        message = job_error or state_text or "Printer error"
    elif state is State.CONNECTING and not state_text:
        message = "OctoPrint reported no printer state"
    elif state_text in _PLAIN_TEXTS:
        message = ""
    else:
        message = state_text

    temperature = obj(printer, "temperature")
    tool0 = obj(temperature, "tool0")
    bed = obj(temperature, "bed")
    return PrinterStatus(
        state=state,
        message=message,
        hotend_actual=clean_temp(tool0.get("actual")),
        hotend_target=clean_temp(tool0.get("target")),
        bed_actual=clean_temp(bed.get("actual")),
        bed_target=clean_temp(bed.get("target")),
        progress=completion,  # already a percentage, not a fraction
        file=path,
        elapsed=clean_seconds(progress.get("printTime")),
        remaining=clean_seconds(progress.get("printTimeLeft")),
        thumbnail=thumbnail if state in State.RUNNING or state is State.FINISHED else "",
    )


def thumbnail_url(entry: object) -> str | None:
    """A file entry's `thumbnail` (the PrusaSlicer Thumbnails plugin's, "plugin/
    prusaslicerthumbnails/thumbnail/cube.png?20240101"): a path under OctoPrint's address,
    never another host's; None when the entry has none."""
    return printer_path(text(entry.get("thumbnail")) if isinstance(entry, dict) else "")


def _job_path(job: Mapping[str, Any]) -> str:
    file = obj(obj(job, "job"), "file")
    return text(file.get("path")) or text(file.get("name"))


def _state(flags: Mapping[str, Any], state_text: str) -> State:
    """Flags first (they are booleans OctoPrint computes from its state machine), text second.
    Only a JSON true counts: "true" or 1 from a broken proxy is not a flag."""
    if flags.get("error") is True:
        return State.ERROR
    if flags.get("closedOrError") is True:
        return State.ERROR if _is_error_text(state_text) or not state_text else State.CONNECTING
    for name, state in _BUSY_FLAGS:
        if flags.get(name) is True:
            return state
    by_text = _from_text(state_text)
    if flags.get("ready") is True or flags.get("operational") is True:
        # "Finishing", "Starting", "Resuming" can come with only operational set.
        return by_text if by_text in State.RUNNING else State.IDLE
    return by_text if by_text is not None else State.CONNECTING


class OctoPrintDriver(RestDriver):
    protocol: ClassVar[str] = "octoprint"
    label: ClassVar[str] = "OctoPrint"

    def __init__(self, config: DriverConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        self._printer_request = self.status_request(self.url(PRINTER_PATH))
        self._job_request = self.status_request(self.url(JOB_PATH))
        self.thumbnail = ThumbnailFetch(self.base_url)

    def _no_api(self, path: str) -> DriverError:
        return DriverError(
            f"No OctoPrint API at {self.base_url} (HTTP 404 on {path}) — check the address and port",
            permanent=True,
        )

    async def fetch_status(self) -> PrinterStatus:
        # return_exceptions: wait for both, so a failure never leaves the other request running.
        printer_response, job_response = await asyncio.gather(
            self.send_status(self._printer_request),
            self.send_status(self._job_request),
            return_exceptions=True,
        )
        if isinstance(printer_response, BaseException):
            raise printer_response
        if isinstance(job_response, BaseException):
            raise job_response
        for response in (printer_response, job_response):
            if response.status_code in (401, 403):
                raise auth_error(response)
        if job_response.status_code == 404:
            raise self._no_api(JOB_PATH)
        if job_response.status_code != 200:
            raise http_error(job_response)
        job = self.parse_json(job_response, JOB_PATH)
        if printer_response.status_code == 409:
            return parse_status(None, job)
        if printer_response.status_code == 404:
            raise self._no_api("/api/printer")
        if printer_response.status_code != 200:
            raise http_error(printer_response)
        thumbnail = self._thumbnail_of(job) if isinstance(job, dict) else ""
        return parse_status(self.parse_json(printer_response, "/api/printer"), job, thumbnail=thumbnail)

    def _thumbnail_of(self, job: Mapping[str, Any]) -> str:
        """The stored image of the job's file; the first time a file is seen, its file entry
        (where a thumbnail plugin names one) and image are fetched in the background."""
        file = obj(obj(job, "job"), "file")
        path = _job_path(job)
        if self.thumbnail.wanted(path) and text(file.get("origin")) in ("local", ""):
            self.thumbnail.start(path, lambda: self._find_thumbnail(path))
        return self.thumbnail.shown(path)

    async def _find_thumbnail(self, path: str) -> tuple[str, Any] | None:
        response = await self.send("GET", self.url("/api/files/local/" + quote(path)))
        if response.status_code != 200:
            return None  # no such file (an SD card's), or no permission to list files
        entry = self.parse_json(response, "/api/files/local")
        found = thumbnail_url(entry)
        if found is None:
            return None
        assert isinstance(entry, dict)
        key = thumbnail_key(self.base_url, path, entry.get("size"), entry.get("date"), found)
        url = self.url("/" + found)
        return key, lambda: self.thumbnail.download(self, url)

    async def probe(self) -> ProbeResult:
        response = await self.send("GET", self.url("/api/version"))
        if response.status_code in (401, 403):
            raise auth_error(response)
        if response.status_code == 404:
            raise self._no_api("/api/version")
        if response.status_code != 200:
            raise http_error(response)
        version = self.parse_json(response, "/api/version")
        if not isinstance(version, dict) or not (text(version.get("text")) or text(version.get("server"))):
            raise DriverError(
                f"Printer sent an unexpected reply to /api/version — is {self.base_url} OctoPrint?"
            )
        firmware = text(version.get("text")) or f"OctoPrint {text(version.get('server'))}"
        status = await self.fetch_status()
        return ProbeResult(firmware=firmware, status=dataclasses.replace(status, firmware=firmware))

    async def _post(
        self, path: str, body: object, *, timeout: httpx.Timeout | None = None, what: str = "the command"
    ) -> httpx.Response:
        response = await self.send("POST", self.url(path), json=body, timeout=timeout)
        if not response.is_success:
            raise await self._command_error(response)
        # OctoPrint answers its commands 204 No Content; a body on a 2xx is not OctoPrint's
        # answer (a proxy, a garbled reply) and says nothing about whether it was carried out.
        if response.status_code != 204 and response.content.strip():
            raise DriverError(
                f"The printer's answer to {what} was unreadable; it may not have been carried out"
            )
        return response

    async def _command_error(self, response: httpx.Response) -> DriverError:
        """The one place a refused OctoPrint command becomes the operator's words: its 409
        texts (server/api/job.py, printer.py, 1.11) say what the printer's state forbids."""
        code = response.status_code
        if code in (401, 403):
            return auth_error(response)
        if code != 409:
            return http_error(response)
        refusal = error_text(response)
        if refusal.startswith("Printer is not operational"):
            return PrinterBusy(await self._not_operational())
        if refusal.startswith("Printer is neither printing nor paused"):
            return PrinterBusy("Nothing is printing")
        if refusal.startswith("Printer already has an active print job"):
            return PrinterBusy("A print is already running")
        return busy_error(response)

    async def _not_operational(self) -> str:
        """Why OctoPrint has no printer to send to, from /api/job's state (200 without one)."""
        try:
            response = await self.send_status(self._job_request)
            job = self.parse_json(response, JOB_PATH) if response.status_code == 200 else None
        except DriverError:
            job = None
        state_text = text(job.get("state")) if isinstance(job, dict) else ""
        if _is_error_text(state_text):
            error = text(job.get("error")) if isinstance(job, dict) else ""
            return "OctoPrint lost the printer after an error" + (f": {error}" if error else "")
        if state_text != "Offline" and _from_text(state_text) is State.CONNECTING:
            return f"OctoPrint is still connecting to the printer ({state_text})"
        return "OctoPrint is not connected to the printer"

    async def pause(self) -> None:
        # Always an explicit action: without one OctoPrint toggles, and a retried or doubled
        # request would resume the print it just paused.
        await self._post(JOB_PATH, {"command": "pause", "action": "pause"})

    async def resume(self) -> None:
        await self._post(JOB_PATH, {"command": "pause", "action": "resume"})

    async def cancel(self) -> None:
        await self._post(JOB_PATH, {"command": "cancel"})

    async def emergency_stop(self) -> None:
        # OctoPrint force-sends M112 ahead of its queue, then closes the serial port.
        await self._post("/api/printer/command", {"command": "M112"})

    async def set_temperature(self, *, hotend: float | None = None, bed: float | None = None) -> None:
        hotend = None if hotend is None else check_target("Hotend", hotend)
        bed = None if bed is None else check_target("Bed", bed)
        if hotend is not None:
            await self._post("/api/printer/tool", {"command": "target", "targets": {"tool0": hotend}})
        if bed is not None:
            await self._post("/api/printer/bed", {"command": "target", "target": bed})

    async def start(self, remote_name: str, options: PrintOptions | None = None) -> None:
        path = quote(remote_name.strip("/"), safe="/")
        await self._post(
            f"/api/files/local/{path}",
            {"command": "select", "print": True},
            timeout=self._command_timeout,
            what="the start",
        )

    async def upload(
        self,
        path: Path,
        *,
        remote_name: str,
        start: bool = False,
        progress: ProgressCallback | None = None,
        options: PrintOptions | None = None,
    ) -> None:
        folder, _, filename = remote_name.strip("/").rpartition("/")
        fields: dict[str, str] = {}
        if folder:
            fields["path"] = folder
        if start:
            fields["select"] = "true"
            fields["print"] = "true"
        response = await self.send_file(
            self.url("/api/files/local"), path, filename=filename, fields=fields, progress=progress
        )
        code = response.status_code
        if code in (401, 403):
            raise auth_error(response)
        if code == 409:
            raise busy_error(response)  # would overwrite the file being printed
        if not response.is_success:
            raise http_error(response)
        # OctoPrint's 201 names the stored file ({"done": true, "files": {"local": …}});
        # without it nothing says the file was kept.
        try:
            reply = self.parse_json(response, "/api/files/local")
        except DriverError:
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("files"), dict):
            raise DriverError("The printer's answer to the upload was unreadable; the file may not be stored")
        if not start:
            return
        # If the printer isn't operational or is busy, OctoPrint silently drops print=true.
        if reply.get("effectivePrint") is not True:
            raise PrinterBusy("Uploaded, but the printer did not start: it is busy")
