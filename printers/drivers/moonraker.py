"""Klipper through Moonraker's HTTP API (printer-protocols.md §1, mapping §6.1)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from printers.drivers.base import (
    DriverConfig,
    DriverError,
    PrinterBusy,
    PrintOptions,
    PrintRecord,
    ProbeResult,
    ProgressCallback,
)
from printers.drivers.rest import (
    RestDriver,
    auth_error,
    busy_error,
    check_target,
    error_text,
    format_temp,
    http_error,
    number,
    obj,
    text,
)
from printers.drivers.thumbnail_fetch import ThumbnailFetch
from printers.state import PrinterStatus, State, clean_percent, clean_seconds, clean_temp
from printers.thumbnails import choose_size, thumbnail_key

# Everything a dashboard needs in one request; built once, this is the 1,000-polls/s path.
STATUS_PATH = (
    "/printer/objects/query?webhooks&print_stats&virtual_sdcard&display_status"
    "&extruder=temperature,target&heater_bed=temperature,target"
)

# Moonraker runs without Klippy (the Klipper service stopped, or not up yet since Moonraker started).
_NO_KLIPPY = "Moonraker has no connection to Klipper — is the Klipper service running?"
_MISSING_FILE = "Unable to open file"  # Klipper's SDCARD_PRINT_FILE of a file not on its disk

_JOB_STATES: dict[str, tuple[State, str]] = {
    "standby": (State.IDLE, ""),
    "printing": (State.PRINTING, ""),
    "paused": (State.PAUSED, ""),
    "complete": (State.FINISHED, ""),
    # Klipper keeps "cancelled" until the next job; the printer is free again.
    "cancelled": (State.IDLE, "Print cancelled"),
    "error": (State.ERROR, ""),
}


# Progress a print must reach before its time since the start says how long the rest takes,
# when that is all there is: the first few percent are start G-code run while heating.
EXTRAPOLATE_FROM = 0.05


def print_seconds(print_duration: float | None, total_duration: float | None) -> float | None:
    """How long a print has printed. Klipper's print_duration leaves out pauses and the time
    before the first extrusion (klippy/extras/print_stats.py), so it reads 0 while the printer
    heats, and for the whole print on a host without an extruder: then the time since the
    start (total_duration, pauses included) is the only clock there is."""
    if print_duration is not None and print_duration > 0:
        return print_duration
    return total_duration if total_duration else print_duration


def waiting_for_clock(payload: object) -> str:
    """The file of a running print whose print clock has not started (its slicer estimate
    tells the time left), or ""."""
    result = payload.get("result") if isinstance(payload, dict) else None
    objects = result.get("status") if isinstance(result, dict) else None
    print_stats = obj(objects, "print_stats") if isinstance(objects, dict) else {}
    if print_stats.get("state") not in ("printing", "paused"):
        return ""
    started = (number(print_stats.get("print_duration")) or 0) > 0
    return "" if started else text(print_stats.get("filename"))


def printed_file(payload: object) -> str:
    """The file of a print running, paused or just done (its thumbnail is worth showing), or ""."""
    result = payload.get("result") if isinstance(payload, dict) else None
    objects = result.get("status") if isinstance(result, dict) else None
    print_stats = obj(objects, "print_stats") if isinstance(objects, dict) else {}
    if print_stats.get("state") not in ("printing", "paused", "complete"):
        return ""
    return text(print_stats.get("filename"))


def thumbnail_path(filename: str, metadata: Mapping[str, Any]) -> str | None:
    """The path under gcodes/ of the best of a file's `thumbnails` in its metadata (their
    relative_path is relative to the file's folder, Moonraker's `.thumbs/`), or None."""
    found = metadata.get("thumbnails")
    rows = [t for t in found if isinstance(t, dict)] if isinstance(found, list) else []
    usable = []
    for row in rows:
        rel = text(row.get("relative_path"))
        width, height = number(row.get("width")), number(row.get("height"))
        parts = PurePosixPath(rel).parts
        if not rel or rel.startswith("/") or "://" in rel or ".." in parts or not width or not height:
            continue
        usable.append((rel, (int(width), int(height))))
    chosen = choose_size([size for _, size in usable])
    if chosen is None:
        return None
    folder = PurePosixPath(filename).parent
    return str(folder / usable[chosen][0]) if str(folder) != "." else usable[chosen][0]


def parse_status(payload: object, *, estimate: float | None = None, thumbnail: str = "") -> PrinterStatus:
    """Map a /printer/objects/query reply onto PrinterStatus; `estimate` is the slicer's print
    time of the loaded file (s), when known; `thumbnail` the key of its stored image.

    Fields that are missing or of the wrong type read as unknown (None / ""); only a reply
    without the {"result": {"status": {...}}} envelope is an error.
    """
    result = payload.get("result") if isinstance(payload, dict) else None
    objects = result.get("status") if isinstance(result, dict) else None
    if not isinstance(objects, dict):
        raise DriverError("Printer sent an unexpected reply (no result.status) — is this a Moonraker API?")
    webhooks = obj(objects, "webhooks")
    print_stats = obj(objects, "print_stats")
    display = obj(objects, "display_status")
    extruder = obj(objects, "extruder")
    bed = obj(objects, "heater_bed")

    klippy_state = webhooks.get("state")
    if isinstance(klippy_state, str) and klippy_state != "ready":
        if klippy_state in ("error", "shutdown"):
            state, message = State.ERROR, text(webhooks.get("state_message")) or f"Klipper {klippy_state}"
        else:
            state, message = State.CONNECTING, f"Klipper not ready: {klippy_state}"
    else:
        job_state = print_stats.get("state")
        mapped = _JOB_STATES.get(job_state) if isinstance(job_state, str) else None
        if mapped is None:
            # Klippy answered without a job state we know (empty status during startup, or a
            # newer Klipper): not ready for work, but not a printer fault either.
            state = State.CONNECTING
            message = (
                f"Klipper reported an unknown print state {job_state!r}"
                if isinstance(job_state, str)
                else "Klipper reported no print state"
            )
        else:
            state, message = mapped
            if state is State.ERROR:
                message = text(print_stats.get("message")) or "Print failed"

    m117 = text(display.get("message"))
    if m117:
        message = f"{message} · {m117}" if message else m117

    fraction = number(obj(objects, "virtual_sdcard").get("progress"))
    if fraction is None:
        fraction = number(display.get("progress"))
    if fraction is not None:
        fraction = min(max(fraction, 0.0), 1.0)
    duration = number(print_stats.get("print_duration"))
    total = number(print_stats.get("total_duration"))

    # Klipper reports no ETA; extrapolate from the byte progress of the file (crude while the
    # first layers are slow, but it needs no metadata request on the polling path). Until
    # Klipper's print clock starts, 0 s printed says nothing about the rest: the slicer's
    # estimate does (one metadata request per file), else the time since the start once the
    # print is well under way; otherwise it is unknown, never "0 s left".
    remaining: int | None = None
    if state is State.FINISHED:
        remaining = 0
    elif state in State.RUNNING and fraction is not None:
        if duration is not None and duration > 0:
            if fraction:
                remaining = clean_seconds(max(duration / fraction - duration, 0.0))
        elif estimate is not None and estimate > 0:
            remaining = clean_seconds(estimate * (1.0 - fraction))
        elif total and fraction >= EXTRAPOLATE_FROM:
            remaining = clean_seconds(max(total / fraction - total, 0.0))

    filename = print_stats.get("filename")
    return PrinterStatus(
        state=state,
        message=message,
        hotend_actual=clean_temp(extruder.get("temperature")),
        hotend_target=clean_temp(extruder.get("target")),
        bed_actual=clean_temp(bed.get("temperature")),
        bed_target=clean_temp(bed.get("target")),
        progress=None if fraction is None else clean_percent(fraction * 100),
        file=text(filename),
        elapsed=clean_seconds(print_seconds(duration, total)),
        remaining=remaining,
        thumbnail=thumbnail,
    )


def parse_history(payload: object, remote_name: str) -> PrintRecord | None:
    """The newest entry of /server/history/list for `remote_name` (compared by file name:
    history keeps the path under gcodes/)."""
    result = payload.get("result") if isinstance(payload, dict) else None
    jobs = result.get("jobs") if isinstance(result, dict) else None
    if not isinstance(jobs, list):
        raise DriverError("Printer sent an unexpected job history (no result.jobs)")
    wanted = remote_name.rsplit("/", 1)[-1]
    newest: tuple[float, Mapping[str, Any]] | None = None
    for entry in jobs:
        if not isinstance(entry, dict) or text(entry.get("filename")).rsplit("/", 1)[-1] != wanted:
            continue
        started = number(entry.get("start_time")) or 0.0
        if newest is None or started > newest[0]:
            newest = (started, entry)
    if newest is None:
        return None
    entry = newest[1]
    return PrintRecord(
        file=text(entry.get("filename")),
        outcome=text(entry.get("status")) or "unknown",
        print_seconds=clean_seconds(
            print_seconds(number(entry.get("print_duration")), number(entry.get("total_duration")))
        ),
    )


def firmware_name(server_info: Mapping[str, Any], printer_info: Mapping[str, Any] | None) -> str:
    moonraker = _version(server_info.get("moonraker_version"))
    klipper = _version(printer_info.get("software_version")) if printer_info is not None else ""
    return f"Moonraker {moonraker or '(unknown version)'} · Klipper {klipper or '(not ready)'}"


def _version(value: object) -> str:
    version = text(value)
    return f"v{version}" if version[:1].isdigit() else version


class MoonrakerDriver(RestDriver):
    protocol: ClassVar[str] = "moonraker"
    label: ClassVar[str] = "Klipper (Moonraker)"

    def __init__(self, config: DriverConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        self._status_request = self.status_request(self.url(STATUS_PATH))
        self._server_info_url = self.url("/server/info")
        self._metadata_url = self.url("/server/files/metadata")
        self._estimate: tuple[str, float | None] | None = None  # (file, slicer estimate s)
        self.thumbnail = ThumbnailFetch(self.base_url)

    async def fetch_status(self) -> PrinterStatus:
        response = await self.send_status(self._status_request)
        code = response.status_code
        if code == 200:
            return await self.reading(self.parse_json(response, "/printer/objects/query"))
        if code in (401, 403):
            raise auth_error(response)
        if code in (400, 404, 503):
            # 404: Klippy never connected since Moonraker started (its endpoints don't exist
            # yet); 503: Klippy disconnected; 400: Klippy rejects the query. Or a wrong URL
            # answering 404 for everything: /server/info tells which (Moonraker 0.11, §1.6).
            return await self._not_ready_status(response)
        raise http_error(response)

    async def reading(self, payload: object) -> PrinterStatus:
        """A /printer/objects/query status (or a subscription's merged copy) as a reading, with
        what the file's metadata adds: the slicer's estimate and the printer's thumbnail."""
        filename = printed_file(payload)
        estimate = await self._slicer_estimate(filename) if filename else None
        return parse_status(payload, estimate=estimate, thumbnail=self.thumbnail.shown(filename))

    async def _slicer_estimate(self, filename: str) -> float | None:
        """The file's estimated_time from Moonraker's metadata, asked once per file (a failed
        ask too: the poll must not wait on it again; the time left is then extrapolated).
        The same answer names its thumbnails: the best is fetched in the background."""
        if self._estimate is not None and self._estimate[0] == filename:
            return self._estimate[1]
        seconds = None
        try:
            response = await self._get_unless_missing(self._metadata_url, params={"filename": filename})
            payload = self.parse_json(response, "/server/files/metadata") if response is not None else None
        except DriverError:
            payload = None
        result = payload.get("result") if isinstance(payload, dict) else None
        if isinstance(result, dict):
            seconds = number(result.get("estimated_time"))
            self._thumbnail_of(filename, result)
        self._estimate = (filename, seconds if seconds is not None and seconds > 0 else None)
        return self._estimate[1]

    def _thumbnail_of(self, filename: str, metadata: Mapping[str, Any]) -> None:
        path = thumbnail_path(filename, metadata)
        if path is None or not self.thumbnail.wanted(filename):
            return
        # The file's size and time tell a re-sliced file of the same name from the old one.
        key = thumbnail_key(self.base_url, filename, metadata.get("size"), metadata.get("modified"), path)
        url = self.url("/server/files/gcodes/" + quote(path))

        async def find() -> tuple[str, Any]:
            return key, lambda: self.thumbnail.download(self, url)

        self.thumbnail.start(filename, find)

    async def _server_info(self) -> Mapping[str, Any] | None:
        """/server/info's result, or None when nothing at this address speaks Moonraker."""
        response = await self._get_unless_missing(self._server_info_url)
        if response is None:
            return None
        try:
            payload = self.parse_json(response, "/server/info")
        except DriverError:
            return None
        result = payload.get("result") if isinstance(payload, dict) else None
        if not isinstance(result, dict) or not ("klippy_state" in result or "moonraker_version" in result):
            return None
        return result

    async def _get_unless_missing(
        self, url: httpx.URL, params: Mapping[str, str] | None = None
    ) -> httpx.Response | None:
        """A 200 reply, or None for a 404 (no such endpoint or component here)."""
        response = await self.send("GET", url, params=params)
        if response.status_code in (401, 403):
            raise auth_error(response)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise http_error(response)
        return response

    def _no_api(self) -> DriverError:
        return DriverError(
            f"No Moonraker API at {self.base_url} (/server/info is missing) — check the address and port",
            permanent=True,
        )

    async def _not_ready_status(self, response: httpx.Response) -> PrinterStatus:
        info = await self._server_info()
        if info is None:
            raise self._no_api()
        klippy_state = text(info.get("klippy_state")) or "unknown"
        if klippy_state in ("error", "shutdown"):
            return PrinterStatus(state=State.ERROR, message=f"Klipper {klippy_state}")
        if klippy_state == "ready":
            # Klippy became ready between the two requests, or the query itself failed.
            raise http_error(response)
        return PrinterStatus(state=State.CONNECTING, message=f"Klipper not ready: {klippy_state}")

    async def _printer_info(self) -> Mapping[str, Any] | None:
        response = await self.send("GET", self.url("/printer/info"))
        if response.status_code in (401, 403):
            raise auth_error(response)
        if response.status_code != 200:
            return None  # Klippy not connected: the probe still reports Moonraker
        try:
            payload = self.parse_json(response, "/printer/info")
        except DriverError:
            return None
        result = payload.get("result") if isinstance(payload, dict) else None
        return result if isinstance(result, dict) else None

    async def probe(self) -> ProbeResult:
        info = await self._server_info()
        if info is None:
            raise self._no_api()
        printer_info, status = await asyncio.gather(self._printer_info(), self.fetch_status())
        firmware = firmware_name(info, printer_info)
        return ProbeResult(firmware=firmware, status=dataclasses.replace(status, firmware=firmware))

    async def _command(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: object = None,
        timeout: httpx.Timeout | None = None,
        what: str = "the command",
    ) -> None:
        response = await self.send("POST", self.url(path), params=params, json=json, timeout=timeout)
        if not response.is_success:
            raise await self._command_error(response)
        # Moonraker answers {"result": "ok"} once Klippy took the command; a 2xx without it
        # (a proxy's page, a truncated body) says nothing about whether it was carried out.
        self._expect_result(response, path, what)

    def _expect_result(self, response: httpx.Response, path: str, what: str) -> object:
        try:
            payload = self.parse_json(response, path)
        except DriverError:
            payload = None
        if not isinstance(payload, dict) or "result" not in payload:
            raise DriverError(
                f"The printer's answer to {what} was unreadable; it may not have been carried out"
            )
        return payload["result"]

    async def _command_error(self, response: httpx.Response) -> DriverError:
        """The one place a refused Moonraker command becomes the operator's words.

        404: Klippy's endpoints (gcode/script, emergency_stop) don't exist in Moonraker until
        Klippy first connects; 503 "Klippy Host not connected": it is gone; 400: Klippy's
        refusal, its state message when it is not ready (startup, shutdown, error). Which one
        it is, /server/info's klippy_state says (Moonraker 0.9–0.11, printer-protocols §1.6).
        """
        code = response.status_code
        if code == 401:
            return auth_error(response)
        if code in (400, 404, 503):
            try:
                info = await self._server_info()
                if info is None:
                    return self._no_api()
                not_ready = await self._klipper_not_ready(info)
            except DriverError:
                not_ready = ""  # can't tell: the refusal's own words below
            if not_ready:
                return PrinterBusy(f"Klipper is not ready: {not_ready}")
        if code == 400 and _MISSING_FILE in error_text(response):
            # SDCARD_PRINT_FILE of a file that isn't there: retrying the start won't find it.
            return DriverError(f"The printer has no such file: {error_text(response)}", permanent=True)
        if code in (400, 403):
            # Klippy's refusal with Klipper ready ("SD busy"); 403 a file in use.
            return busy_error(response)
        if code == 503:
            return PrinterBusy(f"Klipper is not ready: {error_text(response) or _NO_KLIPPY}")
        return http_error(response)

    async def _klipper_not_ready(self, info: Mapping[str, Any]) -> str:
        """What keeps Klipper from taking commands, from /server/info (and Klipper's own state
        message from /printer/info); "" when it is ready."""
        klippy_state = text(info.get("klippy_state"))
        if info.get("klippy_connected") is False or klippy_state == "disconnected":
            return _NO_KLIPPY
        if klippy_state in ("", "ready"):
            return ""  # ready, or a Moonraker that doesn't say: the refusal's own words
        printer_info = await self._printer_info()
        message = text(printer_info.get("state_message")) if printer_info is not None else ""
        # Klipper's state messages are wrapped over several lines.
        return " ".join(message.split()) or f"Klipper is in {klippy_state}"

    async def pause(self) -> None:
        await self._command("/printer/print/pause", what="the pause")

    async def resume(self) -> None:
        await self._command("/printer/print/resume", what="the resume")

    async def cancel(self) -> None:
        await self._command("/printer/print/cancel", what="the cancel")

    async def emergency_stop(self) -> None:
        # Not M112 through gcode/script: that waits behind queued G-code (§1.5).
        await self._command("/printer/emergency_stop", what="the emergency stop")

    async def set_temperature(self, *, hotend: float | None = None, bed: float | None = None) -> None:
        lines = []
        # M104/M140 set the target and return; M109/M190 would hold the request until the
        # heater got there.
        if hotend is not None:
            lines.append(f"M104 S{format_temp(check_target('Hotend', hotend))}")
        if bed is not None:
            lines.append(f"M140 S{format_temp(check_target('Bed', bed))}")
        if lines:
            await self._command(
                "/printer/gcode/script", json={"script": "\n".join(lines)}, timeout=self._command_timeout
            )

    async def start(self, remote_name: str, options: PrintOptions | None = None) -> None:
        response = await self.send(
            "POST",
            self.url("/printer/print/start"),
            params={"filename": remote_name},
            timeout=self._command_timeout,
        )
        if not response.is_success:
            raise await self._command_error(response)
        if self._expect_result(response, "/printer/print/start", "the start") != "ok":
            raise DriverError("The printer's answer to the start was unreadable")

    async def print_history(self, remote_name: str) -> PrintRecord | None:
        # The newest few entries: the one we look for ended moments ago. Moonraker without the
        # [history] component answers 404; that is "no history", not an error.
        response = await self._get_unless_missing(
            self.url("/server/history/list"), params={"limit": "10", "order": "desc"}
        )
        if response is None:
            return None
        return parse_history(self.parse_json(response, "/server/history/list"), remote_name)

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
        fields = {"root": "gcodes"}
        if folder:
            fields["path"] = folder
        if start:
            fields["print"] = "true"
        response = await self.send_file(
            self.url("/server/files/upload"), path, filename=filename, fields=fields, progress=progress
        )
        code = response.status_code
        if code == 401:
            raise auth_error(response)
        if code == 403:
            raise busy_error(response)  # "File is loaded, upload not permitted"
        if not response.is_success:
            raise http_error(response)
        # The reply names the stored file ({"item": …, "action": "create_file"}, some versions
        # wrapped in "result"); without it nothing says the file was kept.
        try:
            payload = self.parse_json(response, "/server/files/upload")
        except DriverError:
            payload = None
        result = payload.get("result", payload) if isinstance(payload, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("item"), dict):
            raise DriverError("The printer's answer to the upload was unreadable; the file may not be stored")
        if not start:
            return
        if result.get("print_started") is not True:
            queued = ""
            if result.get("print_queued") is True:
                queued = " (Moonraker queued it in its own job queue)"
            raise PrinterBusy(f"Uploaded, but the printer did not start: it is busy{queued}")
