"""Camera pages and the endpoints that relay a printer's webcam (printers.cameras).

The snapshot and stream views are async: a slow camera holds only its own request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from printers.cameras import CameraDown, StreamsFull, snapshots, stream_open
from printers.models import Printer
from printers.presenters import _status_of, card_state
from printfarm.accounts.roles import viewer_required

STATUS_HEADER = "X-Camera-Status"


# pk -> (read at, (snapshot URL, stream URL)): a wall of 100 tiles asks ~30 times a second, so
# the row is read (and decrypted) at most every URLS_TTL seconds; a changed URL is used after that.
_urls: dict[int, tuple[float, tuple[str, str] | None]] = {}
URLS_TTL = 2.0


async def _camera_urls(pk: int) -> tuple[str, str]:
    now = time.monotonic()
    cached = _urls.get(pk)
    if cached is not None and now - cached[0] < URLS_TTL:
        urls = cached[1]
    else:
        rows = Printer.objects.filter(pk=pk).values_list("camera_snapshot_url", "camera_stream_url")
        urls = await rows.afirst()
        if len(_urls) > 5000:
            _urls.clear()
        _urls[pk] = (now, urls)
    if urls is None:
        raise Http404("No such printer")
    if not any(urls):
        raise Http404("This printer has no camera")
    return urls


@viewer_required
@require_GET
async def camera_snapshot(request: HttpRequest, pk: int) -> HttpResponse:
    """The camera's latest snapshot (at most SNAPSHOT_TTL old), or a placeholder saying why not.
    A camera with a stream URL only gives its stream's first frame."""
    snapshot_url, stream_url = await _camera_urls(pk)
    snapshot = await snapshots.get(snapshot_url or stream_url)
    response = HttpResponse(snapshot.body, content_type=snapshot.content_type)
    response["Cache-Control"] = "no-store"
    response[STATUS_HEADER] = "ok" if snapshot.ok else f"offline; {snapshot.problem}"
    return response


@viewer_required
@require_GET
async def camera_stream(request: HttpRequest, pk: int) -> HttpResponse:
    """The camera's MJPEG stream relayed; 503 when too many watch it, 502 when it is down
    (the printer page then refreshes snapshots instead)."""
    _, stream_url = await _camera_urls(pk)
    if not stream_url:
        raise Http404("This camera has no stream URL")
    try:
        relay = await stream_open(stream_url)
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
    printers = Printer.objects.with_status().exclude(camera_snapshot_url="", camera_stream_url="")
    tiles = []
    for printer in printers:
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
