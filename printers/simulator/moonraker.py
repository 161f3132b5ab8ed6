"""Moonraker (Klipper) HTTP API routes for simulated printers (printer-protocols.md section 1).

The route table (build_app) and the Klippy side: status objects, info, print control and
gcode scripts. Files are in moonraker_files, job history in moonraker_history. The
"disconnect" fault reads as Klippy gone after it was connected: server/info says klippy_state
"disconnected", /printer/* answers 503 "Klippy Host not connected". The "not_ready" fault reads
as Klippy never connected since Moonraker started (Moonraker 0.11): the endpoints Klippy
registers (info, objects, gcode/script, emergency_stop) answer 404 "Not Found", Moonraker's own
/printer/print/* and restarts 503 "Klippy Host not connected".
"""

from __future__ import annotations

import shlex
import time
from typing import Any

from aiohttp import web

from printers.simulator import cameras
from printers.simulator.common import (
    FARM,
    NOW,
    PRINTER,
    BadRequest,
    ProtocolSpec,
    printer_middleware,
    read_json,
)
from printers.simulator.files import UploadRejected, clean_path
from printers.simulator.klipper import OBJECT_NAMES, printer_objects, webhooks_state
from printers.simulator.moonraker_files import (
    file_delete,
    file_download,
    files_list,
    files_metadata,
    files_upload,
)
from printers.simulator.moonraker_history import history_job, history_list
from printers.simulator.moonraker_replies import error, result
from printers.simulator.printer import LOST, PAUSED, PRINTING, READY, SHUTDOWN, SimPrinter

MOONRAKER_VERSION = "v0.9.3-42-gsim"
KLIPPER_VERSION = "v0.12.0-500-gsim"
API_VERSION = [1, 5, 0]

SPEC = ProtocolSpec(
    status_path="/printer/objects/query",
    upload_paths=frozenset({"/server/files/upload"}),
    auth_exempt=frozenset({"/access/info", "/webcam/"}),  # the webcam is crowsnest's, not Moonraker's
    auth_status=401,
    error=error,
    malformed=b'{"result": {"eventtime": 1234.5, "status": {"webhooks": {"state": "rea',
    socket_paths=frozenset({"/websocket"}),
)


# -- helpers ------------------------------------------------------------------------------


def _klippy_connected(request: web.Request) -> None:
    """The 503 Moonraker's own /printer/* endpoints answer with while it has no Klippy connection."""
    printer: SimPrinter = request[PRINTER]
    if printer.fault == "not_ready" or printer.link == LOST:
        raise BadRequest("Klippy Host not connected", 503)


def _klippy_endpoint(request: web.Request) -> None:
    """An endpoint Klippy registers with Moonraker: Moonraker only routes it once Klippy has
    connected (404 before, the default handler's JSON error), 503 while Klippy is gone."""
    if request[PRINTER].fault == "not_ready":
        raise BadRequest("Not Found", 404)
    _klippy_connected(request)


def _klippy_ready(request: web.Request) -> SimPrinter:
    """Klippy rejects commands unless ready; Moonraker maps its error to 400."""
    _klippy_connected(request)
    printer: SimPrinter = request[PRINTER]
    if printer.link == SHUTDOWN:
        raise BadRequest(printer.link_message or "Printer is shutdown")
    if printer.link != READY:
        raise BadRequest("Printer is not ready")
    return printer


def _arg(request: web.Request, body: dict[str, Any], name: str) -> str | None:
    value = body.get(name, request.query.get(name))  # body wins, like Moonraker
    return None if value is None else str(value)


async def objects_query(request: web.Request) -> web.Response:
    _klippy_endpoint(request)
    wanted: dict[str, list[str] | None] = {}
    if request.method == "POST":
        body = await read_json(request)
        objects = body.get("objects", {})
        if not isinstance(objects, dict):
            raise BadRequest("Invalid argument 'objects'")
        for name, fields in objects.items():
            wanted[name] = [str(f) for f in fields] if isinstance(fields, list) else None
    if not wanted:
        for name, fields in request.query.items():
            wanted[name] = [f for f in fields.split(",") if f] or None
    return result(query_status(request[PRINTER], request[NOW], wanted))


def query_status(printer: SimPrinter, now: float, wanted: dict[str, list[str] | None]) -> dict[str, Any]:
    """objects/query's result (and the websocket subscribe reply's): the wanted objects,
    each whole (None) or only the listed fields."""
    builders = printer_objects(printer, now)
    status: dict[str, Any] = {}
    for name, fields in wanted.items():
        build = builders.get(name)
        if build is None:
            continue  # unknown objects are silently omitted, as Klipper does
        values = build()
        status[name] = values if fields is None else {f: values[f] for f in fields if f in values}
    return {"eventtime": round(time.monotonic(), 3), "status": status}


async def objects_list(request: web.Request) -> web.Response:
    _klippy_endpoint(request)
    return result({"objects": list(OBJECT_NAMES)})


# -- info ---------------------------------------------------------------------------------


async def server_info(request: web.Request) -> web.Response:
    return result(server_info_result(request[PRINTER]))


def klippy_connected(printer: SimPrinter) -> bool:
    return printer.fault != "not_ready" and printer.link != LOST


def server_info_result(printer: SimPrinter, websockets: int = 0) -> dict[str, Any]:
    connected = klippy_connected(printer)
    # Without a Klippy socket Moonraker says "disconnected" (KlippyConnection.state).
    klippy_state = webhooks_state(printer)[0] if connected else "disconnected"
    return {
        "klippy_connected": connected,
        "klippy_state": klippy_state,
        "components": ["klippy_connection", "application", "file_manager", "klippy_apis", "history"],
        "failed_components": [],
        "registered_directories": ["config", "logs", "gcodes"],
        "warnings": [],
        "websocket_count": websockets,
        "moonraker_version": MOONRAKER_VERSION,
        "missing_klippy_requirements": [],
        "api_version": API_VERSION,
        "api_version_string": ".".join(map(str, API_VERSION)),
    }


async def printer_info(request: web.Request) -> web.Response:
    _klippy_endpoint(request)
    return result(printer_info_result(request[PRINTER]))


def printer_info_result(printer: SimPrinter) -> dict[str, Any]:
    state, message = webhooks_state(printer)
    return {
        "state": state,
        "state_message": message,
        "hostname": printer.name,
        "klipper_path": "/home/pi/klipper",
        "python_path": "/home/pi/klippy-env/bin/python",
        "process_id": 1000 + printer.index,
        "user_id": 1000,
        "group_id": 1000,
        "log_file": "/home/pi/printer_data/logs/klippy.log",
        "config_file": "/home/pi/printer_data/config/printer.cfg",
        "software_version": KLIPPER_VERSION,
        "cpu_info": "simulated",
    }


async def access_info(request: web.Request) -> web.Response:
    key_set = bool(request.app[FARM].api_key)
    return result(
        {
            "default_source": "moonraker",
            "available_sources": ["moonraker"],
            "login_required": key_set,
            "trusted": not key_set,
        }
    )


# -- print control ------------------------------------------------------------------------


def _start(printer: SimPrinter, now: float, filename: str | None) -> None:
    if not filename:
        raise BadRequest("No data for argument: filename")
    if printer.busy:
        raise BadRequest("SD busy")
    try:
        rel = clean_path(filename)
    except UploadRejected as exc:
        raise BadRequest("Unable to open file") from exc
    if rel not in printer.files:
        raise BadRequest("Unable to open file")
    printer.start(now, rel)


async def print_start(request: web.Request) -> web.Response:
    printer = _klippy_ready(request)
    body = await read_json(request)
    _start(printer, request[NOW], _arg(request, body, "filename"))
    return result("ok")


def _pause(printer: SimPrinter, now: float) -> None:
    if printer.job_state == PAUSED:
        raise BadRequest("Print Already Paused")
    if printer.job_state != PRINTING:
        raise BadRequest("No print in progress")
    printer.pause(now)


def _resume(printer: SimPrinter, now: float) -> None:
    if printer.job_state != PAUSED:
        raise BadRequest("Print Not Paused")
    printer.resume(now)


def _cancel(printer: SimPrinter, now: float) -> None:
    # Klipper's CANCEL_PRINT with no file loaded is a no-op, not an error.
    if printer.busy:
        printer.cancel(now)


async def print_pause(request: web.Request) -> web.Response:
    _pause(_klippy_ready(request), request[NOW])
    return result("ok")


async def print_resume(request: web.Request) -> web.Response:
    _resume(_klippy_ready(request), request[NOW])
    return result("ok")


async def print_cancel(request: web.Request) -> web.Response:
    _cancel(_klippy_ready(request), request[NOW])
    return result("ok")


async def emergency_stop(request: web.Request) -> web.Response:
    _klippy_endpoint(request)
    request[PRINTER].emergency_stop(request[NOW], "Emergency stop")
    return result("ok")


async def firmware_restart(request: web.Request) -> web.Response:
    _klippy_connected(request)
    request[PRINTER].firmware_restart(request[NOW])
    return result("ok")


def _params(args: list[str]) -> dict[str, str]:
    """Klipper extended syntax KEY=VALUE, and classic S200 style (first letter = key)."""
    params: dict[str, str] = {}
    for arg in args:
        if "=" in arg:
            key, _, value = arg.partition("=")
            params[key.upper()] = value
        elif arg:
            params[arg[0].upper()] = arg[1:]
    return params


def _float(value: str | None, command: str) -> float:
    try:
        number = float(value if value is not None else 0)
    except ValueError as exc:
        raise BadRequest(f"Unable to parse '{value}' as a float in '{command}'") from exc
    if not 0 <= number <= 500:
        raise BadRequest(f"Requested temperature ({number:.1f}) out of range")
    return number


async def gcode_script(request: web.Request) -> web.Response:
    _klippy_endpoint(request)
    printer: SimPrinter = request[PRINTER]
    now = request[NOW]
    body = await read_json(request)
    script = _arg(request, body, "script")
    if script is None:
        raise BadRequest("No data for argument: script")
    for raw in script.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        command = words[0].upper()
        params = _params(words[1:])
        if command in ("FIRMWARE_RESTART", "RESTART"):
            printer.firmware_restart(now)
            continue
        if command == "M112":
            printer.emergency_stop(now, "Emergency stop")
            continue
        if printer.link == SHUTDOWN:
            raise BadRequest(printer.link_message or "Printer is shutdown")
        if printer.link != READY:
            raise BadRequest("Printer is not ready")
        if command in ("M104", "M109"):
            printer.set_targets(now, hotend=_float(params.get("S"), line))
        elif command in ("M140", "M190"):
            printer.set_targets(now, bed=_float(params.get("S"), line))
        elif command == "SET_HEATER_TEMPERATURE":
            heater = params.get("HEATER", "")
            target = _float(params.get("TARGET"), line)
            if heater == "extruder":
                printer.set_targets(now, hotend=target)
            elif heater == "heater_bed":
                printer.set_targets(now, bed=target)
            else:
                raise BadRequest(f"Unknown heater '{heater}'")
        elif command == "SDCARD_PRINT_FILE":
            _start(printer, now, params.get("FILENAME"))
        elif command == "PAUSE":
            _pause(printer, now)
        elif command == "RESUME":
            _resume(printer, now)
        elif command == "CANCEL_PRINT":
            _cancel(printer, now)
        # Anything else (G28, G1, M117, ...) is accepted and has no simulated effect.
    return result("ok")


def build_app(farm: object) -> web.Application:
    app = web.Application(middlewares=[printer_middleware(SPEC)], client_max_size=1024**2)
    app[FARM] = farm  # type: ignore[assignment]
    add = app.router.add_route
    add("GET", "/server/info", server_info)
    add("GET", "/printer/info", printer_info)
    add("GET", "/printer/objects/query", objects_query)
    add("POST", "/printer/objects/query", objects_query)
    add("GET", "/printer/objects/list", objects_list)
    add("POST", "/printer/print/start", print_start)
    add("POST", "/printer/print/pause", print_pause)
    add("POST", "/printer/print/resume", print_resume)
    add("POST", "/printer/print/cancel", print_cancel)
    add("POST", "/printer/emergency_stop", emergency_stop)
    add("POST", "/printer/firmware_restart", firmware_restart)
    add("POST", "/printer/restart", firmware_restart)
    add("POST", "/printer/gcode/script", gcode_script)
    add("POST", "/server/files/upload", files_upload)
    add("GET", "/server/files/list", files_list)
    add("GET", "/server/files/metadata", files_metadata)
    add("GET", "/server/files/{root}/{path:.+}", file_download)
    add("DELETE", "/server/files/{root}/{path:.+}", file_delete)
    add("GET", "/server/history/list", history_list)
    add("GET", "/server/history/job", history_job)
    add("GET", "/access/info", access_info)
    from printers.simulator import moonraker_ws  # it builds on this module's replies

    moonraker_ws.add_routes(app)
    cameras.add_routes(app, "moonraker")
    return app
