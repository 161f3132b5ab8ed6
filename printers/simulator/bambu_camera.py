"""The camera port of a simulated Bambu Lab P1/A1 printer (6000 on a real one; X1 series have
none: they stream RTSPS on 322).

TLS with the printer's certificate; the client's first 80 bytes are four little-endian uint32
(0x40, 0x3000, 0, 0), the user name "bblp" and the LAN access code, each NUL-padded to 32
bytes. A wrong one: the connection is closed without a frame. Then a frame every
FRAME_INTERVAL seconds until the client goes: a 16-byte header (the JPEG's length as uint32
LE, then 0, then 1 as uint64 LE) and the JPEG, drawn by the farm's cameras
(printers.simulator.cameras, once per second per printer).

Faults: the printer's own (offline: nothing listens; blackhole: held before TLS; a changed
access code) and its camera's (SimulatedFarm.set_camera_fault): "hang" (signed in, no frame
until it clears), "garbage" (a frame that is no JPEG), "down" (closed after TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from typing import TYPE_CHECKING

from printers.simulator.bambu_mqtt import close

if TYPE_CHECKING:
    from printers.simulator.bambu import BambuDevice

logger = logging.getLogger(__name__)

AUTH_BYTES = 80
AUTH_MAGIC = struct.pack("<4I", 0x40, 0x3000, 0, 0)
USERNAME = b"bblp"
AUTH_TIMEOUT = 10.0  # seconds for the TLS handshake and the sign-in
FRAME_INTERVAL = 0.5  # seconds between frames
MAX_FRAMES = 7200  # an hour at 2 fps: a forgotten client does not stream forever
FAULT_CHECK = 0.1
GARBAGE = b"<html><body>camera service restarting</body></html>"


def _field(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def signed_in(packet: bytes, access_code: str) -> bool:
    return (
        len(packet) == AUTH_BYTES
        and packet[:16] == AUTH_MAGIC
        and _field(packet[16:48]) == USERNAME
        and _field(packet[48:80]) == access_code.encode()
    )


def frame_packet(jpeg: bytes) -> bytes:
    return struct.pack("<IIQ", len(jpeg), 0, 1) + jpeg


class CameraServer:
    """The camera of one BambuDevice; the farm owns the listening socket."""

    def __init__(self, device: BambuDevice) -> None:
        self.device = device
        self.connections: set[asyncio.StreamWriter] = set()
        self.signed_in = 0  # clients that gave the right access code
        self.refused = 0  # clients that did not
        self.frames = 0  # frames sent

    def drop_all(self, drop: object) -> None:
        for writer in list(self.connections):
            drop(writer.transport)  # type: ignore[operator]

    def _fault(self) -> str | None:
        return self.device.farm.cameras.faults.get(self.device.index)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        device = self.device
        self.connections.add(writer)
        try:
            while device.fault == "blackhole" and not writer.transport.is_closing():
                if await device.farm.wait_closing(FAULT_CHECK):
                    return
            async with asyncio.timeout(AUTH_TIMEOUT):
                await writer.start_tls(device.certificate.context)
                if self._fault() == "down":
                    return
                packet = await reader.readexactly(AUTH_BYTES)
            if not signed_in(packet, device.current_access_code):
                self.refused += 1
                return
            self.signed_in += 1
            await self._send_frames(writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception:
            logger.exception("%s: camera connection failed", device.serial)
        finally:
            self.connections.discard(writer)
            with contextlib.suppress(Exception):
                await close(writer)

    async def _send_frames(self, writer: asyncio.StreamWriter) -> None:
        device, farm = self.device, self.device.farm
        for _ in range(MAX_FRAMES):
            while self._fault() == "hang":
                if await farm.wait_closing(FAULT_CHECK):
                    return
            if self._fault() == "garbage":
                jpeg = GARBAGE
            else:
                jpeg = farm.cameras.frame(device.printer, farm.sim_now())
            writer.write(frame_packet(jpeg))
            await writer.drain()
            self.frames += 1
            if await farm.wait_closing(FRAME_INTERVAL) or writer.transport.is_closing():
                return
