"""The printer-side aiohttp plumbing shared by every protocol: which printer, faults, auth, stats."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from printers.simulator.files import ReceivedUpload, UploadRejected, receive_multipart
from printers.simulator.printer import SimPrinter

if TYPE_CHECKING:
    from printers.simulator.farm import SimulatedFarm

FARM: web.AppKey[SimulatedFarm] = web.AppKey("farm")
# the SimPrinter the request's local port belongs to, and the simulated time it is evaluated at
PRINTER: web.RequestKey[SimPrinter] = web.RequestKey("sim_printer", SimPrinter)
NOW: web.RequestKey[float] = web.RequestKey("sim_now", float)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTML_500 = (
    "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
    "<body><h1>Internal Server Error</h1><p>The server encountered an internal error "
    "(simulated fault).</p></body></html>\n"
)


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    status_path: str  # the one request a poller makes per printer per poll
    upload_paths: frozenset[str]  # where the reset_upload and stall_upload faults apply
    auth_exempt: frozenset[str]
    auth_status: int  # Moonraker 401, OctoPrint 403
    error: Callable[[int, str], web.Response]
    malformed: bytes  # body of the "malformed" and "garbled" faults: valid start, truncated
    # Websocket endpoints: their handler breaks its own frames for "malformed"/"garbled" (the
    # upgrade itself goes through); the other faults hit the upgrade request as any request.
    socket_paths: frozenset[str] = frozenset()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The JSON object body, {} when there is none; 400 on garbage."""
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"Invalid JSON body: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("JSON body must be an object")
    return data


class BadRequest(Exception):
    """Raised by handlers for a 4xx; the middleware renders it in the protocol's envelope."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def abort_connection(request: web.Request) -> web.Response:
    """Drop the TCP connection (RST); the returned response is never written."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=499)


BLACKHOLE_CHECK = 0.25  # seconds between a held request's looks at whether its fault cleared
RESET_AFTER = 64 * 1024  # bytes of an upload read before the reset_upload fault drops it


async def _read_some(request: web.Request) -> None:
    received = 0
    while received < RESET_AFTER:
        chunk = await request.content.read(RESET_AFTER - received)
        if not chunk:
            break
        received += len(chunk)


async def reset_upload(request: web.Request) -> web.Response:
    """The reset_upload fault: take part of the body, then reset the connection; store nothing."""
    await _read_some(request)
    return abort_connection(request)


async def stall_upload(request: web.Request, printer: SimPrinter) -> web.Response:
    """The stall_upload fault: take part of the body, then stop reading (a printer busy with
    its SD card) until the fault is cleared or the farm stops; then reset; store nothing."""
    await _read_some(request)
    farm = request.app[FARM]
    while printer.fault == "stall_upload":
        if await farm.wait_closing(0.05):
            break
    return abort_connection(request)


def printer_middleware(spec: ProtocolSpec) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        farm = request.app[FARM]
        transport = request.transport
        if transport is None:  # client already gone
            return web.Response(status=499)
        printer: SimPrinter | None = farm.printer_for_port(transport.get_extra_info("sockname")[1])
        if printer is None:
            return abort_connection(request)
        stats = farm.stats_counters
        stats.requests += 1
        path = request.path
        if path == spec.status_path:
            stats.note_status(printer.index)

        fault = printer.fault
        if fault is not None:
            if fault == "offline":  # a keep-alive connection that slipped past the close
                return abort_connection(request)
            if fault == "blackhole":
                # Hold the request until the fault clears (then reset it, as a device that
                # rebooted does) or the farm stops; a client that gives up cancels us
                # (handler_cancellation), so nothing accumulates.
                while printer.fault == "blackhole":
                    if await farm.wait_closing(BLACKHOLE_CHECK):
                        break
                return abort_connection(request)
            if fault == "slow":
                if await farm.wait_closing(printer.fault_delay):
                    return abort_connection(request)
            elif fault == "http500":
                return web.Response(status=500, text=HTML_500, content_type="text/html")
            elif fault == "malformed" and path not in spec.socket_paths:
                return web.Response(status=200, body=spec.malformed, content_type="application/json")

        if farm.api_key and path not in spec.auth_exempt and not _authorized(request, farm.api_key):
            return spec.error(spec.auth_status, "Unauthorized" if spec.auth_status == 401 else "Forbidden")

        now = farm.sim_now()
        printer.advance(now)
        request[PRINTER] = printer
        request[NOW] = now
        if request.method == "POST" and path in spec.upload_paths:
            if fault == "reset_upload":
                return await reset_upload(request)
            if fault == "stall_upload":
                return await stall_upload(request, printer)
        try:
            response = await handler(request)
        except BadRequest as exc:
            response = spec.error(exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = spec.error(exc.status, exc.reason)
        if fault == "garbled" and path not in spec.socket_paths:  # it did the thing; the reply is garbage
            return web.Response(status=200, body=spec.malformed, content_type="application/json")
        return response

    return middleware


async def receive_upload(request: web.Request) -> ReceivedUpload:
    """The request's multipart upload streamed into its printer's storage; refusals as 4xx."""
    printer: SimPrinter = request[PRINTER]
    try:
        return await receive_multipart(request, printer.storage / ".tmp")
    except UploadRejected as exc:
        raise BadRequest(exc.message, exc.status) from exc


def _authorized(request: web.Request, key: str) -> bool:
    if request.headers.get("X-Api-Key") == key:
        return True
    auth = request.headers.get("Authorization", "")
    return auth == f"Bearer {key}" or request.query.get("apikey") == key
