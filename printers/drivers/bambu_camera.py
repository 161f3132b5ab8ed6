"""The camera of a Bambu Lab P1 or A1 printer, read by the server: one JPEG frame per snapshot.

These printers send their camera as JPEG frames over TLS on port 6000 (learnt from
ha-bambulab's chamber image client and OpenBambuAPI): the client sends 80 bytes, four
little-endian uint32 (0x40, 0x3000, 0, 0), then the user name "bblp" and the LAN access code,
each NUL-padded to 32 bytes; the printer answers with frames, each a 16-byte header whose
first uint32 (little-endian) is the JPEG's length, then the JPEG. A wrong access code: the
printer closes the connection without a frame. X1 series printers stream RTSPS on port 322
instead (with LAN live view on): not read here.

The camera is addressed as `bambu-camera://bblp:<access code>@host:port`, built from the
printer's address (`camera=<port>` in it overrides 6000: the simulator's); it carries the
access code, so like a camera URL it is never shown (printers.camera_sources).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from urllib.parse import parse_qs, quote, unquote, urlsplit

from printers.drivers.bambu_connection import parse_address, tls_context
from printers.drivers.base import DriverError

SCHEME = "bambu-camera"
CAMERA_PORT = 6000
USERNAME = "bblp"
HEADER_BYTES = 16
AUTH_MAGIC = (0x40, 0x3000, 0, 0)
JPEG_START = b"\xff\xd8\xff"
CLOSE_TIMEOUT = 1.0  # seconds given to a polite TLS close before the socket is just dropped

# The first three characters of a serial number name the model (Bambu Lab's own numbering).
JPEG_SERIALS = frozenset({"01S", "01P", "030", "039"})  # P1P, P1S, A1 mini, A1: port 6000
RTSPS_SERIALS = frozenset({"00W", "00M", "03W"})  # X1, X1 Carbon, X1E: RTSPS on port 322
RTSPS_NOT_READ = "camera: X1 RTSPS streams are not supported yet"
NO_FRAME = "camera closed without a frame: check the access code"


class CameraProblem(Exception):
    """The camera gave no frame; the message says why, in a few words for a placeholder."""


def camera_kind(serial: str, model: str) -> str:
    """ "jpeg" (a camera read here), "rtsps" (X1 series, not read) or "" (not known), by the
    serial number's model code, else by the model the admin entered."""
    prefix = serial[:3].upper()
    if prefix in JPEG_SERIALS:
        return "jpeg"
    if prefix in RTSPS_SERIALS:
        return "rtsps"
    words = model.upper().replace(" ", "")
    if "X1" in words:
        return "rtsps"
    if "P1" in words or "A1" in words:
        return "jpeg"
    return ""


def camera_url(base_url: str, access_code: str) -> str:
    """The printer's camera as `bambu-camera://bblp:<code>@host:port`, "" when the address or
    the access code is missing or malformed."""
    if not access_code:
        return ""
    try:
        host, _mqtt, _ftps = parse_address(base_url)
        query = urlsplit(base_url.strip()).query
        port = int(parse_qs(query).get("camera", [str(CAMERA_PORT)])[0])
    except (DriverError, ValueError):
        return ""
    if not 0 < port < 65536:
        return ""
    shown_host = f"[{host}]" if ":" in host else host
    return f"{SCHEME}://{USERNAME}:{quote(access_code, safe='')}@{shown_host}:{port}"


def auth_packet(access_code: str, username: str = USERNAME) -> bytes:
    return (
        struct.pack("<4I", *AUTH_MAGIC)
        + username.encode()[:32].ljust(32, b"\0")
        + access_code.encode()[:32].ljust(32, b"\0")
    )


async def read_frame(url: str, *, connect_timeout: float, timeout: float, max_bytes: int) -> bytes:
    """Connect, sign in and return the first JPEG frame; CameraProblem otherwise. The whole
    exchange takes at most `timeout` seconds: a hung camera never holds a viewer longer."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME or not parts.hostname or parts.port is None:
        raise CameraProblem("not a Bambu Lab camera address")
    writer: asyncio.StreamWriter | None = None
    signed_in = False  # the sign-in was sent: a close now is most likely a refused access code
    try:
        async with asyncio.timeout(timeout):
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(
                    parts.hostname, parts.port, ssl=tls_context(), server_hostname=parts.hostname
                )
            writer.write(auth_packet(unquote(parts.password or ""), unquote(parts.username or USERNAME)))
            signed_in = True
            await writer.drain()
            header = await reader.readexactly(HEADER_BYTES)
            size = struct.unpack_from("<I", header)[0]
            if not 0 < size <= max_bytes:
                raise CameraProblem("not an image" if size else "camera sent an empty frame")
            signed_in = False
            frame = await reader.readexactly(size)
    except TimeoutError as exc:
        raise CameraProblem("camera timed out") from exc
    except ConnectionRefusedError as exc:
        raise CameraProblem("camera unreachable") from exc
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
        if signed_in:  # the printer closes on a wrong access code without a word
            raise CameraProblem(NO_FRAME) from exc
        closed = not isinstance(exc, ssl.SSLError) or writer is not None
        raise CameraProblem("camera closed the connection" if closed else "camera TLS failed") from exc
    except OSError as exc:  # no route, host name not found
        raise CameraProblem("camera unreachable") from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await writer.wait_closed()
    if not frame.startswith(JPEG_START):
        raise CameraProblem("not an image")
    return frame
