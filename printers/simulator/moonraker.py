"""Moonraker (Klipper) HTTP API routes for simulated printers (printer-protocols.md section 1).

Also Moonraker's job history (`[history]` component): GET /server/history/list
(limit, start, since, before, order) and GET /server/history/job?uid=, from the printer's
print records. The "disconnect" fault reads as Klippy gone after it was connected: server/info
says klippy_state "disconnected", /printer/* answers 503 "Klippy Host not connected". The
"not_ready" fault reads as Klippy never connected since Moonraker started (Moonraker 0.11):
the endpoints Klippy registers (info, objects, gcode/script, emergency_stop) answer 404 "Not
Found", Moonraker's own /printer/print/* and restarts 503 "Klippy Host not connected".
"""

from __future__ import annotations

import shlex
import time
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
from printers.simulator.files import GCODE_EXTENSIONS, SimFile, UploadRejected, clean_path
from printers.simulator.klipper import OBJECT_NAMES, printer_objects, webhooks_state
from printers.simulator.printer import (
    FILAMENT_PER_SECOND,
    LOST,
    PAUSED,
    PRINTING,
    READY,
    SHUTDOWN,
    PrintRecord,
    SimPrinter,
)

MOONRAKER_VERSION = "v0.9.3-42-gsim"
KLIPPER_VERSION = "v0.12.0-500-gsim"
API_VERSION = [1, 5, 0]
ROOTS = ("gcodes", "config")


def error(status: int, message: str) -> web.Response:
    return json_response({"error": {"code": status, "message": message}}, status=status)


def result(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"result": data}, status=status, headers=headers)


SPEC = ProtocolSpec(
    status_path="/printer/objects/query",
    upload_paths=frozenset({"/server/files/upload"}),
    auth_exempt=frozenset({"/access/info"}),
    auth_status=401,
    error=error,
    malformed=b'{"result": {"eventtime": 1234.5, "status": {"webhooks": {"state": "rea',
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
    builders = printer_objects(request[PRINTER], request[NOW])
    status: dict[str, Any] = {}
    for name, fields in wanted.items():
        build = builders.get(name)
        if build is None:
            continue  # unknown objects are silently omitted, as Klipper does
        values = build()
        status[name] = values if fields is None else {f: values[f] for f in fields if f in values}
    return result({"eventtime": round(time.monotonic(), 3), "status": status})


async def objects_list(request: web.Request) -> web.Response:
    _klippy_endpoint(request)
    return result({"objects": list(OBJECT_NAMES)})


# -- info ---------------------------------------------------------------------------------


async def server_info(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    connected = printer.fault != "not_ready" and printer.link != LOST
    # Without a Klippy socket Moonraker says "disconnected" (KlippyConnection.state).
    klippy_state = webhooks_state(printer)[0] if connected else "disconnected"
    return result(
        {
            "klippy_connected": connected,
            "klippy_state": klippy_state,
            "components": ["klippy_connection", "application", "file_manager", "klippy_apis", "history"],
            "failed_components": [],
            "registered_directories": ["config", "logs", "gcodes"],
            "warnings": [],
            "websocket_count": 0,
            "moonraker_version": MOONRAKER_VERSION,
            "missing_klippy_requirements": [],
            "api_version": API_VERSION,
            "api_version_string": ".".join(map(str, API_VERSION)),
        }
    )


async def printer_info(request: web.Request) -> web.Response:
    _klippy_endpoint(request)
    printer: SimPrinter = request[PRINTER]
    state, message = webhooks_state(printer)
    return result(
        {
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
    )


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


# -- files --------------------------------------------------------------------------------


def _item(printer: SimPrinter, rel: str, root: str) -> dict[str, Any]:
    info = printer.files.get(rel) if root == "gcodes" else None
    path = (printer.files_dir if root == "gcodes" else printer.storage / root) / rel
    if info is None:
        stat = path.stat()
        size, modified = stat.st_size, stat.st_mtime
    else:
        size, modified = info.size, info.modified
    return {"path": rel, "root": root, "modified": round(modified, 3), "size": size, "permissions": "rw"}


async def files_upload(request: web.Request) -> web.StreamResponse:
    printer: SimPrinter = request[PRINTER]
    upload = await receive_upload(request)
    try:
        if upload.tmp_path is None:
            raise BadRequest("No file name specified in upload form")
        root = upload.fields.get("root", "gcodes") or "gcodes"
        if root not in ROOTS:
            raise BadRequest(f"Invalid root request: {root}")
        try:
            rel = clean_path(upload.fields.get("path", ""), upload.filename)
        except UploadRejected as exc:
            raise BadRequest(exc.message, exc.status) from exc
        if root == "gcodes" and not rel.lower().endswith(GCODE_EXTENSIONS):
            raise BadRequest(f"File extension not supported for root 'gcodes': {rel}")
        checksum = upload.fields.get("checksum", "").strip().lower()
        if checksum and checksum != upload.sha256:
            raise BadRequest(f"File checksum mismatch: expected {checksum}, calculated {upload.sha256}", 422)
        if root == "gcodes" and printer.busy and rel == printer.job_file:
            raise BadRequest("File is loaded, upload not permitted", 403)
        dest_root = printer.files_dir if root == "gcodes" else printer.storage / root
        action = "modify_file" if (dest_root / rel).exists() else "create_file"
        info = upload.commit(dest_root, rel)
    finally:
        upload.discard()
    started = False
    if root == "gcodes":
        printer.add_file(info)
        wants_print = upload.fields.get("print", "").lower() == "true"
        if wants_print and printer.fault != "not_ready" and printer.link == READY and not printer.busy:
            printer.start(request[NOW], rel)
            started = True
    return result(
        {
            "item": _item(printer, rel, root),
            "print_started": started,
            "print_queued": False,
            "action": action,
        },
        status=201,
        headers={"Location": f"/server/files/{root}/{rel}"},
    )


async def files_list(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    root = request.query.get("root", "gcodes")
    if root not in ROOTS:
        raise BadRequest(f"Invalid root request: {root}", 404)
    if root == "gcodes":
        items = [
            {"path": f.path, "modified": round(f.modified, 3), "size": f.size, "permissions": "rw"}
            for f in sorted(printer.files.values(), key=lambda f: f.path)
        ]
    else:
        base = printer.storage / root
        items = [
            {
                "path": p.relative_to(base).as_posix(),
                "modified": round(p.stat().st_mtime, 3),
                "size": p.stat().st_size,
                "permissions": "rw",
            }
            for p in sorted(base.rglob("*"))
            if p.is_file()
        ]
    return result(items)


def _metadata(printer: SimPrinter, info: SimFile) -> dict[str, Any]:
    data: dict[str, Any] = {
        "size": info.size,
        "modified": round(info.modified, 3),
        "uuid": f"sim-{printer.index}-{abs(hash(info.path)) % 10**8}",
        "slicer": info.slicer,
        "slicer_version": info.slicer_version,
        "estimated_time": info.estimated_time,
        "first_layer_extr_temp": info.hotend_temp,
        "first_layer_bed_temp": info.bed_temp,
        "thumbnails": [],
        "print_start_time": None,
        "job_id": None,
        "filename": info.path,
    }
    # Moonraker omits values it could not extract.
    return {k: v for k, v in data.items() if v is not None or k in ("print_start_time", "job_id")}


async def files_metadata(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    filename = request.query.get("filename", "")
    if not filename:
        raise BadRequest("No data for argument: filename")
    info = printer.files.get(filename.lstrip("/"))
    if info is None:
        raise BadRequest(f"Metadata not available for <{filename}>", 404)
    return result(_metadata(printer, info))


# -- job history --------------------------------------------------------------------------


def job_uid(record: PrintRecord) -> str:
    return f"{record.job_id:06X}"  # Moonraker's history ids: six hex digits


def _history_entry(printer: SimPrinter, record: PrintRecord, now: float) -> dict[str, Any]:
    printed, total_duration = printer.record_durations(record, now)
    print_duration = printer.klipper_duration(printed)
    info = printer.files.get(record.filename)
    metadata = _metadata(printer, info) if info is not None else {}
    for redundant in ("job_id", "print_start_time"):
        metadata.pop(redundant, None)
    return {
        "job_id": job_uid(record),
        "user": None,
        "filename": record.filename,
        "exists": info is not None,
        "status": record.outcome,
        "start_time": record.started,
        "end_time": record.ended,
        "print_duration": round(print_duration, 3),
        "total_duration": round(total_duration, 3),
        "filament_used": round(print_duration * FILAMENT_PER_SECOND, 2),
        "metadata": metadata,
        "auxiliary_data": [],
    }


def _number_arg(request: web.Request, name: str, kind: type[int] | type[float], default: Any) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise BadRequest(f"Unable to convert argument '{name}' to {kind.__name__}: {raw!r}") from exc


async def history_list(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    limit = _number_arg(request, "limit", int, 50)
    start = _number_arg(request, "start", int, 0)
    since = _number_arg(request, "since", float, None)
    before = _number_arg(request, "before", float, None)
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest(f"Invalid `order` value: {order}")
    records = [
        r
        for r in printer.prints
        if (since is None or r.started > since) and (before is None or r.started < before)
    ]
    if order == "desc":
        records.reverse()
    page = records[max(0, start) :][: max(0, limit)]
    jobs = [_history_entry(printer, r, request[NOW]) for r in page]
    return result({"count": len(jobs), "jobs": jobs})


async def history_job(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    uid = request.query.get("uid")
    if not uid:
        raise BadRequest("No data for argument: uid")
    for record in printer.prints:
        if job_uid(record) == uid.upper():
            return result({"job": _history_entry(printer, record, request[NOW])})
    raise BadRequest(f"Invalid job uid: {uid}", 404)


def _root_path(request: web.Request) -> tuple[SimPrinter, str, str]:
    printer: SimPrinter = request[PRINTER]
    root = request.match_info["root"]
    if root not in ROOTS:
        raise BadRequest(f"Invalid root request: {root}", 404)
    try:
        rel = clean_path(request.match_info["path"])
    except UploadRejected as exc:
        raise BadRequest(exc.message, 404) from exc
    return printer, root, rel


async def file_download(request: web.Request) -> web.StreamResponse:
    printer, root, rel = _root_path(request)
    path = (printer.files_dir if root == "gcodes" else printer.storage / root) / rel
    if not path.is_file():
        raise BadRequest(f"File {rel} does not exist", 404)
    return web.FileResponse(path)


async def file_delete(request: web.Request) -> web.Response:
    printer, root, rel = _root_path(request)
    path = (printer.files_dir if root == "gcodes" else printer.storage / root) / rel
    if not path.is_file():
        raise BadRequest(f"File {rel} does not exist", 404)
    if root == "gcodes" and printer.busy and rel == printer.job_file:
        raise BadRequest(f"File {rel} is loaded, delete not permitted", 403)
    item = _item(printer, rel, root)
    if root == "gcodes":
        printer.delete_file(rel)
    else:
        path.unlink()
    return result({"item": item, "action": "delete_file"})


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
    return app
