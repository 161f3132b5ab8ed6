"""OctoPrint 1.11 REST API routes for simulated printers (printer-protocols.md section 2).

The "disconnect" fault reads as a lost serial port: state "Offline after error" (flags error,
closedOrError), /api/job carries the SerialException, /api/printer answers 409.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from printers.simulator.common import (
    FARM,
    NOW,
    PRINTER,
    BadRequest,
    ProtocolSpec,
    json_response,
    printer_middleware,
    read_json,
    receive_upload,
)
from printers.simulator.files import SimFile, UploadRejected, clean_path
from printers.simulator.printer import (
    CLOSED,
    COMPLETE,
    FILAMENT_PER_SECOND,
    LOST,
    PAUSED,
    PRINTING,
    READY,
    SHUTDOWN,
    SimPrinter,
)

VERSION = "1.11.8"
UPLOAD_EXTENSIONS = (".gcode", ".gco", ".g", ".stl")
PRINTABLE_EXTENSIONS = (".gcode", ".gco", ".g")
ESTOP_MESSAGE = "Printer halted. kill() called!"  # what Marlin answers to M112
NOT_OPERATIONAL = "Printer is not operational"


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


SPEC = ProtocolSpec(
    status_path="/api/printer",
    upload_paths=frozenset({"/api/files/local"}),
    auth_exempt=frozenset(),
    auth_status=403,
    error=error,
    malformed=b'{"temperature": {"tool0": {"actual": 21',
)


def _no_content() -> web.Response:
    return web.Response(status=204)


# -- state --------------------------------------------------------------------------------


def _operational(printer: SimPrinter) -> bool:
    return printer.link == READY and printer.fault != "not_ready"


def _require_operational(printer: SimPrinter) -> None:
    if not _operational(printer):
        raise BadRequest(NOT_OPERATIONAL, 409)


def _state_text(printer: SimPrinter) -> str:
    if printer.fault == "not_ready" or printer.link == CLOSED:
        return "Offline"
    if printer.link in (SHUTDOWN, LOST):
        return "Offline after error"
    if printer.job_state == PRINTING:
        return "Printing"
    if printer.job_state == PAUSED:
        return "Paused"
    return "Operational"


def _flags(printer: SimPrinter) -> dict[str, bool]:
    operational = _operational(printer)
    error = printer.link in (SHUTDOWN, LOST) and printer.fault != "not_ready"
    return {
        "operational": operational,
        "printing": operational and printer.job_state == PRINTING,
        "cancelling": False,
        "pausing": False,
        "resuming": False,
        "finishing": False,
        "closedOrError": not operational,
        "error": error,
        "paused": operational and printer.job_state == PAUSED,
        "ready": operational and not printer.busy,
        "sdReady": False,
    }


# -- status -------------------------------------------------------------------------------


async def version(request: web.Request) -> web.Response:
    return json_response({"api": "0.1", "server": VERSION, "text": f"OctoPrint {VERSION}"})


async def server(request: web.Request) -> web.Response:
    return json_response({"version": VERSION, "safemode": None})


async def printer_state(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    _require_operational(printer)
    now = request[NOW]
    exclude = {part.strip() for part in request.query.get("exclude", "").split(",") if part.strip()}
    data: dict[str, Any] = {}
    if "temperature" not in exclude:
        data["temperature"] = {
            "tool0": {
                "actual": printer.extruder.temperature(now),
                "target": printer.extruder.target,
                "offset": 0,
            },
            "bed": {"actual": printer.bed.temperature(now), "target": printer.bed.target, "offset": 0},
        }
    if "sd" not in exclude:
        data["sd"] = {"ready": False}
    if "state" not in exclude:
        data["state"] = {"text": _state_text(printer), "flags": _flags(printer), "error": ""}
    return json_response(data)


async def printer_error(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    failed = printer.link in (SHUTDOWN, LOST)
    return json_response(
        {
            "error": printer.link_message if failed else "",
            "reason": ("firmware" if printer.link == SHUTDOWN else "connection") if failed else "",
            "consequence": "disconnect" if failed else None,
            "faq": None,
            "logs": [f"Recv: Error:{printer.link_message}"] if failed else [],
        }
    )


def _file_refs(printer: SimPrinter, rel: str) -> dict[str, str]:
    return {
        "resource": f"{printer.base_url}/api/files/local/{rel}",
        "download": f"{printer.base_url}/downloads/files/local/{rel}",
    }


async def job(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    now = request[NOW]
    info = printer.files.get(printer.job_file) if printer.job_file else None
    selected = bool(printer.job_file) and printer.fault != "not_ready" and printer.link != CLOSED
    if selected:
        file = {
            "name": printer.job_file.rsplit("/", 1)[-1],
            "path": printer.job_file,
            "display": printer.job_file.rsplit("/", 1)[-1],
            "origin": "local",
            "size": printer.job_size,
            "date": int(info.modified) if info else None,
        }
        length = round(printer.job_duration * FILAMENT_PER_SECOND, 1)
        filament: dict[str, Any] | None = {"tool0": {"length": length, "volume": round(length * 0.0024, 2)}}
        estimated: float | None = printer.job_duration
    else:
        file = {"name": None, "path": None, "display": None, "origin": None, "size": None, "date": None}
        filament, estimated = None, None
    progress: dict[str, Any] = {
        "completion": None,
        "filepos": None,
        "printTime": None,
        "printTimeLeft": None,
        "printTimeLeftOrigin": None,
    }
    if selected and (printer.busy or printer.job_state == COMPLETE):
        fraction = printer.progress(now)
        elapsed = printer.print_duration(now)
        progress = {
            "completion": round(fraction * 100, 4),
            "filepos": int(printer.job_size * fraction),
            "printTime": int(elapsed),
            "printTimeLeft": max(0, int(round(printer.job_duration - elapsed))),
            "printTimeLeftOrigin": "analysis" if printer.job_from_estimate else "linear",
        }
    data: dict[str, Any] = {
        "job": {
            "file": file,
            "estimatedPrintTime": estimated,
            "lastPrintTime": printer.last_print_time if selected else None,
            "filament": filament,
            "user": "sim" if selected else None,
        },
        "progress": progress,
        "state": _state_text(printer),
    }
    if printer.link in (SHUTDOWN, LOST) and printer.fault != "not_ready":
        data["error"] = printer.link_message
    return json_response(data)


async def connection(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    connected = printer.link != CLOSED and printer.fault != "not_ready"
    return json_response(
        {
            "current": {
                "state": _state_text(printer) if connected else "Closed",
                "port": "VIRTUAL" if connected else None,
                "baudrate": 115200 if connected else None,
                "printerProfile": "_default",
            },
            "options": {
                "ports": ["VIRTUAL"],
                "baudrates": [250000, 230400, 115200, 57600, 38400, 19200, 9600],
                "printerProfiles": [{"id": "_default", "name": "Default"}],
                "portPreference": "VIRTUAL",
                "baudratePreference": None,
                "printerProfilePreference": "_default",
                "autoconnect": True,
            },
        }
    )


# -- commands -----------------------------------------------------------------------------


async def connection_command(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    body = await read_json(request)
    command = body.get("command")
    if command == "connect":
        # the firmware would not answer the handshake / the port is gone
        if printer.fault not in ("not_ready", "disconnect"):
            printer.connect()
    elif command == "disconnect":
        printer.disconnect(request[NOW])
    elif command != "fake_ack":
        raise BadRequest(f"Unknown command: {command}")
    return _no_content()


async def job_command(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    now = request[NOW]
    body = await read_json(request)
    command = body.get("command")
    if command not in ("start", "cancel", "restart", "pause"):
        raise BadRequest(f"Unknown command: {command}" if command else "Expected a command")
    _require_operational(printer)
    if command == "start":
        if printer.busy:
            raise BadRequest("Printer already has an active print job", 409)
        if not printer.job_file:
            raise BadRequest("Printer is not ready, no file selected", 409)
        printer.start(now, printer.job_file, duration=_known_duration(printer))
    elif command == "restart":
        if printer.job_state != PAUSED:
            raise BadRequest("Printer is not paused", 409)
        printer.restart_job(now)
    elif command == "cancel":
        if not printer.busy:
            raise BadRequest("Printer is neither printing nor paused", 409)
        printer.cancel(now)
    else:
        action = body.get("action", "toggle")
        if action not in ("pause", "resume", "toggle"):
            raise BadRequest(f"Unknown action: {action}")
        if not printer.busy:
            raise BadRequest("Printer is neither printing nor paused", 409)
        if action == "toggle":
            action = "resume" if printer.job_state == PAUSED else "pause"
        # pausing a paused job (or resuming a running one) is accepted and changes nothing
        if action == "pause" and printer.job_state == PRINTING:
            printer.pause(now)
        elif action == "resume" and printer.job_state == PAUSED:
            printer.resume(now)
    return _no_content()


def _known_duration(printer: SimPrinter) -> float | None:
    """Re-read the estimate of an uploaded file; keep the duration of a file that never was."""
    return None if printer.job_file in printer.files else printer.job_duration


def _target(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 500:
        raise BadRequest(f"Invalid target for {name}: {value!r}")
    return float(value)


async def tool_command(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    body = await read_json(request)
    command = body.get("command")
    if command not in ("target", "offset", "select", "extrude", "flowrate"):
        raise BadRequest(f"Unknown command: {command}")
    _require_operational(printer)
    if command == "target":
        targets = body.get("targets")
        if not isinstance(targets, dict) or not targets:
            raise BadRequest("Missing targets")
        for tool, value in targets.items():
            if tool != "tool0":
                raise BadRequest(f"Invalid tool: {tool}")
            printer.set_targets(request[NOW], hotend=_target(value, tool))
    return _no_content()


async def bed_command(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    body = await read_json(request)
    command = body.get("command")
    if command not in ("target", "offset"):
        raise BadRequest(f"Unknown command: {command}")
    _require_operational(printer)
    if command == "target":
        printer.set_targets(request[NOW], bed=_target(body.get("target"), "bed"))
    return _no_content()


async def printer_command(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    now = request[NOW]
    body = await read_json(request)
    commands = body.get("commands")
    if commands is None and "command" in body:
        commands = [body["command"]]
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise BadRequest("Expected command or commands")
    _require_operational(printer)
    for raw in commands:
        words = raw.split(";", 1)[0].split()
        if not words:
            continue
        code = words[0].upper()
        params = {w[0].upper(): w[1:] for w in words[1:] if w}
        if code == "M112":
            # OctoPrint force-sends M112 and the firmware halts; the serial port closes with error.
            printer.emergency_stop(now, ESTOP_MESSAGE)
            break
        if code in ("M104", "M109", "M140", "M190") and "S" in params:
            try:
                value = float(params["S"])
            except ValueError:
                continue  # the firmware ignores an unparsable S; OctoPrint does not validate
            if code in ("M104", "M109"):
                printer.set_targets(now, hotend=value)
            else:
                printer.set_targets(now, bed=value)
    return _no_content()


# -- files --------------------------------------------------------------------------------


def _file_entry(printer: SimPrinter, info: SimFile) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": info.name,
        "display": info.name,
        "path": info.path,
        "type": "machinecode",
        "typePath": ["machinecode", "gcode"],
        "origin": "local",
        "refs": _file_refs(printer, info.path),
        "size": info.size,
        "date": int(info.modified),
    }
    if info.estimated_time is not None:
        entry["gcodeAnalysis"] = {"estimatedPrintTime": info.estimated_time}
    return entry


async def files_list(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    files = [_file_entry(printer, f) for f in sorted(printer.files.values(), key=lambda f: f.path)]
    return json_response({"files": files, "free": 10 * 1024**3, "total": 32 * 1024**3})


async def files_upload(request: web.Request) -> web.StreamResponse:
    printer: SimPrinter = request[PRINTER]
    upload = await receive_upload(request)
    try:
        if upload.tmp_path is None:
            raise BadRequest("No file to upload and no folder to create")
        try:
            rel = clean_path(upload.fields.get("path", ""), upload.filename)
        except UploadRejected as exc:
            raise BadRequest(exc.message, exc.status) from exc
        if not rel.lower().endswith(UPLOAD_EXTENSIONS):
            raise BadRequest(f"Could not upload the file {rel}, invalid type", 415)
        if printer.busy and rel == printer.job_file:
            raise BadRequest(f"Trying to overwrite file that is currently being printed: {rel}", 409)
        info = upload.commit(printer.files_dir, rel)
    finally:
        upload.discard()
    printer.add_file(info)
    want_print = upload.fields.get("print", "").lower() == "true"
    want_select = want_print or upload.fields.get("select", "").lower() == "true"
    printable = rel.lower().endswith(PRINTABLE_EXTENSIONS)
    # Not operational or busy: OctoPrint stores the file and silently drops select/print.
    effective_select = want_select and printable and _operational(printer) and not printer.busy
    effective_print = want_print and effective_select
    if effective_print:
        printer.start(request[NOW], rel)
    elif effective_select:
        printer.select(rel)
    refs = _file_refs(printer, rel)
    return json_response(
        {
            "files": {"local": {"name": info.name, "path": rel, "origin": "local", "refs": refs}},
            "done": True,
            "effectiveSelect": effective_select,
            "effectivePrint": effective_print,
        },
        status=201,
        headers={"Location": refs["resource"]},
    )


def _lookup(request: web.Request) -> tuple[SimPrinter, SimFile]:
    printer: SimPrinter = request[PRINTER]
    raw = request.match_info["path"]
    try:
        rel = clean_path(raw)
    except UploadRejected as exc:
        raise BadRequest(f"File not found on 'local': {raw}", 404) from exc
    info = printer.files.get(rel)
    if info is None:
        raise BadRequest(f"File not found on 'local': {rel}", 404)
    return printer, info


async def file_info(request: web.Request) -> web.Response:
    printer, info = _lookup(request)
    return json_response(_file_entry(printer, info))


async def file_command(request: web.Request) -> web.Response:
    printer, info = _lookup(request)
    body = await read_json(request)
    command = body.get("command")
    if command != "select":
        raise BadRequest(f"Unknown command: {command}" if command else "Expected a command")
    _require_operational(printer)
    if printer.busy:
        raise BadRequest("Printer is already printing, cannot select a new file", 409)
    if not info.path.lower().endswith(PRINTABLE_EXTENSIONS):
        raise BadRequest(f"Cannot select {info.path} for printing, not a machinecode file", 415)
    if body.get("print") is True:
        printer.start(request[NOW], info.path)
    else:
        printer.select(info.path)
    return _no_content()


async def file_delete(request: web.Request) -> web.Response:
    printer, info = _lookup(request)
    if printer.busy and info.path == printer.job_file:
        raise BadRequest(f"Trying to delete a file that is currently in use: {info.path}", 409)
    if printer.job_file == info.path:
        printer.job_file = ""
    printer.delete_file(info.path)
    return _no_content()


async def file_download(request: web.Request) -> web.StreamResponse:
    printer, info = _lookup(request)
    return web.FileResponse(printer.file_path(info.path))


def build_app(farm: object) -> web.Application:
    app = web.Application(middlewares=[printer_middleware(SPEC)], client_max_size=1024**2)
    app[FARM] = farm  # type: ignore[assignment]
    add = app.router.add_route
    add("GET", "/api/version", version)
    add("GET", "/api/server", server)
    add("GET", "/api/printer", printer_state)
    add("GET", "/api/printer/error", printer_error)
    add("POST", "/api/printer/command", printer_command)
    add("POST", "/api/printer/tool", tool_command)
    add("POST", "/api/printer/bed", bed_command)
    add("GET", "/api/job", job)
    add("POST", "/api/job", job_command)
    add("GET", "/api/connection", connection)
    add("POST", "/api/connection", connection_command)
    add("GET", "/api/files", files_list)
    add("GET", "/api/files/local", files_list)
    add("POST", "/api/files/local", files_upload)
    add("GET", "/api/files/local/{path:.+}", file_info)
    add("POST", "/api/files/local/{path:.+}", file_command)
    add("DELETE", "/api/files/local/{path:.+}", file_delete)
    add("GET", "/downloads/files/local/{path:.+}", file_download)
    return app
