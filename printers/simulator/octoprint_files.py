"""OctoPrint's file routes for simulated printers: list, upload (and select/print), info,
select, delete, download.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from aiohttp import web

from printers.simulator.common import NOW, PRINTER, BadRequest, json_response, read_json, receive_upload
from printers.simulator.files import SimFile, SimThumbnail, UploadRejected, clean_path
from printers.simulator.octoprint_state import is_operational, no_content, require_operational
from printers.simulator.printer import SimPrinter

UPLOAD_EXTENSIONS = (".gcode", ".gco", ".g", ".stl")
PRINTABLE_EXTENSIONS = (".gcode", ".gco", ".g")


def _file_refs(printer: SimPrinter, rel: str) -> dict[str, str]:
    return {
        "resource": f"{printer.base_url}/api/files/local/{rel}",
        "download": f"{printer.base_url}/downloads/files/local/{rel}",
    }


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
    if _plugin_thumbnail(info) is not None:
        # The PrusaSlicer Thumbnails plugin's fields: a path under OctoPrint's address.
        entry["thumbnail"] = f"{THUMBNAIL_ROUTE}/{_thumb_path(info)}?{int(info.modified)}"
        entry["thumbnail_src"] = "prusaslicerthumbnails"
    return entry


THUMBNAIL_ROUTE = "plugin/prusaslicerthumbnails/thumbnail"


def _plugin_thumbnail(info: SimFile) -> SimThumbnail | None:
    """The image the plugin extracts: the largest one embedded."""
    return max(info.thumbnails, key=lambda t: t.width * t.height, default=None)


def _thumb_path(info: SimFile) -> str:
    thumb = _plugin_thumbnail(info)
    return str(PurePosixPath(info.path).with_suffix(f".{thumb.ext if thumb else 'png'}"))


async def plugin_thumbnail(request: web.Request) -> web.Response:
    """GET /plugin/prusaslicerthumbnails/thumbnail/<path>: the plugin's extracted image."""
    printer: SimPrinter = request[PRINTER]
    wanted = request.match_info["path"]
    for info in printer.files.values():
        thumb = _plugin_thumbnail(info)
        if thumb is not None and _thumb_path(info) == wanted:
            kind = "image/png" if thumb.ext == "png" else "image/jpeg"
            return web.Response(body=thumb.data, content_type=kind)
    raise BadRequest("Not found", 404)


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
    effective_select = want_select and printable and is_operational(printer) and not printer.busy
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
    require_operational(printer)
    if printer.busy:
        raise BadRequest("Printer is already printing, cannot select a new file", 409)
    if not info.path.lower().endswith(PRINTABLE_EXTENSIONS):
        raise BadRequest(f"Cannot select {info.path} for printing, not a machinecode file", 415)
    if body.get("print") is True:
        printer.start(request[NOW], info.path)
    else:
        printer.select(info.path)
    return no_content()


async def file_delete(request: web.Request) -> web.Response:
    printer, info = _lookup(request)
    if printer.busy and info.path == printer.job_file:
        raise BadRequest(f"Trying to delete a file that is currently in use: {info.path}", 409)
    if printer.job_file == info.path:
        printer.job_file = ""
    printer.delete_file(info.path)
    return no_content()


async def file_download(request: web.Request) -> web.StreamResponse:
    printer, info = _lookup(request)
    return web.FileResponse(printer.file_path(info.path))
