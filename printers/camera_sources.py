"""Which camera a printer has and where its picture comes from: one rule for the card, the
camera wall, the printer page and the API.

The snapshot and stream URLs an admin set (or the printer reported, printers.cameras) come
first; a camera with a stream URL only gives its stream's first frame as the snapshot. Without
them a Bambu Lab P1 or A1 printer's own camera is read over its protocol (one JPEG frame a
snapshot, printers.drivers.bambu_camera); an X1's RTSPS stream is not read yet, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from printers.drivers import bambu_camera
from printers.models import Printer

URLS, PRINTER = "url", "printer"


@dataclass(frozen=True, slots=True)
class CameraSource:
    # What printers.cameras.snapshots fetches a snapshot from, "" without a camera. Never shown
    # to a browser or an API client: it may carry a password.
    snapshot: str = ""
    stream: str = ""  # an MJPEG stream relayed to viewers, "" without one
    note: str = ""  # why a camera the printer has is not shown ("" when it is, or there is none)
    # "url": snapshot/stream URLs are stored; "printer": the printer's own camera, read over its
    # protocol; "" none.
    kind: str = ""


def camera_source(printer: Printer) -> CameraSource:
    snapshot, stream = printer.camera_snapshot_url, printer.camera_stream_url
    if snapshot or stream:
        return CameraSource(snapshot=snapshot or stream, stream=stream, kind=URLS)
    if printer.protocol == Printer.Protocol.BAMBU:
        kind = bambu_camera.camera_kind(printer.serial, printer.model)
        if kind == "rtsps":
            return CameraSource(note=bambu_camera.RTSPS_NOT_READ)
        url = bambu_camera.camera_url(printer.base_url, printer.api_key) if kind == "jpeg" else ""
        if url:
            return CameraSource(snapshot=url, kind=PRINTER)
    return CameraSource()
