"""PrusaLink v1 file routes of a simulated Buddy printer: the raw PUT upload streamed to the USB
stick (one transfer at a time, visible only once complete), start, info, HEAD, delete, the
storage list, the transfer, and the /usb/ download.

Upload answers follow Buddy lib/WUI/nhttp/gcode_upload.cpp in its order: 411 without
Content-Length, 501 for an empty body, 409 "Another transfer in progress", 507 for the USB
stick, then (at the first body bytes) 415 "Not a GCODE", 422 for characters FAT refuses, 409
"File already exists" / "File is busy"; 400 "Truncated body" when the client ends early; 201
with the file's info, or 409 "Can't print right now" when Print-After-Upload was refused (the
file is kept). Every upload answer closes the connection.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import zlib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from aiohttp import web

from printers.simulator.common import (
    FARM,
    NOW,
    PRINTER,
    RESET_AFTER,
    BadRequest,
    abort_connection,
    json_response,
)
from printers.simulator.files import CHUNK, HEAD_BYTES, TAIL_BYTES, ReceivedUpload, SimFile
from printers.simulator.printer import SimPrinter
from printers.simulator.prusalink_replies import DEVICE, SLOT, status_page, wants_json
from printers.simulator.prusalink_state import FREE_SPACE, PrusaLinkDevice, Transfer

if TYPE_CHECKING:
    from printers.simulator.farm import SimulatedFarm

PRINTABLE = (".gcode", ".gc", ".g", ".gco", ".bgcode", ".bgc")  # Buddy filename_type.cpp
# Content types a client may declare for the raw body; anything else (say a multipart form)
# would be stored verbatim by the printer, which is a client bug worth a loud 415 here.
BODY_TYPES = ("application/octet-stream", "text/x.gcode", "")
FAT_INVALID = re.compile(r'[\\:*?"<>|\x00-\x1f]')
SLOW_USB_CHUNK = 16 * 1024  # the "slow_usb" fault: this much per SLOW_USB_PAUSE
SLOW_USB_PAUSE = 0.1  # seconds


def _ctx(request: web.Request) -> tuple[SimPrinter, PrusaLinkDevice]:
    return request[PRINTER], request[DEVICE]


def _rel(request: web.Request) -> str:
    """The path below /usb/, "" for the root; 404 for one that climbs out (Buddy uri_filename)."""
    raw = request.match_info.get("path", "")
    parts = [p for p in raw.split("/") if p]  # Buddy dedups slashes
    if any(p in (".", "..") for p in parts):
        raise BadRequest("", 404)
    return "/".join(parts)


def _true(request: web.Request, header: str, *extra: str) -> bool:
    """RFC 8941 boolean `?1`; Print-After-Upload also takes "1" and "true" on Buddy."""
    return request.headers.get(header, "").strip() in ("?1", *extra)


def _usb_missing(printer: SimPrinter) -> bool:
    return printer.fault == "no_usb"


def _file_entry(printer: SimPrinter, info: SimFile) -> dict[str, Any]:
    """Buddy FileInfo v1 for a file."""
    entry: dict[str, Any] = {
        "name": info.name,
        "ro": False,
        "type": "PRINT_FILE" if info.path.lower().endswith(PRINTABLE) else "FILE",
        "m_timestamp": int(info.modified),
        "size": info.size,
        "refs": {"download": f"/usb/{info.path}"},
        "display_name": info.name,
    }
    if info.path.lower().endswith(PRINTABLE):
        entry["refs"] = {
            "icon": f"/thumb/s/usb/{info.path}",
            "thumbnail": f"/thumb/l/usb/{info.path}",
            "download": f"/usb/{info.path}",
        }
    meta: dict[str, Any] = {}
    if info.estimated_time is not None:
        meta["estimated_print_time"] = int(info.estimated_time)
    if info.hotend_temp is not None:
        meta["temperature"] = info.hotend_temp
    if info.bed_temp is not None:
        meta["bed_temperature"] = info.bed_temp
    if meta:
        entry["meta"] = meta
    return entry


def _folder_entry(name: str) -> dict[str, Any]:
    return {"name": name, "display_name": name, "ro": False, "type": "FOLDER"}


def _folder(printer: SimPrinter, rel: str) -> dict[str, Any] | None:
    """Buddy's folder listing (direct children), or None when `rel` is no folder."""
    root = printer.files_dir / rel if rel else printer.files_dir
    prefix = f"{rel}/" if rel else ""
    names: dict[str, dict[str, Any]] = {}
    for path, info in sorted(printer.files.items()):
        if not path.startswith(prefix):
            continue
        head, sep, _tail = path[len(prefix) :].partition("/")
        if sep:
            names.setdefault(head, _folder_entry(head))
        else:
            entry = _file_entry(printer, info)
            names[head] = {k: v for k, v in entry.items() if k != "meta"}
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and child.name not in names:
                names[child.name] = {
                    "name": child.name,
                    "display_name": child.name,
                    "ro": False,
                    "type": "FOLDER",
                }
    if rel and not names and not root.is_dir():
        return None
    return {
        "type": "FOLDER",
        "ro": False,
        "name": PurePosixPath(rel).name if rel else "usb",
        "children": list(names.values()),
    }


def _etag(listing: dict[str, Any]) -> int:
    """A numeric ETag (Buddy's are change-chain hashes; 0 means none)."""
    signature = repr([(c["name"], c.get("size"), c.get("m_timestamp")) for c in listing["children"]])
    return zlib.crc32(signature.encode()) or 1


# -- reads ----------------------------------------------------------------------------------


async def storage_list(request: web.Request) -> web.Response:
    printer, _device = _ctx(request)
    return json_response(
        {
            "storage_list": [
                {
                    "path": "/usb/",
                    "name": "usb",
                    "type": "USB",
                    "read_only": False,
                    "available": not _usb_missing(printer),
                }
            ]
        }
    )


async def file_info(request: web.Request) -> web.Response:
    printer, _device = _ctx(request)
    rel = _rel(request)
    if _usb_missing(printer):
        if rel:
            raise BadRequest("", 404)
        return json_response({"type": "FOLDER", "ro": False, "name": "usb", "children": []})
    info = printer.files.get(rel)
    if info is not None:
        return json_response(_file_entry(printer, info))
    listing = _folder(printer, rel)
    if listing is None:
        raise BadRequest("", 404)
    etag = _etag(listing)
    if request.headers.get("If-None-Match", "").strip('" ') == str(etag):
        return web.Response(status=304, headers={"ETag": f'"{etag}"'})
    return json_response(listing, headers={"ETag": f'"{etag}"'})


async def file_head(request: web.Request) -> web.Response:
    printer, _device = _ctx(request)
    rel = _rel(request)
    info = None if _usb_missing(printer) else printer.files.get(rel)
    if info is None and (_usb_missing(printer) or _folder(printer, rel) is None):
        return web.Response(status=404)
    printing = info is not None and printer.busy and printer.job_file == rel
    return web.Response(
        status=200,
        content_type="application/json",
        headers={"Read-Only": "false", "Currently-Printing": "true" if printing else "false"},
    )


async def download(request: web.Request) -> web.StreamResponse:
    printer, _device = _ctx(request)
    rel = _rel(request)
    if _usb_missing(printer) or rel not in printer.files:
        raise BadRequest("", 404)
    return web.FileResponse(printer.file_path(rel))


async def transfer_info(request: web.Request) -> web.Response:
    _printer, device = _ctx(request)
    transfer = device.transfer
    if transfer is None:
        return web.Response(status=204)
    elapsed = time.monotonic() - transfer.started
    fraction = transfer.transferred / transfer.size if transfer.size else 0.0
    remaining = int(elapsed / fraction - elapsed) if fraction > 0 else 0
    folder, _sep, name = transfer.path.rpartition("/")
    return json_response(
        {
            "type": "FROM_CLIENT",
            "display_name": name,
            "path": f"/usb/{folder}" if folder else "/usb",
            "size": str(transfer.size),
            "progress": round(fraction, 2),
            "transferred": transfer.transferred,
            "time_remaining": remaining,
            "time_transferring": int(elapsed),
            "to_print": transfer.to_print,
            "id": transfer.id,
        }
    )


async def transfer_cancel(request: web.Request) -> web.Response:
    """Stop the upload (the uploader gets 503 and a closed connection); 404 for another id."""
    _printer, device = _ctx(request)
    transfer = device.transfer
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise BadRequest("", 400)
    if transfer is None or transfer.id != int(raw):
        raise BadRequest("", 404)
    transfer.stopped = True
    return web.Response(status=204)


# -- changes ----------------------------------------------------------------------------------


async def file_delete(request: web.Request) -> web.Response:
    printer, device = _ctx(request)
    rel = _rel(request)
    if _usb_missing(printer) or not rel:
        raise BadRequest("", 404)
    if rel in printer.files:
        if printer.busy and printer.job_file == rel:
            raise BadRequest("File is busy", 409)
        if printer.job_file == rel and not printer.busy:
            printer.job_file = ""
        printer.delete_file(rel)
        return web.Response(status=204)
    listing = _folder(printer, rel)
    if listing is None:
        raise BadRequest("", 404)
    if listing["children"] and not _true(request, "Force"):
        raise BadRequest("Directory not empty", 409)
    if printer.busy and printer.job_file.startswith(f"{rel}/"):
        raise BadRequest("File is busy", 409)
    for path in [p for p in printer.files if p.startswith(f"{rel}/")]:
        printer.files.pop(path, None)
    printer.delete_file(rel)
    return web.Response(status=204)


async def file_print(request: web.Request) -> web.Response:
    """Start printing a stored file: 204, 404 without it, 409 when the printer can't print now.
    Buddy closes the connection after every answer here."""
    printer, device = _ctx(request)
    rel = _rel(request)
    try:
        if _usb_missing(printer) or rel not in printer.files:
            raise BadRequest("", 404)
        if not rel.lower().endswith(PRINTABLE) or not device.can_start():
            raise BadRequest("", 409)
        printer.start(request[NOW], rel)
    except BadRequest as exc:
        response = _page(request, exc.status, exc.message)
    else:
        response = web.Response(status=204)
    response.force_close()
    return response


def _page(request: web.Request, status: int, message: str) -> web.Response:
    return status_page(status, message, json_errors=wants_json(request))


async def file_upload(request: web.Request) -> web.StreamResponse:
    """PUT: a raw-body upload, or a folder with Create-Folder: ?1."""
    printer, device = _ctx(request)
    rel = _rel(request)
    if _true(request, "Create-Folder"):
        return _create_folder(printer, rel)
    try:
        response = await _upload(request, printer, device, rel)
    except BadRequest as exc:
        response = _page(request, exc.status, exc.message)
    response.force_close()  # Buddy's transfer slot has no keep-alive
    return response


def _create_folder(printer: SimPrinter, rel: str) -> web.Response:
    if _usb_missing(printer):
        raise BadRequest("Missing USB drive", 507)
    if not rel or FAT_INVALID.search(rel):
        raise BadRequest("Filename contains invalid characters", 422)
    path = printer.files_dir / rel
    if path.exists() or rel in printer.files:
        raise BadRequest("Already exists", 409)
    path.mkdir(parents=True)
    return web.Response(status=201)


async def _upload(
    request: web.Request, printer: SimPrinter, device: PrusaLinkDevice, rel: str
) -> web.Response:
    if "Content-Length" not in request.headers or request.content_length is None:
        raise BadRequest("", 411)
    size = request.content_length
    if size == 0:
        raise BadRequest("0-sized files aren't implemented", 501)
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type not in BODY_TYPES:
        raise BadRequest(f"Unsupported Content-Type {content_type}", 415)
    if device.transfer is not None:
        raise BadRequest("Another transfer in progress", 409)
    if _usb_missing(printer):
        raise BadRequest("Missing USB drive", 507)
    limit = FREE_SPACE if device.usb_bytes_limit is None else device.usb_bytes_limit
    if printer.fault == "usb_full" or size > limit:
        raise BadRequest("USB drive full", 507)
    device.transfer_ids += 1
    to_print = _true(request, "Print-After-Upload", "1", "true")
    transfer = Transfer(
        id=device.transfer_ids, path=rel, size=size, to_print=to_print, started=time.monotonic()
    )
    device.transfer = transfer
    upload = ReceivedUpload(filename=rel)
    try:
        _check_name(printer, rel, overwrite=_true(request, "Overwrite"))
        # The body goes to the transfer slot: the request slot is free for other clients.
        request[SLOT].release()
        aborted = await _receive(request, printer, transfer, upload)
        if aborted is not None:
            return aborted
        # Checked again at the end: the printer may have started printing this file meanwhile.
        _check_name(printer, rel, overwrite=_true(request, "Overwrite"))
        info = upload.commit(printer.files_dir, rel)
    finally:
        upload.discard()
        if device.transfer is transfer:
            device.transfer = None
    printer.add_file(info)
    if to_print:
        if not device.can_start():
            raise BadRequest("Can't print right now", 409)
        printer.start(request[NOW], rel)
    return json_response(_file_entry(printer, info), status=201)


def _check_name(printer: SimPrinter, rel: str, *, overwrite: bool) -> None:
    if not rel.lower().endswith(PRINTABLE):
        raise BadRequest("Not a GCODE", 415)
    if FAT_INVALID.search(rel):
        raise BadRequest("Filename contains invalid characters", 422)
    if (printer.files_dir / rel).is_dir():
        raise BadRequest("Is a directory or ongoing transfer", 409)
    if rel in printer.files:
        if not overwrite:
            raise BadRequest("File already exists", 409)
        if printer.busy and printer.job_file == rel:
            raise BadRequest("File is busy", 409)


async def _receive(
    request: web.Request, printer: SimPrinter, transfer: Transfer, upload: ReceivedUpload
) -> web.Response | None:
    """Stream the body into a temp file on the stick; the faults that hit uploads act here.
    Returns a response that ends the upload early (or raises BadRequest), None when complete."""
    farm: SimulatedFarm = request.app[FARM]
    tmp_dir = printer.storage / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".sim-upload-", dir=tmp_dir)
    upload.tmp_path = Path(name)
    digest = hashlib.sha256()
    head = bytearray()
    tail = bytearray()
    with os.fdopen(fd, "wb") as f:
        while transfer.transferred < transfer.size:
            fault = printer.fault
            if fault in ("reset_upload", "stall_upload") and transfer.transferred >= RESET_AFTER:
                while printer.fault == "stall_upload":
                    if await farm.wait_closing(0.05):
                        break
                return abort_connection(request)
            if transfer.stopped:
                raise BadRequest("Upload stopped from connect", 503)
            want = min(SLOW_USB_CHUNK if fault == "slow_usb" else CHUNK, transfer.size - transfer.transferred)
            if fault in ("reset_upload", "stall_upload"):
                want = min(want, RESET_AFTER - transfer.transferred) or want
            try:
                chunk = await request.content.read(want)
            except (ConnectionError, OSError, ValueError) as exc:
                raise BadRequest("Truncated body", 400) from exc
            if not chunk:
                raise BadRequest("Truncated body", 400)
            f.write(chunk)
            digest.update(chunk)
            transfer.transferred += len(chunk)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            tail += chunk
            if len(tail) > 2 * TAIL_BYTES:
                del tail[:-TAIL_BYTES]
            if fault == "slow_usb" and await farm.wait_closing(SLOW_USB_PAUSE):
                return abort_connection(request)
    upload.size = transfer.transferred
    upload.sha256 = digest.hexdigest()
    upload.head = bytes(head)
    upload.tail = bytes(tail[-TAIL_BYTES:])
    return None
