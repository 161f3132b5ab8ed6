"""OctoPrint 1.11 REST API routes for simulated printers (printer-protocols.md section 2).

The "disconnect" fault reads as a lost serial port: state "Offline after error" (flags error,
closedOrError), /api/job carries the SerialException, /api/printer answers 409. The route
table (build_app), status and commands are here; files in octoprint_files, the link state
both share in octoprint_state.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from printers.simulator import cameras
from printers.simulator.common import (
    FARM,
    NOW,
    PRINTER,
    BadRequest,
    ProtocolSpec,
    json_response,
    printer_middleware,
    read_json,
)
from printers.simulator.octoprint_files import (
    file_command,
    file_delete,
    file_download,
    file_info,
    files_list,
    files_upload,
    plugin_thumbnail,
)
from printers.simulator.octoprint_state import no_content, require_operational, state_flags, state_text
from printers.simulator.printer import (
    CLOSED,
    COMPLETE,
    FILAMENT_PER_SECOND,
    LOST,
    PAUSED,
    PRINTING,
    SHUTDOWN,
    SimPrinter,
)

VERSION = "1.11.8"
ESTOP_MESSAGE = "Printer halted. kill() called!"  # what Marlin answers to M112


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


SPEC = ProtocolSpec(
    status_path="/api/printer",
    upload_paths=frozenset({"/api/files/local"}),
    auth_exempt=frozenset({"/webcam/"}),  # OctoPi's mjpg-streamer, behind haproxy: no API key
    auth_status=403,
    error=error,
    malformed=b'{"temperature": {"tool0": {"actual": 21',
)


# -- status -------------------------------------------------------------------------------


async def version(request: web.Request) -> web.Response:
    return json_response({"api": "0.1", "server": VERSION, "text": f"OctoPrint {VERSION}"})


async def server(request: web.Request) -> web.Response:
    return json_response({"version": VERSION, "safemode": None})


async def printer_state(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    require_operational(printer)
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
        data["state"] = {"text": state_text(printer), "flags": state_flags(printer), "error": ""}
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
        "state": state_text(printer),
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
                "state": state_text(printer) if connected else "Closed",
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
    return no_content()


async def job_command(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    now = request[NOW]
    body = await read_json(request)
    command = body.get("command")
    if command not in ("start", "cancel", "restart", "pause"):
        raise BadRequest(f"Unknown command: {command}" if command else "Expected a command")
    require_operational(printer)
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
    return no_content()


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
    require_operational(printer)
    if command == "target":
        targets = body.get("targets")
        if not isinstance(targets, dict) or not targets:
            raise BadRequest("Missing targets")
        for tool, value in targets.items():
            if tool != "tool0":
                raise BadRequest(f"Invalid tool: {tool}")
            printer.set_targets(request[NOW], hotend=_target(value, tool))
    return no_content()


async def bed_command(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    body = await read_json(request)
    command = body.get("command")
    if command not in ("target", "offset"):
        raise BadRequest(f"Unknown command: {command}")
    require_operational(printer)
    if command == "target":
        printer.set_targets(request[NOW], bed=_target(body.get("target"), "bed"))
    return no_content()


async def printer_command(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    now = request[NOW]
    body = await read_json(request)
    commands = body.get("commands")
    if commands is None and "command" in body:
        commands = [body["command"]]
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise BadRequest("Expected command or commands")
    require_operational(printer)
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
    return no_content()


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
    add("GET", "/plugin/prusaslicerthumbnails/thumbnail/{path:.+}", plugin_thumbnail)
    cameras.add_routes(app, "octoprint")
    return app
