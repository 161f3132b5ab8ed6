"""SimulatedFarm: N simulated printers, one loopback port each, plus a control server.

Port layout: printer i listens on base_port + i (base_port=0: an ephemeral port each) with its
API at the root path like a real device; the control API has its own port. One aiohttp
Application per protocol serves all printers of that protocol; the request's local port says
which printer it is for. "offline" closes that printer's listening socket and keeps the port
bound but not listening, so clients get a real "connection refused" and the port number
survives until the fault clears.

"disconnect" takes the firmware link away (the print, if any, ends: see SimPrinter.lose_link)
and clearing it (or switching to another fault) brings the link back without the print.
`print_log()` lists every print start and end on every printer (also GET /prints).

Fault switching and the sockets it juggles are in farm_faults, the thread-safe public calls
in farm_control; SimulatedFarm mixes both in.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from printers.simulator import bambu, control, moonraker, octoprint, prusalink
from printers.simulator.bambu_camera import CameraServer
from printers.simulator.bambu_ftps import FtpsServer
from printers.simulator.bambu_tls import FarmKey
from printers.simulator.cameras import SimCameras
from printers.simulator.farm_control import CALL_TIMEOUT
from printers.simulator.farm_faults import LISTEN_BACKLOG, FarmFaults
from printers.simulator.printer import MIXED_CYCLE, PROTOCOLS, SimPrinter
from printers.simulator.prusalink_state import PrusaLinkDevice
from printers.simulator.stats import SAMPLE_INTERVAL, FarmStats

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 1.0  # seconds aiohttp waits for in-flight handlers on stop


def check_loopback(host: str) -> str:
    """The host to bind, refusing anything but loopback (the simulator is never exposed)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"Simulator host must be a loopback IP address, not {host!r}") from exc
    if not address.is_loopback:
        raise ValueError(f"Simulator host must be loopback (127.0.0.1 or ::1), not {host!r}")
    return host


class SimulatedFarm(FarmFaults):
    """Simulated Moonraker/OctoPrint printers on loopback ports. See the module docstring."""

    def __init__(
        self,
        count: int = 3,
        protocol: str = "mixed",
        host: str = "127.0.0.1",
        base_port: int = 0,
        control_port: int = 0,
        speed: float = 1.0,
        api_key: str = "",
        upload_dir: str | Path | None = None,
    ) -> None:
        if protocol not in (*PROTOCOLS, "mixed"):
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)} or mixed, not {protocol!r}")
        if count < 1:
            raise ValueError("count must be >= 1")
        if speed <= 0:
            raise ValueError("speed must be > 0")
        kinds = [protocol if protocol != "mixed" else MIXED_CYCLE[i % len(MIXED_CYCLE)] for i in range(count)]
        # A Bambu printer's FTPS port is base_port + count + index: after every printer's own; a
        # P1S's camera port base_port + 2 * count + index.
        ports = 3 * count if "bambu" in kinds else count
        if base_port and not 0 < base_port <= 65535 - ports + 1:
            raise ValueError(f"ports {base_port}..{base_port + ports - 1} out of range")
        self.host = check_loopback(host)
        self.base_port = base_port
        self.speed = float(speed)
        self.api_key = api_key
        self._control_port = control_port
        self._own_upload_dir = upload_dir is None
        self.upload_dir = Path(upload_dir) if upload_dir is not None else None
        self.printers: list[SimPrinter] = []
        for index, kind in enumerate(kinds):
            self.printers.append(
                SimPrinter(
                    index=index,
                    protocol=kind,
                    host=self.host,
                    port=base_port + index if base_port else 0,
                    speed=self.speed,
                    storage=Path(),  # set in start() once upload_dir exists
                )
            )
        self.stats_counters = FarmStats(count)
        self.cameras = SimCameras()  # the Moonraker and OctoPrint printers' webcams
        self._by_port: dict[int, SimPrinter] = {}
        self._socks: dict[int, socket.socket] = {}  # printer index -> bound socket (listening or not)
        self._ftps_socks: dict[int, socket.socket] = {}  # Bambu printer index -> its FTPS socket
        self._camera_socks: dict[int, socket.socket] = {}  # Bambu P1/A1 printer index -> its camera's
        self.bambu_devices: dict[int, bambu.BambuDevice] = {}  # Bambu printer index -> its firmware
        # PrusaLink printer index -> its password, Set Ready flag, transfer, nonces, connections
        self.prusalink_devices = {
            p.index: PrusaLinkDevice(p) for p in self.printers if p.protocol == "prusalink"
        }
        self._tls_dir: Path | None = None
        self._farm_key: FarmKey | None = None
        self._runners: dict[str, web.AppRunner] = {}
        self._control_runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reopening: dict[int, asyncio.Task[None]] = {}  # printer index -> socket reopen
        self._reopen_started: set[int] = set()
        self._t0 = time.monotonic()
        self._wall0 = time.time()
        self._print_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._upload_listeners: list[Callable[[int, str], None]] = []
        for p in self.printers:
            p.wall_time = self.wall_time
            p.on_print = self._notify_print
            p.on_upload = self._notify_upload
        self._state = "new"  # new -> running -> stopped

    # -- clock and lookups (called from request handlers on the loop) ----------------------

    def sim_now(self) -> float:
        """Simulated seconds since the farm was created."""
        return (time.monotonic() - self._t0) * self.speed

    def wall_time(self, sim: float) -> float:
        """The unix time at which simulated time `sim` is (was) reached."""
        return self._wall0 + sim / self.speed

    def printer_for_port(self, port: int) -> SimPrinter | None:
        return self._by_port.get(port)

    def bambu(self, index: int) -> bambu.BambuDevice:
        """The Bambu firmware of printer `index` (serial, access code, model, certificate)."""
        device = self.bambu_devices.get(index)
        if device is None:
            raise ValueError(f"Printer {index} is not a Bambu printer")
        return device

    async def wait_closing(self, timeout: float | None) -> bool:
        """Sleep `timeout` seconds (None: forever) unless the farm stops first; True if it stopped."""
        assert self._closing is not None
        if self._closing.is_set():
            return True
        if timeout is None:
            await self._closing.wait()
            return True
        try:
            await asyncio.wait_for(self._closing.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def control_port(self) -> int:
        return self._control_port

    @property
    def control_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._control_port}"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError("a SimulatedFarm can be started once")
        self._state = "running"
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        if self.upload_dir is None:
            self.upload_dir = Path(tempfile.mkdtemp(prefix="printfarm-sim-"))
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        assert self.upload_dir is not None and self._loop is not None
        builders = {
            "moonraker": moonraker.build_app,
            "octoprint": octoprint.build_app,
            "prusalink": prusalink.build_app,
        }
        for kind in sorted({p.protocol for p in self.printers} - {"bambu"}):
            # handler_cancellation: a client that gives up on a blackholed/slow request
            # cancels its handler, so hung requests never pile up.
            runner = web.AppRunner(
                builders[kind](self),
                access_log=None,
                handler_cancellation=True,
                shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
            await runner.setup()
            self._runners[kind] = runner
        for p in self.printers:
            p.storage = self.upload_dir / p.name  # directories appear with the first upload
            p.scan_files()
            sock = self._bind(p.port)
            p.port = sock.getsockname()[1]
            self._socks[p.index] = sock
            self._by_port[p.port] = p
            if p.protocol == "bambu":
                await self._start_bambu(p)
            elif p.fault != "offline":
                sock.listen(LISTEN_BACKLOG)
                p.server = await self._loop.create_server(
                    self._protocol_factory(p),
                    sock=sock,
                    backlog=LISTEN_BACKLOG,
                )
        control_runner = web.AppRunner(control.build_control_app(self), access_log=None)
        await control_runner.setup()
        self._control_runner = control_runner
        sock = self._bind(self._control_port)
        self._control_port = sock.getsockname()[1]
        await web.SockSite(control_runner, sock).start()
        self._spawn(self._sample_forever())
        if self.bambu_devices:
            self._spawn(self._push_forever())
        logger.info("simulated farm: %d printers, control %s", len(self.printers), self.control_url)

    async def stop(self) -> None:
        """Close every socket and connection; hung (blackhole/slow) requests are dropped."""
        if self._state == "stopped":
            return
        self._state = "stopped"
        if self._closing is not None:
            self._closing.set()
        for task in list(self._reopening.values()):
            with contextlib.suppress(BaseException):
                await task
        for p in self.printers:
            server, p.server = p.server, None
            if server is not None:
                server.close()
        for device in self.bambu_devices.values():
            self._close_bambu(device)
        for sock in (*self._socks.values(), *self._ftps_socks.values(), *self._camera_socks.values()):
            sock.close()
        self._socks.clear()
        self._ftps_socks.clear()
        self._camera_socks.clear()
        for runner in self._runners.values():
            await runner.cleanup()
        self._runners.clear()
        if self._control_runner is not None:
            await self._control_runner.cleanup()
            self._control_runner = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_upload_dir and self.upload_dir is not None:
            shutil.rmtree(self.upload_dir, ignore_errors=True)
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run `coro` on the farm's loop until it ends or the farm stops."""
        return self._spawn(coro)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- Bambu printers ---------------------------------------------------------------------

    async def _start_bambu(self, p: SimPrinter) -> None:
        if self._tls_dir is None:
            self._tls_dir = Path(tempfile.mkdtemp(prefix="printfarm-sim-tls-"))
            self._farm_key = FarmKey(self._tls_dir)
        assert self._farm_key is not None
        device = bambu.new_device(self, p, self._farm_key)
        device.ftps = FtpsServer(device)
        self.bambu_devices[p.index] = device
        ftps_sock = self._bind(self.base_port + len(self.printers) + p.index if self.base_port else 0)
        p.ftps_port = ftps_sock.getsockname()[1]
        self._ftps_socks[p.index] = ftps_sock
        if not device.x1:
            device.camera = CameraServer(device)
            port = self.base_port + 2 * len(self.printers) + p.index if self.base_port else 0
            camera_sock = self._bind(port)
            p.camera_port = camera_sock.getsockname()[1]
            self._camera_socks[p.index] = camera_sock
        if p.fault != "offline":
            await self._serve_bambu(device)

    async def _push_forever(self) -> None:
        """Every printer pushes once per PUSH_INTERVAL, spread over ten slots so 1,000 printers
        do not all write in the same instant."""
        slots = 10
        devices = list(self.bambu_devices.values())
        slot = 0
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            # A fixed rate: the slot's own work doesn't stretch the interval (1,000 printers).
            due += bambu.PUSH_INTERVAL / slots
            await asyncio.sleep(max(0.0, due - loop.time()))
            for device in devices[slot::slots]:
                try:
                    device.tick()
                except Exception:
                    logger.exception("%s: push failed", device.serial)
            slot = (slot + 1) % slots

    async def _sample_forever(self) -> None:
        printers = self.printers
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.stats_counters.sample([p.fault is not None for p in printers])

    # -- listeners ------------------------------------------------------------------------

    def add_print_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call `listener(entry)` (a print_log entry) at every print start and end, on the farm's
        loop thread, before the request that caused it is answered: keep it short."""
        self._print_listeners.append(listener)

    def add_upload_listener(self, listener: Callable[[int, str], None]) -> None:
        """Call `listener(index, path)` when a printer has stored an uploaded file, on the farm's
        loop thread, before the upload is answered (a fault set here hits the next request)."""
        self._upload_listeners.append(listener)

    def _notify_upload(self, printer: SimPrinter, path: str) -> None:
        for listener in list(self._upload_listeners):
            try:
                listener(printer.index, path)
            except Exception:
                logger.exception("upload listener %r failed", listener)

    def _notify_print(self, printer: SimPrinter, record: Any, now: float) -> None:
        if not self._print_listeners:
            return
        entry = printer.describe_print(record, now)
        for listener in list(self._print_listeners):
            try:
                listener(entry)
            except Exception:
                logger.exception("print listener %r failed", listener)


@contextlib.contextmanager
def running_farm(count: int = 3, **options: Any) -> Iterator[SimulatedFarm]:
    """Run a SimulatedFarm (same arguments) on its own event loop in a daemon thread, for sync code."""
    farm = SimulatedFarm(count, **options)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(farm.start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="simulated-farm", daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield farm
    finally:
        try:
            asyncio.run_coroutine_threadsafe(farm.stop(), loop).result(CALL_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CALL_TIMEOUT)
