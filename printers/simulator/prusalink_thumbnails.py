"""The images a simulated Buddy printer serves of its files (`GET /thumb/s|l/usb/<path>`, what
`file.refs.icon` and `refs.thumbnail` name), as Buddy's link_content previews do: behind the
same login as the API, `s` the file's 16x16 image, `l` its first image larger than that;
404 when the file has none (or there is no such file). The images are the PNGs the slicer
embedded in the file's head (printers.simulator.files)."""

from __future__ import annotations

from aiohttp import web

from printers.simulator.common import PRINTER, BadRequest
from printers.simulator.files import SimThumbnail
from printers.simulator.printer import SimPrinter

SMALL = 16  # Buddy's icon: exactly 16x16 px; the large one is anything bigger


def _image(printer: SimPrinter, size: str, path: str) -> SimThumbnail | None:
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts) or printer.fault == "no_usb":
        return None
    info = printer.files.get("/".join(parts))
    if info is None:
        return None
    for thumb in info.thumbnails:
        small = (thumb.width, thumb.height) == (SMALL, SMALL)
        large = thumb.width > SMALL and thumb.height > SMALL
        if thumb.ext == "png" and (small if size == "s" else large):
            return thumb
    return None


async def thumbnail(request: web.Request) -> web.Response:
    size = request.match_info["size"]
    if size not in ("s", "l"):
        raise BadRequest("Thumbnail size specification not recognized", 404)
    found = _image(request[PRINTER], size, request.match_info["path"])
    if found is None:
        raise BadRequest("", 404)
    return web.Response(body=found.data, content_type="image/png")
