"""Printer webcams, fetched by the server only.

A browser asks us (`/printers/<pk>/camera/snapshot`, `.../stream`) and never learns the camera's
address or password: a camera on another network, or behind credentials, just works, and
`camera_snapshot_url` / `camera_stream_url` stay in the database (encrypted, write-only).

Snapshots: one upstream fetch per camera at a time however many viewers ask (the viewers of a
fetch in flight await the same task), kept SNAPSHOT_TTL seconds, so 20 viewers cost one fetch.
Bounded (connect CONNECT_TIMEOUT, whole fetch FETCH_TIMEOUT, MAX_BYTES) and checked (a JPEG
or PNG by its magic bytes). A camera that is down, hangs or answers garbage gets a placeholder
image, with the reason in it and in the X-Camera-Status header; a viewer never waits on a
camera known to be failing (its last placeholder is answered while a retry runs behind), and
waits at most STALE_AFTER on a working one before getting its previous image.

The cache is per web process (one event loop): with `serve --workers N` each process fetches
on its own, at most N fetches per camera per TTL.

A Bambu Lab P1/A1 camera (`bambu-camera://`, printers.camera_sources) gives one JPEG frame of
its TLS stream per snapshot, under the same bounds and cache.

Streams (MJPEG) are relayed byte for byte, at most STREAMS_PER_CAMERA at once per camera; a
viewer over that gets 503 and the page falls back to refreshing snapshots.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
from asgiref.sync import sync_to_async
from django.utils.html import escape

from printers.drivers import bambu_camera
from printers.drivers.http import make_client
from printers.forms import is_refused_address, literal_ip

logger = logging.getLogger(__name__)

SNAPSHOT_TTL = 2.0  # seconds a fetched snapshot is served to every viewer
RETRY_FAILED = 5.0  # seconds before a failing camera is asked again
STALE_AFTER = 1.5  # seconds a viewer waits on a refresh before getting the previous image
CONNECT_TIMEOUT = 2.0
FETCH_TIMEOUT = 4.0  # the whole snapshot fetch: connect, headers, body
MAX_BYTES = 5 * 1024 * 1024
MAX_CACHED = 2000  # cameras remembered; a farm has a few hundred at most
STREAMS_PER_CAMERA = 4
STREAM_READ_TIMEOUT = 10.0  # an MJPEG stream that sends nothing this long is closed
DISCOVER_TIMEOUT = 3.0

_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))
MOONRAKER_DEFAULT_PORT = 7125


class CameraUrlInvalid(ValueError):
    """Not an http(s) URL we fetch; the message says why."""


def camera_url_problem(url: str) -> str:
    """Why `url` is not a camera URL we fetch, "" when it is. User names and passwords are
    allowed (the value is stored encrypted); link-local and cloud metadata addresses are not."""
    if "\\" in url or any(c.isspace() for c in url):
        return "Use / in a URL, and no spaces."
    try:
        parts = urlsplit(url)  # raises on a bracketed host that is no IPv6 address
    except ValueError:
        return "Enter an http:// or https:// URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter an http:// or https:// URL."
    try:
        port = parts.port
    except ValueError:
        return "The port must be between 1 and 65535."
    if port is not None and not 1 <= port <= 65535:
        return "The port must be between 1 and 65535."
    ip = literal_ip(parts.hostname)
    if ip is not None and is_refused_address(ip):
        return "That is a link-local or cloud metadata address (169.254.x.x, fe80::…), not a camera."
    return ""


def camera_host(url: str) -> str:
    """What pages may show of a camera URL: its host (and port), never the path or password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return host


def _credentials(url: str) -> tuple[str, httpx.BasicAuth | None]:
    """The URL without user:password@, and those as basic auth (mjpg-streamer's -c user:pass)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = parts.netloc.rpartition("@")[2]
    auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
    return urlunsplit(parts._replace(netloc=netloc)), auth


# -- finding a printer's camera -----------------------------------------------------------------


def resolve_reported(base_url: str, reported: object, *, protocol: str) -> str:
    """The absolute URL of a camera URL a printer reports, "" when unusable.

    Both Moonraker and OctoPrint store what the web frontend uses: usually a path on the
    printer's host ("/webcam/?action=snapshot", served by nginx/haproxy beside the API).
    """
    if not isinstance(reported, str) or not reported.strip():
        return ""
    try:
        url = _absolute(base_url, reported.strip(), protocol)
    except ValueError:  # a malformed URL (bad port, bracketed non-IPv6 host)
        return ""
    return "" if camera_url_problem(url) else url


def _absolute(base_url: str, reported: str, protocol: str) -> str:
    base = urlsplit(base_url)
    if reported.startswith("/") and not reported.startswith("//"):
        netloc = base.netloc.rpartition("@")[2]
        if protocol == "moonraker" and base.port == MOONRAKER_DEFAULT_PORT:
            # Moonraker's own port serves the API only; Mainsail/Fluidd's nginx on port 80
            # proxies /webcam/ to crowsnest.
            netloc = netloc.rsplit(":", 1)[0]
        url = urlunsplit((base.scheme, netloc, "", "", "")) + reported
    else:
        url = urljoin(base_url.rstrip("/") + "/", reported)
        parts = urlsplit(url)
        host_ip = literal_ip(parts.hostname or "")
        printer_ip = literal_ip(base.hostname or "")
        loopback = parts.hostname == "localhost" or (host_ip is not None and host_ip.is_loopback)
        if loopback and not (printer_ip is not None and printer_ip.is_loopback):
            # OctoPrint's default snapshotUrl is http://127.0.0.1:8080/?action=snapshot: the Pi's
            # own loopback, which from here is the printer's host.
            host = f"[{base.hostname}]" if ":" in (base.hostname or "") else base.hostname
            netloc = f"{host}:{parts.port}" if parts.port else str(host)
            url = urlunsplit(parts._replace(netloc=netloc))
    return url


def _moonraker_camera(data: object) -> tuple[object, object]:
    # Moonraker v0.8+: {"result": {"webcams": [{"enabled", "snapshot_url", "stream_url", ...}]}}
    cams = data.get("result", {}).get("webcams") if isinstance(data, dict) else None
    for cam in cams if isinstance(cams, list) else []:
        if isinstance(cam, dict) and cam.get("enabled", True):
            return cam.get("snapshot_url"), cam.get("stream_url")
    return None, None


def _octoprint_camera(data: object) -> tuple[object, object]:
    if not isinstance(data, dict):
        return None, None
    webcam = data.get("webcam")
    enabled = isinstance(webcam, dict) and webcam.get("webcamEnabled", True)
    if enabled and (webcam.get("snapshotUrl") or webcam.get("streamUrl")):
        return webcam.get("snapshotUrl"), webcam.get("streamUrl")
    # OctoPrint 1.9+ moved them to the bundled Classic Webcam plugin's settings.
    plugins = data.get("plugins")
    classic = plugins.get("classicwebcam") if isinstance(plugins, dict) else None
    if isinstance(classic, dict):
        return classic.get("snapshot"), classic.get("stream")
    return None, None


@dataclass(frozen=True, slots=True)
class FoundCamera:
    snapshot_url: str
    stream_url: str


async def camera_discover(*, protocol: str, base_url: str, api_key: str = "") -> FoundCamera | None:
    """The camera a Moonraker or OctoPrint printer reports, None when it reports none or can't
    be asked. Other protocols have no webcam setting to read."""
    paths = {"moonraker": "/server/webcams/list", "octoprint": "/api/settings"}
    if protocol not in paths:
        return None
    headers = {"X-Api-Key": api_key} if api_key else {}
    try:
        async with make_client(timeout=httpx.Timeout(DISCOVER_TIMEOUT, connect=CONNECT_TIMEOUT)) as client:
            async with asyncio.timeout(DISCOVER_TIMEOUT + 1):
                response = await client.get(base_url.rstrip("/") + paths[protocol], headers=headers)
                response.raise_for_status()
                data = response.json()
    except (httpx.HTTPError, ValueError, TimeoutError) as exc:
        logger.info("No camera settings from %s: %s", camera_host(base_url), type(exc).__name__)
        return None
    snapshot, stream = (_moonraker_camera if protocol == "moonraker" else _octoprint_camera)(data)
    found = FoundCamera(
        snapshot_url=resolve_reported(base_url, snapshot, protocol=protocol),
        stream_url=resolve_reported(base_url, stream, protocol=protocol),
    )
    return found if found.snapshot_url or found.stream_url else None


async def camera_fill(printer) -> str:
    """Fill in the webcam a newly added (or moved) printer reports, where it has no camera set:
    the camera's host when one was stored, else "". The form and the API both ask."""
    from printers.services import printer_camera_found  # services is the ORM side; not at import

    if printer.camera_snapshot_url or printer.camera_stream_url:
        return ""  # an admin's own camera is never replaced
    found = await camera_discover(
        protocol=printer.protocol, base_url=printer.base_url, api_key=printer.api_key
    )
    if found is None:
        return ""
    shown = camera_host(found.snapshot_url or found.stream_url)
    stored = await sync_to_async(printer_camera_found)(
        printer_id=printer.pk, snapshot_url=found.snapshot_url, stream_url=found.stream_url, shown=shown
    )
    return shown if stored else ""


# -- snapshots ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    body: bytes
    content_type: str
    problem: str  # "" for a camera image; else why this is the placeholder
    at: float  # time.monotonic() of the fetch

    @property
    def ok(self) -> bool:
        return not self.problem


def placeholder(problem: str) -> Snapshot:
    return Snapshot(
        body=placeholder_svg(problem), content_type="image/svg+xml", problem=problem, at=time.monotonic()
    )


def placeholder_svg(problem: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 320 240" width="320" height="240" role="img" '
        f'aria-label="Camera offline: {escape(problem)}">'
        '<rect width="320" height="240" fill="#2a2d34"/>'
        '<text x="160" y="112" fill="#d8d8d8" font-family="sans-serif" font-size="20" text-anchor="middle">'
        "Camera offline</text>"
        '<text x="160" y="140" fill="#a0a0a0" font-family="sans-serif" font-size="13" text-anchor="middle">'
        f"{escape(problem[:60])}</text></svg>"
    ).encode()


def first_frame(data: bytes | bytearray) -> bytes | None:
    """The first whole JPEG in an MJPEG stream's bytes, None until one has arrived."""
    start = data.find(b"\xff\xd8\xff")
    if start < 0:
        return None
    end = data.find(b"\xff\xd9", start + 3)
    return bytes(data[start : end + 2]) if end >= 0 else None


def image_type(body: bytes) -> str:
    """The content type of a JPEG or PNG by its magic bytes, "" for anything else."""
    for magic, content_type in _MAGIC:
        if body.startswith(magic):
            return content_type
    return ""


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _client() -> httpx.AsyncClient:
    """One pooled client per event loop (the web process has one; tests may run several)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = make_client(
            timeout=httpx.Timeout(FETCH_TIMEOUT, connect=CONNECT_TIMEOUT), max_connections=256
        )
        _clients[loop] = client
    return client


def _connect_problem(exc: httpx.HTTPError) -> str:
    # httpx-aiohttp reports a refused connection as ConnectTimeout; aiohttp's message tells them apart.
    refused = isinstance(exc, httpx.ConnectError) or "Connect call failed" in str(exc)
    return "camera unreachable" if refused else "camera timed out"


async def close_client() -> None:
    """Close this event loop's client (tests; the web process keeps its one for good)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


async def fetch_snapshot(url: str) -> Snapshot:
    """One upstream fetch, bounded in time and size; a placeholder for anything but an image."""
    if url.startswith(f"{bambu_camera.SCHEME}://"):
        return await _bambu_snapshot(url)
    target, auth = _credentials(url)
    started = time.monotonic()
    try:
        async with asyncio.timeout(FETCH_TIMEOUT):
            async with _client().stream("GET", target, auth=auth) as response:
                if response.status_code != 200:
                    return placeholder(f"camera answered HTTP {response.status_code}")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_BYTES:
                    return placeholder("image too large")
                mjpeg = (
                    response.headers.get("content-type", "").lower().startswith("multipart/x-mixed-replace")
                )
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        return placeholder("image too large")
                    frame = first_frame(body) if mjpeg else None
                    if frame is not None:
                        body = bytearray(frame)  # a camera with a stream only: its first frame
                        break
    except TimeoutError:
        return placeholder("camera timed out")
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        return placeholder(_connect_problem(exc))
    except httpx.TimeoutException:
        return placeholder("camera timed out")
    except httpx.HTTPError as exc:
        return placeholder(f"camera error ({type(exc).__name__})")
    content_type = image_type(bytes(body[:8]))
    if not content_type:
        return placeholder("not an image")
    return Snapshot(body=bytes(body), content_type=content_type, problem="", at=started)


async def _bambu_snapshot(url: str) -> Snapshot:
    """A Bambu Lab P1/A1 camera's next frame (printers.drivers.bambu_camera), under the same bounds."""
    started = time.monotonic()
    try:
        body = await bambu_camera.read_frame(
            url, connect_timeout=CONNECT_TIMEOUT, timeout=FETCH_TIMEOUT, max_bytes=MAX_BYTES
        )
    except bambu_camera.CameraProblem as exc:
        return placeholder(str(exc))
    return Snapshot(body=body, content_type="image/jpeg", problem="", at=started)


class SnapshotCache:
    """Coalesced, briefly cached snapshots by camera URL (see the module docstring)."""

    def __init__(self) -> None:
        self._done: dict[str, Snapshot] = {}
        self._pending: dict[str, asyncio.Task[Snapshot]] = {}
        self.fetches = 0  # upstream fetches started (tests and the benchmark read it)

    async def get(self, url: str) -> Snapshot:
        key = hashlib.sha256(url.encode()).hexdigest()  # the URL may carry a password: not a key
        last = self._done.get(key)
        now = time.monotonic()
        if last is not None and now - last.at < (SNAPSHOT_TTL if last.ok else RETRY_FAILED):
            return last
        task = self._pending.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.get_running_loop().create_task(self._fetch(key, url))
            self._pending[key] = task
        if last is not None and not last.ok:
            return last  # a failing camera: the viewer gets its placeholder now, the retry runs behind
        try:
            # shield: a viewer who leaves does not cancel the fetch the others wait on.
            async with asyncio.timeout(STALE_AFTER if last is not None else FETCH_TIMEOUT + 1):
                return await asyncio.shield(task)
        except TimeoutError:
            return last if last is not None else placeholder("camera timed out")

    async def _fetch(self, key: str, url: str) -> Snapshot:
        self.fetches += 1
        try:
            snapshot = await fetch_snapshot(url)
        finally:
            self._pending.pop(key, None)
        if not snapshot.ok:
            last = self._done.get(key)
            if last is None or last.ok:  # edge-triggered: once per outage, not per retry
                logger.warning("Camera at %s: %s", camera_host(url), snapshot.problem)
        if len(self._done) >= MAX_CACHED:
            oldest = min(self._done, key=lambda k: self._done[k].at)
            del self._done[oldest]
        self._done[key] = snapshot
        return snapshot

    def clear(self) -> None:
        self._done.clear()
        self.fetches = 0


snapshots = SnapshotCache()


# -- streams -----------------------------------------------------------------------------------


class StreamsFull(Exception):
    """STREAMS_PER_CAMERA viewers already watch this camera's stream."""


class CameraDown(Exception):
    """The stream could not be opened; the message says why."""


_streams_open: dict[str, int] = {}


@dataclass
class Relay:
    """An upstream MJPEG stream, opened; `chunks()` yields its bytes until either side goes."""

    content_type: str
    _response: httpx.Response
    _key: str

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            iterator = self._response.aiter_raw()  # with a size, httpx would hold bytes back to fill it
            while True:
                try:
                    async with asyncio.timeout(STREAM_READ_TIMEOUT):
                        chunk = await anext(iterator)
                except (StopAsyncIteration, TimeoutError, httpx.HTTPError):
                    return
                yield chunk
        finally:
            await self.close()

    async def close(self) -> None:
        if self._key:
            key, self._key = self._key, ""
            _streams_open[key] = _streams_open.get(key, 1) - 1
            if _streams_open[key] <= 0:
                del _streams_open[key]
            await self._response.aclose()


async def stream_open(url: str) -> Relay:
    """Open the camera's stream for one viewer; StreamsFull or CameraDown when it can't be."""
    key = hashlib.sha256(url.encode()).hexdigest()
    if _streams_open.get(key, 0) >= STREAMS_PER_CAMERA:
        raise StreamsFull()
    _streams_open[key] = _streams_open.get(key, 0) + 1
    target, auth = _credentials(url)
    client = _client()
    try:
        async with asyncio.timeout(FETCH_TIMEOUT):
            request = client.build_request(
                "GET", target, timeout=httpx.Timeout(STREAM_READ_TIMEOUT, connect=CONNECT_TIMEOUT)
            )
            response = await client.send(request, auth=auth, stream=True)
    except BaseException as exc:
        _streams_open[key] -= 1
        if not _streams_open[key]:
            del _streams_open[key]
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            raise CameraDown(_connect_problem(exc)) from exc
        if isinstance(exc, TimeoutError | httpx.TimeoutException):
            raise CameraDown("camera timed out") from exc
        if isinstance(exc, httpx.HTTPError):
            raise CameraDown(f"camera error ({type(exc).__name__})") from exc
        raise
    relay = Relay(content_type=response.headers.get("content-type", ""), _response=response, _key=key)
    if response.status_code != 200 or not relay.content_type.lower().startswith("multipart/x-mixed-replace"):
        await relay.close()
        problem = f"HTTP {response.status_code}" if response.status_code != 200 else "not an MJPEG stream"
        raise CameraDown(f"camera answered {problem}")
    return relay
