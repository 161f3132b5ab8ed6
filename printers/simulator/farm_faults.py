"""SimulatedFarm's fault switching and the listening sockets it juggles.

"offline" closes the printer's listening socket and keeps the port bound but not listening, so
clients get a real "connection refused" and the port survives until the fault clears;
"disconnect" takes the firmware link away (see SimPrinter.lose_link). Mixed into SimulatedFarm
(farm.py), whose __init__ sets the attributes annotated below and which provides sim_now().
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, Any

from aiohttp import web

from printers.simulator.farm_control import FarmControl
from printers.simulator.printer import BAMBU_FAULTS, FAULTS, PRUSALINK_FAULTS, SimPrinter, faults_for
from printers.simulator.prusalink import protocol_factory
from printers.simulator.prusalink_state import PrusaLinkDevice

if TYPE_CHECKING:
    from printers.simulator.bambu import BambuDevice
    from printers.simulator.cameras import SimCameras

LISTEN_BACKLOG = 128


def _drop(transport: asyncio.BaseTransport) -> None:
    """Kill a connection now: keep-alive connections die with the "device".

    transport.abort() only closes the socket on the next loop iteration; shutting it down
    first makes a client on the same loop see EOF right away and reconnect (-> refused)
    instead of writing its next request into a dying connection.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    transport.abort()


class FarmFaults(FarmControl):
    """set_fault and the socket work behind "offline"."""

    host: str
    _state: str
    _socks: dict[int, socket.socket]
    _runners: dict[str, web.AppRunner]
    _reopen_started: set[int]
    _tasks: set[asyncio.Task[Any]]
    _ftps_socks: dict[int, socket.socket]
    _camera_socks: dict[int, socket.socket]
    bambu_devices: dict[int, BambuDevice]
    prusalink_devices: dict[int, PrusaLinkDevice]
    cameras: SimCameras

    def set_fault(self, index: int, fault: str | None, delay: float = 3.0) -> None:
        """Switch printer `index` to `fault` (one of FAULTS); None or "none" clears it."""
        if fault == "none" or fault == "":
            fault = None
        if fault is not None and fault not in (*FAULTS, *BAMBU_FAULTS, *PRUSALINK_FAULTS):
            names = ", ".join(dict.fromkeys((*FAULTS, *BAMBU_FAULTS, *PRUSALINK_FAULTS)))
            raise ValueError(f"Unknown fault {fault!r}; expected one of {names} or none")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        protocol = self._printer(index).protocol
        if fault is not None and fault not in faults_for(protocol):
            raise ValueError(
                f"Fault {fault!r} does not apply to {protocol} printers; "
                f"expected one of {', '.join(faults_for(protocol))} or none"
            )
        self._call(lambda: self._set_fault(self._printer(index), fault, float(delay)))

    def set_camera_fault(self, index: int, fault: str | None) -> None:
        """Printer `index`'s webcam: "hang", "garbage", "down" (printers.simulator.cameras) or None."""
        self._printer(index)
        self._call(lambda: self.cameras.set_fault(index, fault))

    def _set_fault(self, p: SimPrinter, fault: str | None, delay: float) -> None:
        if p.protocol == "bambu":
            self._set_bambu_fault(p, fault, delay)
            return
        was_offline = p.fault == "offline"
        if (p.fault == "disconnect") != (fault == "disconnect"):
            now = self.sim_now()
            p.advance(now)  # a print that ended before the link went keeps its real outcome
            if fault == "disconnect":
                p.lose_link(now)
            else:
                p.restore_link()
        device = self.prusalink_devices.get(p.index)
        if device is not None:  # the attention dialog pauses / resumes a print
            now = self.sim_now()
            p.advance(now)
            device.fault_changed(p.fault, fault, now)
        p.fault = fault
        p.fault_delay = delay
        if self._state != "running":
            return  # applied by start()
        if fault == "offline" and not was_offline:
            self._go_offline(p)
        elif was_offline and fault != "offline":
            self._go_online(p)

    def _set_bambu_fault(self, p: SimPrinter, fault: str | None, delay: float) -> None:
        old = p.fault
        device = self.bambu_devices.get(p.index)
        if device is not None:
            device.advance(self.sim_now())  # a print that ended before the fault keeps its outcome
        p.fault = fault
        p.fault_delay = delay
        if self._state != "running" or device is None:
            return  # applied by start()
        device.fault_changed(old, fault, _drop)
        if fault == "offline" and old != "offline":
            self._close_bambu(device)
            self._socks[p.index] = self._bind(p.port)
            self._ftps_socks[p.index] = self._bind(p.ftps_port)
            if p.index in self._camera_socks:
                self._camera_socks[p.index] = self._bind(p.camera_port)
        elif old == "offline" and fault != "offline":
            # Listening from this moment (connections wait in the backlog), as _go_online does,
            # so a caller on the loop sees the printer back at once; serving starts in the task.
            self._socks[p.index].listen(LISTEN_BACKLOG)
            self._ftps_socks[p.index].listen(LISTEN_BACKLOG)
            if p.index in self._camera_socks:
                self._camera_socks[p.index].listen(LISTEN_BACKLOG)
            task = asyncio.get_running_loop().create_task(self._serve_bambu(device))
            self._reopening[p.index] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _t: self._reopening.pop(p.index, None))

    async def _serve_bambu(self, device: BambuDevice) -> None:
        """Listen on the printer's MQTT and FTPS sockets (bound, not yet listening)."""
        assert device.ftps is not None
        p = device.printer
        mqtt_sock, ftps_sock = self._socks[p.index], self._ftps_socks[p.index]
        mqtt_sock.listen(LISTEN_BACKLOG)
        ftps_sock.listen(LISTEN_BACKLOG)
        device.mqtt_server = await asyncio.start_server(
            device.broker.handle, sock=mqtt_sock, backlog=LISTEN_BACKLOG
        )
        device.ftps_server = await asyncio.start_server(
            device.ftps.handle, sock=ftps_sock, backlog=LISTEN_BACKLOG
        )
        camera_sock = self._camera_socks.get(p.index)
        if device.camera is not None and camera_sock is not None:
            camera_sock.listen(LISTEN_BACKLOG)
            device.camera_server = await asyncio.start_server(
                device.camera.handle, sock=camera_sock, backlog=LISTEN_BACKLOG
            )

    def _close_bambu(self, device: BambuDevice) -> None:
        """Stop listening and drop every connection (offline, farm stop)."""
        for server in (device.mqtt_server, device.ftps_server, device.camera_server):
            if server is not None:
                server.close()
        device.mqtt_server = device.ftps_server = device.camera_server = None
        device.broker.drop_all(_drop)
        if device.ftps is not None:
            device.ftps.drop_all(_drop)
        if device.camera is not None:
            device.camera.drop_all(_drop)

    def _protocol_factory(self, p: SimPrinter) -> Any:
        """What serves printer p's connections: its protocol's aiohttp server; on a PrusaLink
        printer wrapped to count its connections."""
        server = self._runners[p.protocol].server
        assert server is not None
        device = self.prusalink_devices.get(p.index)
        return server if device is None else protocol_factory(server, device)

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot bind {self.host}:{port}: {exc.strerror}") from exc
        return sock

    def _go_offline(self, p: SimPrinter) -> None:
        server, p.server = p.server, None
        pending = self._reopening.get(p.index)
        if server is not None:
            server.close()  # closes the listening socket now
            self._socks[p.index] = self._bind(p.port)
        elif pending is not None and p.index not in self._reopen_started:
            # The reopen has not run yet: drop it and its (listening) socket.
            pending.cancel()
            self._reopening.pop(p.index, None)
            self._socks[p.index].close()
            self._socks[p.index] = self._bind(p.port)
        # else: a reopen is mid-way; it sees the fault when it resumes and goes offline itself.
        runner = self._runners[p.protocol]
        if runner.server is not None:
            for handler in runner.server.connections:
                transport = handler.transport
                if transport is not None and transport.get_extra_info("sockname")[1] == p.port:
                    _drop(transport)

    def _go_online(self, p: SimPrinter) -> None:
        # The bound socket listens from this moment (connections wait in the backlog), so a
        # caller on the loop sees the printer back immediately; serving starts in `serve`.
        sock = self._socks[p.index]
        sock.listen(LISTEN_BACKLOG)
        loop = self._loop
        assert loop is not None

        async def serve() -> None:
            self._reopen_started.add(p.index)
            try:
                server = await loop.create_server(
                    self._protocol_factory(p),
                    sock=sock,
                    backlog=LISTEN_BACKLOG,
                )
            finally:
                self._reopen_started.discard(p.index)
                self._reopening.pop(p.index, None)
            if p.fault == "offline" or self._state != "running":
                server.close()
                if self._state == "running":
                    self._socks[p.index] = self._bind(p.port)
            else:
                p.server = server

        task = loop.create_task(serve())
        self._reopening[p.index] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
