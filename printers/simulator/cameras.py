"""Simulated printer webcams: what crowsnest / mjpg-streamer serve beside Moonraker, and
OctoPi's webcam beside OctoPrint.

Each Moonraker and OctoPrint printer has one camera on its own port under `/webcam/`:
`?action=snapshot` (a JPEG) and `?action=stream` (MJPEG, multipart/x-mixed-replace). The
printer reports them where the real ones do: Moonraker's `GET /server/webcams/list`,
OctoPrint's `GET /api/settings` (`webcam.snapshotUrl` / `streamUrl`), both relative to the
printer's address as a default install has them.

A frame shows the printer's name, the wall clock and its print progress; it is drawn once per
second per printer however many clients ask, so 100 cameras cost little. Camera faults
(`SimulatedFarm.set_camera_fault`): "hang" (the request is held until the fault clears),
"garbage" (200 image/jpeg with HTML in it), "down" (502, as nginx says when crowsnest is not
running). The printer's own faults (offline, blackhole...) hit its camera too: same host.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from PIL import Image, ImageDraw

from printers.simulator.common import FARM, NOW, PRINTER, json_response
from printers.simulator.printer import SimPrinter

if TYPE_CHECKING:
    from printers.simulator.farm import SimulatedFarm

CAMERA_FAULTS = ("hang", "garbage", "down")
SNAPSHOT_PATH = "/webcam/?action=snapshot"
STREAM_PATH = "/webcam/?action=stream"
FRAME_SIZE = (320, 240)
STREAM_INTERVAL = 0.5  # seconds between MJPEG frames
STREAM_MAX_FRAMES = 7200  # an hour at 2 fps: a forgotten client does not stream forever
BOUNDARY = "frame"
GARBAGE = b"<html><body><h1>It works!</h1></body></html>\n"
HANG_CHECK = 0.1


@dataclass
class SimCameras:
    """The farm's cameras: faults, counters the tests and the benchmark read, the frame cache."""

    faults: dict[int, str] = field(default_factory=dict)  # printer index -> camera fault
    snapshots: int = 0  # snapshot requests answered (what a server-side cache saves)
    stream_frames: int = 0
    streams_open: int = 0
    streams_started: int = 0
    _frames: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # index -> (second, JPEG)

    def set_fault(self, index: int, fault: str | None) -> None:
        if fault in (None, "", "none"):
            self.faults.pop(index, None)
        elif fault in CAMERA_FAULTS:
            self.faults[index] = fault
        else:
            raise ValueError(
                f"Unknown camera fault {fault!r}; expected one of {', '.join(CAMERA_FAULTS)} or none"
            )

    def counts(self) -> dict[str, int]:
        return {
            "snapshots": self.snapshots,
            "stream_frames": self.stream_frames,
            "streams_open": self.streams_open,
            "streams_started": self.streams_started,
        }

    def frame(self, printer: SimPrinter, now: float) -> bytes:
        """The printer's current JPEG, drawn at most once per wall-clock second."""
        second = int(time.time())
        cached = self._frames.get(printer.index)
        if cached is not None and cached[0] == second:
            return cached[1]
        jpeg = draw_frame(printer.name, time.strftime("%H:%M:%S"), printer.progress(now))
        self._frames[printer.index] = (second, jpeg)
        return jpeg


def draw_frame(name: str, clock: str, progress: float) -> bytes:
    image = Image.new("RGB", FRAME_SIZE, (32, 36, 44))
    draw = ImageDraw.Draw(image)
    width, height = FRAME_SIZE
    draw.rectangle((0, height - 12, int(width * max(0.0, min(progress, 1.0))), height), fill=(70, 160, 90))
    draw.text((12, 12), name, fill=(240, 240, 240))
    draw.text((12, 32), clock, fill=(200, 200, 120))
    draw.text((12, 52), f"{progress * 100:.0f}%", fill=(160, 200, 240))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return out.getvalue()


def _cameras(request: web.Request) -> SimCameras:
    farm: SimulatedFarm = request.app[FARM]
    return farm.cameras


async def _faulted(request: web.Request, printer: SimPrinter) -> web.StreamResponse | None:
    cameras = _cameras(request)
    fault = cameras.faults.get(printer.index)
    if fault == "hang":
        farm = request.app[FARM]
        while cameras.faults.get(printer.index) == "hang":
            if await farm.wait_closing(HANG_CHECK):
                break
        fault = cameras.faults.get(printer.index)
    if fault == "garbage":
        return web.Response(body=GARBAGE, content_type="image/jpeg")
    if fault == "down":
        return web.Response(status=502, text="502 Bad Gateway\n", content_type="text/html")
    return None


async def webcam(request: web.Request) -> web.StreamResponse:
    """mjpg-streamer's one URL: ?action=snapshot or ?action=stream."""
    printer: SimPrinter = request[PRINTER]
    cameras = _cameras(request)
    action = request.query.get("action")
    if action not in ("snapshot", "stream"):
        return web.Response(status=404, text="unknown action\n")
    if action == "snapshot":
        cameras.snapshots += 1
    faulted = await _faulted(request, printer)
    if faulted is not None:
        return faulted
    if action == "snapshot":
        return web.Response(
            body=cameras.frame(printer, request[NOW]),
            content_type="image/jpeg",
            headers={"Cache-Control": "no-store"},
        )
    return await _stream(request, printer, cameras)


async def _stream(request: web.Request, printer: SimPrinter, cameras: SimCameras) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": f"multipart/x-mixed-replace;boundary={BOUNDARY}",
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    farm = request.app[FARM]
    cameras.streams_open += 1
    cameras.streams_started += 1
    try:
        for _ in range(STREAM_MAX_FRAMES):
            if printer.index in cameras.faults:
                break
            jpeg = cameras.frame(printer, farm.sim_now())
            part = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                + jpeg
                + b"\r\n"
            )
            await response.write(part)
            cameras.stream_frames += 1
            if await farm.wait_closing(STREAM_INTERVAL):
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the client went away
    finally:
        cameras.streams_open -= 1
    return response


async def moonraker_webcams(request: web.Request) -> web.Response:
    """Moonraker's `/server/webcams/list` (v0.8+), one camera as crowsnest registers it."""
    printer: SimPrinter = request[PRINTER]
    webcam = {
        "name": f"{printer.name}-cam",
        "location": "printer",
        "service": "mjpegstreamer-adaptive",
        "enabled": True,
        "icon": "mdiWebcam",
        "target_fps": 15,
        "target_fps_idle": 5,
        "stream_url": STREAM_PATH,
        "snapshot_url": SNAPSHOT_PATH,
        "flip_horizontal": False,
        "flip_vertical": False,
        "rotation": 0,
        "aspect_ratio": "4:3",
        "extra_data": {},
        "source": "database",
        "uid": f"00000000-0000-4000-8000-{printer.index:012d}",
    }
    return json_response({"result": {"webcams": [webcam]}})


async def octoprint_settings(request: web.Request) -> web.Response:
    """The webcam part of OctoPrint's `GET /api/settings` (OctoPi's defaults, relative URLs)."""
    return json_response(
        {
            "webcam": {
                "webcamEnabled": True,
                "streamUrl": STREAM_PATH,
                "snapshotUrl": SNAPSHOT_PATH,
                "flipH": False,
                "flipV": False,
                "rotate90": False,
            }
        }
    )


def add_routes(app: web.Application, protocol: str) -> None:
    app.router.add_route("GET", "/webcam/", webcam)
    if protocol == "moonraker":
        app.router.add_route("GET", "/server/webcams/list", moonraker_webcams)
    elif protocol == "octoprint":
        app.router.add_route("GET", "/api/settings", octoprint_settings)


# -- the control API (printers.simulator.control) ---------------------------------------------------


async def control_set_fault(request: web.Request) -> web.Response:
    """POST /printers/{index}/camera-fault {"fault": "hang" | "garbage" | "down" | null}."""
    farm: SimulatedFarm = request.app[FARM]
    try:
        index = int(request.match_info["index"])
        body = await request.json()
        farm.set_camera_fault(index, body.get("fault") if isinstance(body, dict) else "?")
    except (ValueError, KeyError) as exc:
        return json_response({"error": str(exc)}, status=400)
    return json_response({"index": index, "camera_fault": farm.cameras.faults.get(index)})


async def control_counts(request: web.Request) -> web.Response:
    """GET /cameras: the cameras' counters and faults."""
    cameras = request.app[FARM].cameras
    return json_response({**cameras.counts(), "faults": {str(k): v for k, v in cameras.faults.items()}})


def add_control_routes(app: web.Application) -> None:
    app.router.add_post("/printers/{index}/camera-fault", control_set_fault)
    app.router.add_get("/cameras", control_counts)
