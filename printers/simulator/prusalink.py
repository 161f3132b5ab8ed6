"""PrusaLink v1 API of Buddy firmware (MK4/XL/MINI/Core One) for simulated printers
(printer-protocols.md section 3).

Like the printer's own nhttp server: every route needs HTTP digest auth (MD5, no qop, user
`maker`, realm "Printer API", nonces that go stale) or the password as X-Api-Key; at most
ACTIVE_CONNS requests are served at once (the rest wait, unread, until a slot frees); an error
answered to a request with a body closes the connection. Errors are Buddy's status pages:
`{"title": "409: Conflict","message": "..."}` with Accept: application/json, else text.

Routes, the middleware and the connection counting are here; files and the raw PUT upload in
prusalink_files, the PrusaLink-only state (READY, ATTENTION, the transfer, nonces, slots) in
prusalink_state.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.request import parse_http_list, parse_keqv_list

from aiohttp import StreamReader, web

from printers.simulator.common import (
    BLACKHOLE_CHECK,
    FARM,
    HTML_500,
    NOW,
    PRINTER,
    BadRequest,
    abort_connection,
    json_response,
)
from printers.simulator.printer import PRINTING, SimPrinter
from printers.simulator.prusalink_files import (
    download,
    file_delete,
    file_head,
    file_info,
    file_print,
    file_upload,
    storage_list,
    transfer_cancel,
    transfer_info,
)
from printers.simulator.prusalink_replies import DEVICE, SLOT, status_page, wants_json
from printers.simulator.prusalink_state import (
    ATTENTION_STATE,
    PAUSED_STATE,
    PRINTING_STATE,
    REALM,
    USERNAME,
    PrusaLinkDevice,
    Slot,
)
from printers.simulator.prusalink_thumbnails import thumbnail

if TYPE_CHECKING:
    from printers.simulator.farm import SimulatedFarm

MALFORMED = b'{"printer":{"state":"PRINT'
API_VERSION = "2.0.0"
SERVER_VERSION = "2.1.2"  # Buddy reports its lwIP version here

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- auth -----------------------------------------------------------------------------------


def _md5(*parts: str) -> str:
    return hashlib.md5(":".join(parts).encode(), usedforsecurity=False).hexdigest()


def _digest_ok(request: web.Request, device: PrusaLinkDevice, params: dict[str, str]) -> bool:
    """RFC 2069 digest as Buddy checks it: the URI and method are the request's own, the
    username is not compared (a wrong one changes HA1 anyway), qop is never offered."""
    nonce = params.get("nonce", "")
    ha1 = _md5(USERNAME, REALM, device.password)
    ha2 = _md5(request.method, request.raw_path)
    return params.get("response", "").lower() == _md5(ha1, nonce, ha2)


def _unauthorized(request: web.Request, challenge: str) -> web.Response:
    response = status_page(401, json_errors=wants_json(request))
    response.headers["WWW-Authenticate"] = challenge
    return response


def check_auth(request: web.Request, device: PrusaLinkDevice) -> web.Response | None:
    """None when authorized, else the 401 to answer."""
    api_key = request.headers.get("X-Api-Key")
    if api_key is not None:
        if api_key == device.password:
            return None
        return _unauthorized(request, f'ApiKey realm="{REALM}"')
    header = request.headers.get("Authorization", "")
    params: dict[str, str] = {}
    if header[:7].lower() == "digest ":
        try:
            params = parse_keqv_list(parse_http_list(header[7:]))
        except ValueError:  # not key=value pairs: no credentials
            params = {}
    nonce = params.get("nonce", "")
    fresh = device.nonce_fresh(nonce)
    valid = bool(params) and _digest_ok(request, device, params)
    if fresh and valid:
        return None
    # stale=true only for a correct digest over an expired nonce: the client knows the
    # password and should simply retry with the new nonce.
    stale = "true" if valid and not fresh else "false"
    return _unauthorized(request, f'Digest realm="{REALM}", nonce="{device.new_nonce()}", stale={stale}')


# -- middleware -----------------------------------------------------------------------------


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    farm: SimulatedFarm = request.app[FARM]
    transport = request.transport
    if transport is None:
        return web.Response(status=499)
    printer = farm.printer_for_port(transport.get_extra_info("sockname")[1])
    if printer is None or printer.index not in farm.prusalink_devices:
        return abort_connection(request)
    device = farm.prusalink_devices[printer.index]
    farm.stats_counters.requests += 1
    if request.path == "/api/v1/status":
        farm.stats_counters.note_status(printer.index)

    fault = printer.fault
    if fault == "offline":
        return abort_connection(request)
    if fault == "blackhole":
        while printer.fault == "blackhole":
            if await farm.wait_closing(BLACKHOLE_CHECK):
                break
        return abort_connection(request)
    if fault == "http500":
        return web.Response(status=500, text=HTML_500, content_type="text/html")
    elif fault == "malformed":
        return web.Response(status=200, body=MALFORMED, content_type="application/json")

    slot = Slot(device)
    await slot.acquire()
    try:
        # A slow printer is slow while it holds the slot: slow requests fill all three.
        if fault == "slow" and not await _slowly(farm, printer):
            return abort_connection(request)
        response = await _serve(request, handler, farm, printer, device, slot)
    finally:
        slot.release()
    if fault == "garbled":
        return web.Response(status=200, body=MALFORMED, content_type="application/json")
    return response


async def _slowly(farm: SimulatedFarm, printer: SimPrinter) -> bool:
    """Wait out the "slow" fault's delay, or until the fault is cleared; False if the farm stops."""
    loop = asyncio.get_running_loop()
    end = loop.time() + printer.fault_delay
    while printer.fault == "slow" and (left := end - loop.time()) > 0:
        if await farm.wait_closing(min(left, BLACKHOLE_CHECK)):
            return False
    return True


async def _serve(
    request: web.Request,
    handler: Handler,
    farm: SimulatedFarm,
    printer: SimPrinter,
    device: PrusaLinkDevice,
    slot: Slot,
) -> web.StreamResponse:
    json_errors = wants_json(request)
    response: web.StreamResponse | None = check_auth(request, device)
    if response is None:
        now = farm.sim_now()
        printer.advance(now)
        request[PRINTER] = printer
        request[NOW] = now
        request[DEVICE] = device
        request[SLOT] = slot
        try:
            response = await handler(request)
        except BadRequest as exc:
            response = status_page(exc.status, exc.message, json_errors=json_errors)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = status_page(exc.status, json_errors=json_errors)
    # Buddy answers errors to a request with a body with connection-close: it does not know how
    # much of the body the client already sent.
    if response.status >= 300 and request.method in ("PUT", "POST") and request.body_exists:
        response.force_close()
    return response


# -- status -----------------------------------------------------------------------------------


def _device(request: web.Request) -> tuple[SimPrinter, PrusaLinkDevice]:
    return request[PRINTER], request[DEVICE]


async def version(request: web.Request) -> web.Response:
    printer, device = _device(request)
    return json_response(
        {
            "api": API_VERSION,
            "server": SERVER_VERSION,
            "nozzle_diameter": 0.4,
            "text": "PrusaLink",
            "hostname": device.hostname,
            "capabilities": {"upload-by-put": True},
        }
    )


async def info(request: web.Request) -> web.Response:
    printer, device = _device(request)
    return json_response(
        {
            "nozzle_diameter": 0.4,
            "mmu": False,
            "serial": device.serial,
            "hostname": device.hostname,
            "min_extrusion_temp": 170,
        }
    )


def job_times(printer: SimPrinter, now: float) -> dict[str, Any]:
    elapsed = printer.print_duration(now)
    data: dict[str, Any] = {"progress": round(printer.progress(now) * 100, 2)}
    if printer.job_from_estimate:  # Buddy omits it without the slicer's M73 estimates
        data["time_remaining"] = max(0, int(round(printer.job_duration - elapsed)))
    data["time_printing"] = int(elapsed)
    return data


async def status(request: web.Request) -> web.Response:
    printer, device = _device(request)
    now = request[NOW]
    data: dict[str, Any] = {}
    if device.has_job():
        data["job"] = {"id": device.job_id()} | job_times(printer, now)
    data["storage"] = {"path": "/usb/", "name": "usb", "read_only": False}
    if device.transfer is not None:
        data["transfer"] = device.transfer.describe()
    state = device.state()
    printing = state in (PRINTING_STATE, "BUSY")
    fan = printer.job_state == PRINTING and printer.fault != "not_ready"
    data["printer"] = {
        "state": state,
        "temp_bed": printer.bed.temperature(now),
        "target_bed": printer.bed.target,
        "temp_nozzle": printer.extruder.temperature(now),
        "target_nozzle": printer.extruder.target,
        "axis_z": round(0.2 + 20 * printer.progress(now), 1) if printer.busy else 0.0,
        **({} if printing else {"axis_x": 241.0, "axis_y": 170.0}),  # only when not moving
        "flow": 100,
        "speed": 100,
        "fan_hotend": 4800 if printer.extruder.target > 0 else 0,
        "fan_print": 5200 if fan else 0,
    }
    return json_response(data)


async def job(request: web.Request) -> web.Response:
    printer, device = _device(request)
    if not device.has_job():
        return status_page(204)
    info = printer.files.get(printer.job_file)
    name = printer.job_file.rsplit("/", 1)[-1]
    folder = "/usb/" + printer.job_file.rsplit("/", 1)[0] if "/" in printer.job_file else "/usb"
    file: dict[str, Any] = {
        "refs": {
            "icon": f"/thumb/s/usb/{printer.job_file}",
            "thumbnail": f"/thumb/l/usb/{printer.job_file}",
            "download": f"/usb/{printer.job_file}",
        },
        "name": name,
        "display_name": name,
        "path": folder,
    }
    if info is not None:
        file |= {"size": info.size, "m_timestamp": int(info.modified)}
    # Buddy reports a job held by an attention dialog as PAUSED here
    state = {PRINTING_STATE: "PRINTING", PAUSED_STATE: "PAUSED", ATTENTION_STATE: "PAUSED"}.get(
        device.state(), "ERROR"
    )
    times = job_times(printer, request[NOW])
    return json_response({"id": device.job_id(), "state": state} | times | {"file": file})


def _job_id(request: web.Request) -> None:
    """Buddy: a non-numeric id is 400, another job's id 404 (checked before the method); the
    last job's id stays valid after it ended (its commands then answer 409)."""
    _printer, device = _device(request)
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise BadRequest("", 400)
    if int(raw) != device.job_id() or not device.job_id():
        raise BadRequest("", 404)


async def job_command(request: web.Request) -> web.Response:
    _job_id(request)
    printer, device = _device(request)
    now = request[NOW]
    command = request.match_info["command"]
    state = device.state()
    if command == "pause":
        if state != PRINTING_STATE:
            raise BadRequest("", 409)
        printer.pause(now)
    elif command == "resume":
        if state != PAUSED_STATE:
            raise BadRequest("", 409)
        printer.resume(now)
    else:
        raise BadRequest("", 400)
    return status_page(204)


async def job_stop(request: web.Request) -> web.Response:
    _job_id(request)
    printer, device = _device(request)
    if device.state() not in (PRINTING_STATE, PAUSED_STATE, ATTENTION_STATE):
        raise BadRequest("", 409)
    printer.cancel(request[NOW])
    return status_page(204)


async def job_other(request: web.Request) -> web.Response:
    _job_id(request)
    raise BadRequest("", 405)


async def not_found(request: web.Request) -> web.Response:
    raise BadRequest("", 404)


async def forbidden(request: web.Request) -> web.Response:
    """Buddy keeps clients inside /usb/: any other storage is 403."""
    raise BadRequest("", 403)


def build_app(farm: object) -> web.Application:
    # Buddy's parser has no body size limit of its own: uploads are streamed by the handler.
    app = web.Application(middlewares=[middleware], client_max_size=1024**2)
    app[FARM] = farm  # type: ignore[assignment]
    add = app.router.add_route
    add("GET", "/api/version", version)
    add("GET", "/api/v1/info", info)
    add("GET", "/api/v1/status", status)
    add("GET", "/api/v1/job", job)
    add("PUT", "/api/v1/job/{id}/{command}", job_command)
    add("DELETE", "/api/v1/job/{id}", job_stop)
    add("*", "/api/v1/job/{id}", job_other)
    add("GET", "/api/v1/storage", storage_list)
    add("GET", "/api/v1/transfer", transfer_info)
    add("DELETE", "/api/v1/transfer/{id}", transfer_cancel)
    for method, route in (
        ("PUT", file_upload),
        ("POST", file_print),
        ("GET", file_info),
        ("HEAD", file_head),
        ("DELETE", file_delete),
    ):
        add(method, "/api/v1/files/usb", route)
        add(method, "/api/v1/files/usb/{path:.*}", route)
    add("*", "/api/v1/files/{storage}", forbidden)
    add("*", "/api/v1/files/{storage}/{path:.*}", forbidden)
    add("GET", "/usb/{path:.+}", download)
    add("GET", "/thumb/{size}/usb/{path:.+}", thumbnail)
    add("*", "/{tail:.*}", not_found)
    return app


# -- connections ------------------------------------------------------------------------------


class CountedConnection(asyncio.Protocol):
    """aiohttp's request handler for one connection, counting it on its printer's device: a test
    can check a client never holds more than one connection to a PrusaLink printer."""

    def __init__(self, inner: asyncio.Protocol, device: PrusaLinkDevice) -> None:
        self.inner = inner
        self.device = device
        self.counted = False
        self.payload: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.counted = True
        self.device.connection_opened()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.counted = False
            self.device.connection_closed()
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)
        # The body of the request this data began (aiohttp internals: its parsed-message queue,
        # read here before the handler task takes it), for eof_received.
        messages = getattr(self.inner, "_messages", None)
        if messages:
            payload = messages[-1][1]
            self.payload = payload if isinstance(payload, StreamReader) else None

    def eof_received(self) -> bool | None:
        """The client half-closed. Mid-body, Buddy answers 400 "Truncated body" on the open half:
        end the request's body (aiohttp would just close) and keep the transport writable."""
        payload = self.payload
        if payload is not None and not payload.is_eof():
            payload.feed_eof()
            return True
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def protocol_factory(server: Callable[[], asyncio.Protocol], device: PrusaLinkDevice) -> Callable[[], Any]:
    return lambda: CountedConnection(server(), device)
