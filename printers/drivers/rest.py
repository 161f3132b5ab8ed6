"""Plumbing shared by the HTTP/JSON drivers: transport failures as DriverError, streamed uploads."""

from __future__ import annotations

import asyncio
import errno
import json
import math
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

import aiohttp
import httpx

from printers.drivers.base import (
    Driver,
    DriverAuthError,
    DriverConfig,
    DriverError,
    PrinterBusy,
    ProgressCallback,
)
from printers.state import clean_text

UPLOAD_CHUNK = 256 * 1024
# Commands that run on the printer before it answers (Moonraker's gcode/script returns when
# the G-code has executed) get longer than a status poll.
COMMAND_READ_TIMEOUT = 30.0
# Moonraker parses metadata before it answers an upload (up to 20 s) and a big file takes a
# while to copy; a finite read timeout still stops a printer that never answers from
# holding the job forever.
UPLOAD_READ_TIMEOUT = 600.0
UPLOAD_WRITE_TIMEOUT = 600.0
# Setting a target above this is a typo, not a material.
MAX_TARGET_TEMP = 500.0

_MB = 1024 * 1024
_REFUSED = {errno.ECONNREFUSED}
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}
_RESET = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}

# What a request may raise. Besides httpx's own errors: httpx-aiohttp lets some aiohttp
# errors through unmapped, an InvalidURL is not an HTTPError, OSError covers the rest.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    aiohttp.ClientError,
    OSError,  # includes TimeoutError, which is asyncio.TimeoutError on 3.11+
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _seconds(value: float | None) -> str:
    return "ever" if value is None else f"{value:g} s"


def transport_error(exc: BaseException, *, base_url: str, timeout: httpx.Timeout) -> DriverError:
    """Describe a failed request in words an operator can act on.

    httpx-aiohttp 0.2 maps every aiohttp ClientConnectionError to httpx.ConnectTimeout, so a
    refused connection or a reset arrives looking like a timeout: classify by the root causes.
    """
    chain = list(_chain(exc))
    codes = {getattr(e, "errno", None) for e in chain if isinstance(e, OSError)}
    if codes & _REFUSED or any(isinstance(e, ConnectionRefusedError) for e in chain):
        return DriverError(f"Connection refused at {base_url} — is the printer on and the address right?")
    if any(isinstance(e, socket.gaierror | aiohttp.ClientConnectorDNSError) for e in chain):
        return DriverError(f"Cannot resolve the host name in {base_url} — check the address")
    if codes & _UNREACHABLE:
        return DriverError(f"No route to {base_url} — is the printer on this network?")
    if codes & _RESET or any(isinstance(e, ConnectionResetError | BrokenPipeError) for e in chain):
        return DriverError(f"Connection reset by {base_url}")
    if any(
        isinstance(e, aiohttp.ServerDisconnectedError | httpx.RemoteProtocolError | httpx.ReadError)
        for e in chain
    ):
        return DriverError(f"{base_url} closed the connection unexpectedly")
    through_aiohttp = any(isinstance(e, aiohttp.ClientError) for e in chain)
    if any(isinstance(e, TimeoutError) for e in chain) or (
        isinstance(exc, httpx.TimeoutException) and not through_aiohttp
    ):
        if any(isinstance(e, httpx.PoolTimeout) for e in chain):
            return DriverError(
                f"No free connection to {base_url} within {_seconds(timeout.pool)} (too many requests)"
            )
        if any(isinstance(e, aiohttp.ConnectionTimeoutError) for e in chain) or (
            isinstance(exc, httpx.ConnectTimeout) and not through_aiohttp
        ):
            return DriverError(
                f"Could not connect to {base_url} within {_seconds(timeout.connect)}"
                " — is the printer on and the address right?"
            )
        return DriverError(f"No answer from {base_url} within {_seconds(timeout.read)}")
    if any(isinstance(e, httpx.InvalidURL | httpx.UnsupportedProtocol) for e in chain):
        return invalid_address(base_url)
    detail = str(exc) or type(exc).__name__
    return DriverError(f"Could not talk to {base_url}: {detail}")


def invalid_address(base_url: str) -> DriverError:
    return DriverError(
        f"Invalid printer address {base_url!r} — expected e.g. http://192.168.1.50:7125", permanent=True
    )


def error_text(response: httpx.Response) -> str:
    """The printer's own words from an error reply: Moonraker {"error":{"message"}},
    OctoPrint {"error": "..."}, or a short plain-text body. "" when there is nothing useful."""
    body = response.content
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    found: object = None
    if isinstance(data, dict):
        error = data.get("error")
        found = error.get("message") if isinstance(error, dict) else error
        if found is None:
            found = data.get("message")
    elif data is None and not response.headers.get("content-type", "").startswith("text/html"):
        found = body[:300].decode("utf-8", "replace")
    words = " ".join(clean_text(found, 1000).split())
    return words if len(words) <= 200 else words[:199] + "…"


def http_error(response: httpx.Response) -> DriverError:
    """The fallback for a status code no protocol-specific rule claimed."""
    code = response.status_code
    detail = error_text(response)
    message = f"Printer returned HTTP {code}" + (f": {detail}" if detail else "")
    # A client error repeats identically on retry; server errors and throttling may pass.
    permanent = 400 <= code < 500 and code not in (408, 423, 425, 429)
    return DriverError(message, permanent=permanent)


def auth_error(response: httpx.Response) -> DriverAuthError:
    return DriverAuthError(f"API key rejected (HTTP {response.status_code}) — check the printer's API key")


def busy_error(response: httpx.Response) -> PrinterBusy:
    detail = error_text(response)
    return PrinterBusy(detail or f"The printer refused the command (HTTP {response.status_code}): it is busy")


def check_target(heater: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_TARGET_TEMP
    ):
        raise DriverError(
            f"{heater} target {value!r} °C is out of range (0–{MAX_TARGET_TEMP:g} °C)", permanent=True
        )
    return float(value)


def format_temp(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def number(value: object) -> float | None:
    """A finite JSON number, or None (bools, strings, NaN and infinities are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def text(value: object) -> str:
    return clean_text(value, 1000)


EMPTY: Mapping[str, Any] = MappingProxyType({})


def obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """parent[key] when it is a JSON object, else an empty mapping: missing or mistyped
    sections read as "nothing known" rather than raising."""
    value = parent.get(key)
    return value if isinstance(value, dict) else EMPTY


def mb(size: int) -> str:
    return f"{size / _MB:.1f} MB"


class MultipartFile:
    """A multipart/form-data body streamed from a file in chunks, with an exact Content-Length
    (OctoPrint refuses uploads without one) and never more than one chunk in memory."""

    def __init__(
        self,
        path: Path,
        *,
        filename: str,
        fields: Mapping[str, str],
        progress: ProgressCallback | None = None,
        chunk_size: int = UPLOAD_CHUNK,
    ) -> None:
        self.path = path
        self.progress = progress
        self.chunk_size = chunk_size
        try:
            self.size = path.stat().st_size
        except OSError as exc:
            raise DriverError(f"Cannot read {path.name}: {exc.strerror or exc}", permanent=True) from exc
        self.sent = 0  # file bytes the transport has taken
        self.started = False
        boundary = f"printfarm-{uuid.uuid4().hex}"
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        )
        head += (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{_quote_filename(filename)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._head = head
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + self.size + len(self._tail)),
        }

    async def stream(self, file: BinaryIO) -> AsyncIterator[bytes]:
        self.started = True
        if self.progress:
            self.progress(0, self.size)
        yield self._head
        async for chunk in file_chunks(file, self.path, self.size, self.chunk_size):
            yield chunk
            self.sent += len(chunk)
            if self.progress:
                self.progress(self.sent, self.size)
        yield self._tail


async def file_chunks(file: BinaryIO, path: Path, size: int, chunk_size: int) -> AsyncIterator[bytes]:
    """`size` bytes of an open file, in chunks read in a thread (a slow disk must not stall
    1,000 status polls); a read error or a file that shrank is a permanent DriverError."""
    remaining = size
    while remaining:
        try:
            chunk = await asyncio.to_thread(file.read, min(chunk_size, remaining))
        except OSError as exc:
            raise DriverError(f"Cannot read {path.name}: {exc.strerror or exc}", permanent=True) from exc
        if not chunk:
            raise DriverError(f"{path.name} shrank while it was being uploaded", permanent=True)
        remaining -= len(chunk)
        yield chunk


def _quote_filename(name: str) -> str:
    # As browsers do (WHATWG multipart/form-data): percent-escape the characters that would
    # end the quoted string or the header line.
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class RestDriver(Driver):
    """A driver that speaks HTTP/JSON through the shared httpx client."""

    def __init__(self, config: DriverConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        # Both Moonraker and OctoPrint take X-Api-Key; built once, sent on every request.
        self._headers: dict[str, str] | None = {"X-Api-Key": config.api_key} if config.api_key else None
        base = client.timeout
        self._command_timeout = httpx.Timeout(
            connect=base.connect, read=COMMAND_READ_TIMEOUT, write=COMMAND_READ_TIMEOUT, pool=base.pool
        )
        self._upload_timeout = httpx.Timeout(
            connect=base.connect, read=UPLOAD_READ_TIMEOUT, write=UPLOAD_WRITE_TIMEOUT, pool=base.pool
        )

    def url(self, path: str) -> httpx.URL:
        try:
            return httpx.URL(self.base_url + path)
        except httpx.InvalidURL as exc:
            raise invalid_address(self.base_url) from exc

    async def send(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        timeout: httpx.Timeout | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request; any transport failure comes back as a DriverError. Without `timeout` the
        client's own (status) timeout applies."""
        if headers is not None and self._headers:
            headers = {**self._headers, **headers}
        elif headers is None:
            headers = self._headers
        call = self.client.request(
            method,
            url,
            headers=headers,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            **kwargs,
        )
        return await self._guarded(call, timeout)

    def status_request(self, url: httpx.URL) -> httpx.Request:
        """A GET built once and sent on every poll (see send_status)."""
        return self.client.build_request("GET", url, headers=self._headers)

    async def send_status(self, request: httpx.Request) -> httpx.Response:
        """Send a prebuilt status GET: httpx's per-call request building was ~8% of a poll's
        CPU at 1,000 polls/s. A body-less GET is safe to send again and again."""
        return await self._guarded(self.client.send(request), None)

    async def _guarded(
        self, call: Awaitable[httpx.Response], timeout: httpx.Timeout | None
    ) -> httpx.Response:
        try:
            return await call
        except TRANSPORT_ERRORS as exc:
            for cause in _chain(exc):
                if isinstance(cause, DriverError):
                    # From our own request body (the upload file failed to read); it
                    # keeps its own cause.
                    raise cause from cause.__cause__
            used = timeout or self.client.timeout
            raise transport_error(exc, base_url=self.base_url, timeout=used) from exc

    @staticmethod
    def parse_json(response: httpx.Response, what: str) -> object:
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
            raise DriverError(f"Printer sent invalid JSON (HTTP {response.status_code} on {what})") from exc

    async def send_file(
        self,
        url: httpx.URL,
        path: Path,
        *,
        filename: str,
        fields: Mapping[str, str],
        progress: ProgressCallback | None,
    ) -> httpx.Response:
        """POST a file as multipart/form-data, streamed, with the long upload timeout."""
        body = MultipartFile(path, filename=filename, fields=fields, progress=progress)
        try:
            with path.open("rb") as file:
                return await self.send(
                    "POST", url, content=body.stream(file), headers=body.headers, timeout=self._upload_timeout
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
