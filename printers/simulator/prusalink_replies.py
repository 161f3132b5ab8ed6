"""What every PrusaLink route shares: the request keys its middleware sets and Buddy's status
page (lib/WUI/nhttp/status_page.cpp) for errors and empty answers."""

from __future__ import annotations

import http

from aiohttp import web

from printers.simulator.common import json_response
from printers.simulator.prusalink_state import PrusaLinkDevice, Slot

DEVICE: web.RequestKey[PrusaLinkDevice] = web.RequestKey("prusalink_device", PrusaLinkDevice)
SLOT: web.RequestKey[Slot] = web.RequestKey("prusalink_slot", Slot)


def status_page(status: int, message: str = "", *, json_errors: bool = True) -> web.Response:
    """`{"title": "409: Conflict", "message": "..."}` with Accept: application/json, else the
    same as text; 204 and 304 without a body."""
    if status in (204, 304):
        return web.Response(status=status)
    title = f"{status}: {http.HTTPStatus(status).phrase}"
    if json_errors:
        return json_response({"title": title, "message": message}, status=status)
    return web.Response(status=status, text=f"{title}\n\n{message}\n", content_type="text/plain")


def wants_json(request: web.Request) -> bool:
    """Buddy looks only at the first media type of Accept."""
    return request.headers.get("Accept", "").split(",", 1)[0].strip().startswith("application/json")
