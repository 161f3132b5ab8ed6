"""Camera pages and the endpoints that relay a printer's webcam (printers.cameras).

The snapshot and stream views are async: a slow camera holds only its own request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from printers.camera_sources import CameraSource, camera_source
from printers.cameras import CameraDown, StreamsFull, snapshots, stream_open
from printers.models import Printer
from printers.presenters import _status_of, card_state
from printfarm.accounts.roles import viewer_required

STATUS_HEADER = "X-Camera-Status"


# pk -> (read at, its camera): a wall of 100 tiles asks ~30 times a second, so the row is read
# (and decrypted) at most every URLS_TTL seconds; a changed URL is used after that.
_urls: dict[int, tuple[float, CameraSource | None]] = {}
URLS_TTL = 2.0
_SOURCE_FIELDS = (
    "protocol",
    "base_url",
    "api_key",
    "serial",
    "model",
    "camera_snapshot_url",
    "camera_stream_url",
)


async def _camera_source(pk: int) -> CameraSource:
    now = time.monotonic()
    cached = _urls.get(pk)
    if cached is not None and now - cached[0] < URLS_TTL:
        source = cached[1]
    else:
        printer = await Printer.objects.filter(pk=pk).only(*_SOURCE_FIELDS).afirst()
        source = camera_source(printer) if printer is not None else None
        if len(_urls) > 5000:
            _urls.clear()
        _urls[pk] = (now, source)
    if source is None:
        raise Http404("No such printer")
    if not source.snapshot:
        raise Http404(source.note or "This printer has no camera")
    return source


async def snapshot_response(pk: int) -> HttpResponse:
    """The camera's latest snapshot (at most SNAPSHOT_TTL old), or a placeholder saying why not;
    Http404 without a camera. The web page and the API answer with this."""
    source = await _camera_source(pk)
    snapshot = await snapshots.get(source.snapshot)
    response = HttpResponse(snapshot.body, content_type=snapshot.content_type)
    response["Cache-Control"] = "no-store"
    response[STATUS_HEADER] = "ok" if snapshot.ok else f"offline; {snapshot.problem}"
    return response


async def stream_response(pk: int) -> HttpResponse:
    """The camera's MJPEG stream relayed; 503 when too many watch it, 502 when it is down."""
    source = await _camera_source(pk)
    if not source.stream:
        raise Http404("This camera has no stream URL")
    try:
        relay = await stream_open(source.stream)
    except StreamsFull:
        response = HttpResponse(
            "Too many viewers on this camera's stream.\n", status=503, content_type="text/plain"
        )
        response["Retry-After"] = "30"
        return response
    except CameraDown as exc:
        response = HttpResponse(f"{exc}\n", status=502, content_type="text/plain")
        response[STATUS_HEADER] = f"offline; {exc}"
        return response
    response = StreamingHttpResponse(relay.chunks(), content_type=relay.content_type)
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # nginx in front must not buffer an endless body
    return response


@viewer_required
@require_GET
async def camera_snapshot(request: HttpRequest, pk: int) -> HttpResponse:
    """The camera's latest snapshot, or a placeholder saying why not. A camera with a stream URL
    only gives its stream's first frame."""
    return await snapshot_response(pk)


@viewer_required
@require_GET
async def camera_stream(request: HttpRequest, pk: int) -> HttpResponse:
    """The camera's MJPEG stream relayed (the printer page falls back to refreshing snapshots
    when it is full or down)."""
    return await stream_response(pk)


@dataclass(frozen=True, slots=True)
class CameraTile:
    pk: int
    name: str
    state: str
    state_label: str
    url: str
    snapshot_url: str


@viewer_required
@require_GET
def camera_wall(request: HttpRequest) -> HttpResponse:
    """Every printer with a camera, as snapshots refreshed in turn (static/js/cameras.js): a
    browser opens ~6 connections per host, so 100 live streams would starve the page."""
    printers = Printer.objects.with_status().filter(
        ~Q(camera_snapshot_url="", camera_stream_url="") | Q(protocol=Printer.Protocol.BAMBU)
    )
    tiles = []
    for printer in printers:
        if not camera_source(printer).snapshot:
            continue  # a Bambu Lab printer whose camera can't be read (an X1's RTSPS)
        state = card_state(printer, _status_of(printer))
        tiles.append(
            CameraTile(
                pk=printer.pk,
                name=printer.name,
                state=state.value,
                state_label=state.label,
                url=printer.get_absolute_url(),
                snapshot_url=reverse("printers:camera_snapshot", args=[printer.pk]),
            )
        )
    return render(request, "printers/camera_wall.html", {"tiles": tiles})
