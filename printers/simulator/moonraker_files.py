"""Moonraker's file manager routes for simulated printers: upload, list, metadata, download, delete."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from aiohttp import web

from printers.simulator.common import NOW, PRINTER, BadRequest, receive_upload
from printers.simulator.files import GCODE_EXTENSIONS, SimFile, SimThumbnail, UploadRejected, clean_path
from printers.simulator.moonraker_replies import result
from printers.simulator.printer import READY, SimPrinter

ROOTS = ("gcodes", "config")


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


def file_metadata(printer: SimPrinter, info: SimFile) -> dict[str, Any]:
    data: dict[str, Any] = {
        "size": info.size,
        "modified": round(info.modified, 3),
        "uuid": f"sim-{printer.index}-{abs(hash(info.path)) % 10**8}",
        "slicer": info.slicer,
        "slicer_version": info.slicer_version,
        "estimated_time": info.estimated_time,
        "first_layer_extr_temp": info.hotend_temp,
        "first_layer_bed_temp": info.bed_temp,
        "thumbnails": [
            {"width": t.width, "height": t.height, "size": len(t.data), "relative_path": _thumb_name(info, t)}
            for t in info.thumbnails
        ],
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
    return result(file_metadata(printer, info))


def _thumb_name(info: SimFile, thumb: SimThumbnail) -> str:
    """Where Moonraker writes a file's image: `.thumbs/<stem>-WxH.png` beside the G-code."""
    return f".thumbs/{PurePosixPath(info.path).stem}-{thumb.width}x{thumb.height}.{thumb.ext}"


def _thumbnail(printer: SimPrinter, rel: str) -> web.Response | None:
    """A `.thumbs/` image, kept in memory by the simulator rather than written to disk."""
    path = PurePosixPath(rel)
    if path.parent.name != ".thumbs":
        return None
    folder = path.parent.parent
    for info in printer.files.values():
        if PurePosixPath(info.path).parent != folder:
            continue
        for thumb in info.thumbnails:
            if _thumb_name(info, thumb) == f".thumbs/{path.name}":
                kind = "image/png" if thumb.ext == "png" else "image/jpeg"
                return web.Response(body=thumb.data, content_type=kind)
    return None


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
        thumbnail = _thumbnail(printer, rel) if root == "gcodes" else None
        if thumbnail is not None:
            return thumbnail
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
