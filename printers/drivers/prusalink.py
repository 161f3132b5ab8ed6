"""PrusaLink's v1 API (printer-protocols.md §3, mapping §6.1): Prusa's Buddy firmware
(MK4/MK3.9/XL/MINI/Core One) and Prusa-Link on a Raspberry Pi (MK3/MK2.5).

One request at a time per printer, uploads included: Buddy's web server has three connection
slots for every client on the network (Prusa Connect, PrusaSlicer, the printer's own page),
so a farm poller holds one keep-alive connection and never a second request beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar
from urllib.parse import quote

import httpx

from printers.drivers.base import (
    Capability,
    DriverAuthError,
    DriverConfig,
    DriverError,
    PrinterBusy,
    PrintOptions,
    ProbeResult,
    ProgressCallback,
)
from printers.drivers.prusalink_auth import PrusaDigest, is_stale
from printers.drivers.prusalink_status import (
    JobInfo,
    firmware_text,
    job_id,
    parse_job,
    parse_status,
    printer_state,
    status_storage,
    storage_names,
)
from printers.drivers.rest import UPLOAD_CHUNK, RestDriver, error_text, file_chunks, http_error, mb
from printers.drivers.thumbnail_fetch import ThumbnailFetch
from printers.state import PrinterStatus
from printers.thumbnails import thumbnail_key

STATUS_PATH = "/api/v1/status"
JOB_PATH = "/api/v1/job"
INFO_PATH = "/api/v1/info"
STORAGE_PATH = "/api/v1/storage"
VERSION_PATH = "/api/version"
WHERE_PASSWORD = "the printer's menu: Settings → Network → PrusaLink"
# Buddy takes these (anything else: 415 "Not a GCODE"); Prusa-Link the text ones.
GCODE_SUFFIXES = (".gcode", ".gc", ".g", ".gco", ".bgcode", ".bgc")
BGCODE_MAGIC = b"GCDE"


def _job_path(job: int) -> str:
    return f"{JOB_PATH}/{job}"


class RawFile:
    """A file as a raw request body (PUT, not multipart): chunks read off the event loop,
    an exact Content-Length (Buddy answers 411 to a chunked body), progress as it goes."""

    def __init__(self, path: Path, progress: ProgressCallback | None) -> None:
        self.path, self.progress = path, progress
        try:
            self.size = path.stat().st_size
        except OSError as exc:
            raise DriverError(f"Cannot read {path.name}: {exc.strerror or exc}", permanent=True) from exc
        self.sent = 0
        self.started = False

    async def stream(self, file: BinaryIO) -> AsyncIterator[bytes]:
        self.started, self.sent = True, 0
        if self.progress:
            self.progress(0, self.size)
        async for chunk in file_chunks(file, self.path, self.size, UPLOAD_CHUNK):
            yield chunk
            self.sent += len(chunk)
            if self.progress:
                self.progress(self.sent, self.size)


class PrusaLinkDriver(RestDriver):
    protocol: ClassVar[str] = "prusalink"
    label: ClassVar[str] = "Prusa (PrusaLink)"
    # No temperature, G-code or emergency-stop endpoints in PrusaLink v1 (spec and Buddy).
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.PAUSE, Capability.RESUME, Capability.CANCEL}
    )
    # Buddy serves three requests at once for every client on the network: one request every
    # 1.5 s over one kept-alive connection leaves the other two to Prusa Connect and
    # PrusaSlicer, and keeps a printer's status under 2 s old (the farm's target).
    poll_interval: ClassVar[float | None] = 1.5

    def __init__(self, config: DriverConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        self.digest: PrusaDigest | None = None
        if config.username:
            self.digest = PrusaDigest(config.username, config.api_key)
            self._headers = None  # RestDriver's X-Api-Key: the password goes by digest only
        # Buddy's error pages come as {"title", "message"} when asked for JSON, else as text.
        self._headers = {**(self._headers or {}), "Accept": "application/json"}
        self._lock = asyncio.Lock()
        self._uploading = False
        self._last: PrinterStatus | None = None
        self._job: JobInfo | None = None
        self.thumbnail = ThumbnailFetch(self.base_url)
        self._storage = ""
        # A file's name -> the path printfarm last sent or started it under (see parse_job).
        self._names: dict[str, str] = {}
        # Requests sent, by path without the query (tests check which ones a poll makes).
        self.requests: dict[str, int] = {}

    # -- transport ------------------------------------------------------------------------

    def auth_error(self, response: httpx.Response) -> DriverError:
        code = response.status_code
        if is_stale(response):
            # The password was right; every nonce aged out before it arrived.
            return DriverError(f"PrusaLink's login nonces kept going stale before {self.base_url} saw them")
        if self.digest is not None:
            return DriverAuthError(
                f"PrusaLink refused user {self.config.username!r} and its password (HTTP {code})"
                f" — the password is in {WHERE_PASSWORD}"
            )
        if not self.config.api_key:
            return DriverAuthError(
                f"PrusaLink asks for a password (HTTP {code}) — enter the API key or the user"
                f" maker's password from {WHERE_PASSWORD}"
            )
        return DriverAuthError(
            f"PrusaLink refused the API key (HTTP {code}) — check it against {WHERE_PASSWORD}"
        )

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, under the printer's lock, with its credentials; 401/403 raise."""
        async with self._lock:
            return await self._send_locked(method, path, **kwargs)

    async def _send_locked(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.requests[path] = self.requests.get(path, 0) + 1
        if self.digest is not None:
            kwargs["auth"] = self.digest
        response = await self.send(method, self.url(path), **kwargs)
        if response.status_code in (401, 403):
            raise self.auth_error(response)
        return response

    def _no_api(self, path: str) -> DriverError:
        return DriverError(
            f"No PrusaLink v1 API at {self.base_url} (HTTP 404 on {path}) — check the address;"
            " older firmware needs an update (Buddy 4.4+, Prusa-Link 0.7+)",
            permanent=True,
        )

    async def _get_json(self, path: str) -> object:
        response = await self._send("GET", path)
        if response.status_code == 404:
            raise self._no_api(path)
        if response.status_code != 200:
            raise http_error(response)
        return self.parse_json(response, path)

    # -- status ---------------------------------------------------------------------------

    async def fetch_status(self) -> PrinterStatus:
        if self._uploading and self._last is not None:
            # The one connection is busy with the upload: its progress shows on the job, the
            # printer's status resumes with the next poll after it.
            return self._last
        status = await self._get_json(STATUS_PATH)
        if not isinstance(status, dict):
            raise DriverError("Printer sent an unexpected reply to /api/v1/status (not a JSON object)")
        await self._learn_job(status)
        if job_id(status) is None and printer_state(status) != "FINISHED":
            # Buddy names no job once a print is over; FINISHED still shows the last one's
            # file, anything after it (READY, a new print) must not.
            self._job = None
        self._storage = self._storage or status_storage(status)
        thumbnail = self.thumbnail.shown(self._job.file) if self._job is not None else ""
        reading = parse_status(status, self._job, thumbnail=thumbnail)
        self._last = reading
        return reading

    async def _learn_job(self, status: Mapping[str, Any]) -> None:
        """/api/v1/job only when the status names a job not seen yet: its file and estimate
        don't change while it runs."""
        current = job_id(status)
        if current is None or (self._job is not None and self._job.id == current):
            return
        response = await self._send("GET", JOB_PATH)
        if response.status_code == 204:  # ended in between
            return
        if response.status_code != 200:
            raise http_error(response)
        job = parse_job(self.parse_json(response, JOB_PATH), known_names=self._names)
        if job is not None:
            self._job = job
            self._thumbnail_of(job)

    def _thumbnail_of(self, job: JobInfo) -> None:
        """The first time a file is printed, fetch the printer's image of it in the background:
        a print started on the printer's screen or from PrusaSlicer has none of ours."""
        if not self.thumbnail.wanted(job.file) or not job.thumbnail:
            return
        key = thumbnail_key(self.base_url, job.file, job.version, job.thumbnail)
        url = self.url("/" + job.thumbnail)

        async def find() -> tuple[str, Callable[[], Awaitable[bytes]]]:
            return key, lambda: self._download(url)

        self.thumbnail.start(job.file, find)

    async def _download(self, url: httpx.URL) -> bytes:
        # Under the printer's lock like every request (Buddy serves three at once for all its
        # clients); counted in thumbnail.fetches, not in `requests` (a poll never makes it).
        async with self._lock:
            return await self.thumbnail.download(self, url, auth=self.digest)

    async def probe(self) -> ProbeResult:
        version = await self._get_json(VERSION_PATH)
        if not isinstance(version, dict) or not (version.get("text") or version.get("api")):
            raise DriverError(
                f"Printer sent an unexpected reply to /api/version — is {self.base_url} PrusaLink?"
            )
        firmware = firmware_text(version)
        info = await self._get_json(INFO_PATH)  # 404 here: a PrusaLink without the v1 API
        if not isinstance(info, dict):
            raise DriverError("Printer sent an unexpected reply to /api/v1/info (not a JSON object)")
        status = await self.fetch_status()
        return ProbeResult(firmware=firmware, status=dataclasses.replace(status, firmware=firmware))

    # -- commands -------------------------------------------------------------------------

    async def _current_job(self) -> int:
        """The running job's id, read now: a web command's driver has never polled, and the
        poller's may be a print behind."""
        status = await self._get_json(STATUS_PATH)
        current = job_id(status) if isinstance(status, dict) else None
        if current is None:
            raise PrinterBusy("Nothing is printing")
        return current

    async def _job_command(self, method: str, action: str, what: str) -> None:
        current = await self._current_job()
        for attempt in (1, 2):
            path = _job_path(current) + (f"/{action}" if action else "")
            response = await self._send(method, path, timeout=self._command_timeout)
            if response.status_code == 404 and attempt == 1:
                # The job ended (or another began) since the status: ask again, once.
                latest = await self._current_job()
                if latest != current:
                    current = latest
                    continue
                raise PrinterBusy(f"The printer no longer runs job {current}")
            self._check_command(response, what)
            return

    def _check_command(self, response: httpx.Response, what: str) -> None:
        code = response.status_code
        if code == 409:
            words = error_text(response)
            raise PrinterBusy(
                f"The printer refused {what} in its current state" + (f": {words}" if words else "")
            )
        if code == 404:
            raise PrinterBusy("Nothing is printing")
        if not response.is_success:
            raise http_error(response)
        if code != 204 and response.content.strip():
            # Buddy and Prusa-Link answer 204 No Content; a body is someone else's answer.
            raise DriverError(
                f"The printer's answer to {what} was unreadable; it may not have been carried out"
            )

    async def pause(self) -> None:
        await self._job_command("PUT", "pause", "the pause")

    async def resume(self) -> None:
        await self._job_command("PUT", "resume", "the resume")

    async def cancel(self) -> None:
        # Buddy takes a cancel in PRINTING, PAUSED and ATTENTION.
        await self._job_command("DELETE", "", "the cancel")

    async def emergency_stop(self) -> None:
        raise DriverError(
            "PrusaLink has no emergency stop: use Cancel, or the printer's reset button", permanent=True
        )

    async def set_temperature(self, *, hotend: float | None = None, bed: float | None = None) -> None:
        raise DriverError(
            "PrusaLink can't set temperatures over the network: preheat from the printer's menu",
            permanent=True,
        )

    # -- files ----------------------------------------------------------------------------

    async def _storage_name(self) -> str:
        """Where files go: what /api/v1/storage lists as writable (Buddy "usb", Prusa-Link
        "local"); a Buddy without its USB drive lists none. Asked before each upload, so a
        missing drive is said before the file is sent. Call with the lock held."""
        response = await self._send_locked("GET", STORAGE_PATH)
        try:
            listing = self.parse_json(response, STORAGE_PATH) if response.status_code == 200 else None
        except DriverError:
            listing = None  # unreadable: the PUT's own answer says whether a drive is there
        if listing is not None:
            names = storage_names(listing)
            if not names:
                raise DriverError("No USB drive in the printer: insert one")
            self._storage = names[0]
        elif response.status_code not in (200, 404):
            raise http_error(response)
        # 404: a firmware without the listing; the storage the status named, else Buddy's.
        self._storage = self._storage or "usb"
        return self._storage

    def _file_path(self, storage: str, remote_name: str) -> str:
        return f"/api/v1/files/{quote(storage, safe='')}/{quote(remote_name.strip('/'), safe='/')}"

    def _remember(self, remote_name: str) -> None:
        self._names[remote_name.rsplit("/", 1)[-1]] = remote_name.strip("/")

    async def start(self, remote_name: str, options: PrintOptions | None = None) -> None:
        async with self._lock:
            storage = self._storage or await self._storage_name()
            self._remember(remote_name)
            response = await self._send_locked(
                "POST", self._file_path(storage, remote_name), timeout=self._command_timeout
            )
        code = response.status_code
        if code == 404:
            raise DriverError(f"No file {remote_name!r} on the printer's {storage} storage", permanent=True)
        if code == 409:
            words = error_text(response)
            # Buddy starts only from IDLE, READY, FINISHED or STOPPED: not while printing, nor
            # while a dialog on its screen waits.
            raise PrinterBusy(
                "The printer can't print right now"
                + (f": {words}" if words else " (busy, or its screen waits)")
            )
        if not response.is_success:
            raise http_error(response)
        await self._note_started()

    async def _note_started(self) -> None:
        """Learn the job just started: Buddy names no job once a print is over, so a short
        print that ends between two polls would otherwise finish without its file's name."""
        with contextlib.suppress(DriverError):
            status = await self._get_json(STATUS_PATH)
            if isinstance(status, dict):
                await self._learn_job(status)

    async def upload(
        self,
        path: Path,
        *,
        remote_name: str,
        start: bool = False,
        progress: ProgressCallback | None = None,
        options: PrintOptions | None = None,
    ) -> None:
        check_name(path, remote_name)
        body = RawFile(path, progress)
        headers = {
            "Content-Length": str(body.size),
            "Content-Type": "application/octet-stream",
            # RFC 8941 booleans; Prusa-Link recognises exactly "?1".
            "Print-After-Upload": "?1" if start else "?0",
            "Overwrite": "?1",
        }
        self._remember(remote_name)
        async with self._lock:
            self._uploading = True
            try:
                storage = await self._storage_name()
                target = self._file_path(storage, remote_name)
                response = await self._put(target, path, body, headers)
                if is_stale(response):
                    # The nonce went stale before the printer read the headers (a slow start,
                    # a busy printer): the 401 carried a new one; send the file once more.
                    response = await self._put(target, path, body, headers)
            finally:
                self._uploading = False
        self._upload_result(response, remote_name, storage)
        if start:
            await self._note_started()

    async def _put(self, target: str, path: Path, body: RawFile, headers: dict[str, str]) -> httpx.Response:
        if self.digest is not None:
            await self._fresh_nonce()
        try:
            with path.open("rb") as file:
                self.requests[target] = self.requests.get(target, 0) + 1
                kwargs: dict[str, Any] = {"auth": self.digest} if self.digest is not None else {}
                response = await self.send(
                    "PUT",
                    self.url(target),
                    content=body.stream(file),
                    headers=headers,
                    timeout=self._upload_timeout,
                    **kwargs,
                )
        except OSError as exc:
            raise DriverError(f"Cannot read {path.name}: {exc.strerror or exc}", permanent=True) from exc
        except DriverError as exc:
            if not body.started or exc.permanent:
                raise
            if body.sent >= body.size:
                message = f"Upload sent ({mb(body.size)}) but the printer did not confirm it: {exc.message}"
            else:
                message = f"Upload interrupted after {mb(body.sent)} of {mb(body.size)}: {exc.message}"
            raise DriverError(message) from exc.__cause__ or exc
        if response.status_code in (401, 403) and not is_stale(response):
            raise self.auth_error(response)
        return response

    async def _fresh_nonce(self) -> None:
        """A body can't be sent twice on a stale 401: take a nonce issued now and unused (Buddy
        lets one live ~5 s; the printer's own page may use up others) from a GET sent without
        credentials. Call with the lock held."""
        assert self.digest is not None
        request = self.client.build_request("GET", self.url(STATUS_PATH), headers=self._headers)
        self.requests[STATUS_PATH] = self.requests.get(STATUS_PATH, 0) + 1
        response = await self._guarded(self.client.send(request), None)
        if response.status_code == 200:
            return  # a printer that asks no password of this client
        if response.status_code == 403 or not self.digest.take_challenge(request, response):
            raise self.auth_error(response)

    def _upload_result(self, response: httpx.Response, remote_name: str, storage: str) -> None:
        """Buddy's answers (Prusa-Link's are the same codes, fewer words)."""
        code = response.status_code
        words = error_text(response)
        lowered = words.lower()
        if code in (200, 201, 204):
            # Buddy answers 201 with the file's info, Prusa-Link 201 without a body; anything
            # else is not the printer's answer and says nothing about the file.
            try:
                reply = json.loads(response.content) if response.content.strip() else {}
            except (ValueError, RecursionError):
                reply = None
            if not isinstance(reply, dict) or (code == 200 and not reply):
                raise DriverError(
                    "The printer's answer to the upload was unreadable; the file may not be stored"
                )
            return
        if code == 401:
            raise self.auth_error(response)
        if code == 409:
            if "another transfer" in lowered:
                raise PrinterBusy("The printer is receiving another file (it takes one at a time)")
            if "busy" in lowered:
                raise PrinterBusy(f"{remote_name} is being printed: the printer won't overwrite it")
            if "directory" in lowered:  # "Is a directory or ongoing transfer"
                raise DriverError(f"The printer has a folder named {remote_name}", permanent=True)
            if "print" in lowered:  # "Can't print right now": stored, not started
                raise PrinterBusy(
                    "Uploaded, but the printer can't print right now (busy, or its screen waits)"
                )
            raise PrinterBusy(f"The printer refused the file: {words or 'conflict (HTTP 409)'}")
        if code == 507:
            if "full" in lowered or "space" in lowered:
                raise DriverError(
                    f"The printer's {storage} drive is full: delete files from it (printer menu or its"
                    " PrusaLink page)"
                )
            raise DriverError("No USB drive in the printer: insert one")
        if code == 415:
            raise DriverError(
                f"The printer refused the file type of {remote_name}: {words or 'not G-code'}", permanent=True
            )
        if code == 422 or (code == 400 and "truncated" not in lowered):
            raise DriverError(
                f"The printer refused the file name {remote_name!r}: {words or f'HTTP {code}'}",
                permanent=True,
            )
        if code == 400:  # "Truncated body": the transfer was cut; Buddy keeps nothing
            raise DriverError(f"The printer got only part of the file: {words}")
        if code == 404:
            self._storage = ""  # the drive went (or another was put in): list the storage again
            raise DriverError(f"The printer has no {storage} storage now: {words or 'HTTP 404'}")
        raise http_error(response)


def check_name(path: Path, remote_name: str) -> None:
    """Refuse before sending what the printer would refuse after the whole file (415), and a
    binary G-code under a text name: Buddy reads a file by its suffix."""
    lowered = remote_name.lower()
    if not lowered.endswith(GCODE_SUFFIXES):
        raise DriverError(
            f"PrusaLink prints only G-code: {remote_name} is not .gcode or .bgcode", permanent=True
        )
    with contextlib.suppress(OSError):
        with path.open("rb") as file:
            binary = file.read(len(BGCODE_MAGIC)) == BGCODE_MAGIC
        if binary != lowered.endswith((".bgcode", ".bgc")):
            kind = "binary G-code, named as text G-code" if binary else "text G-code, named as binary G-code"
            raise DriverError(f"{remote_name} is {kind}: the printer would not read it", permanent=True)
