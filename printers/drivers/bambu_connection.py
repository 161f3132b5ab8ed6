"""The wire details of a Bambu Lab printer's connections: its address, the shared TLS context,
the certificate's name, and the texts of the failures an operator sees (printer-protocols.md §4)."""

from __future__ import annotations

import contextlib
import ftplib
import functools
import socket
import ssl
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiomqtt
from cryptography import x509
from cryptography.x509.oid import NameOID

from printers.drivers.base import DriverAuthError, DriverError

MQTT_PORT, FTPS_PORT = 8883, 990
KEEPALIVE = 60  # seconds (Bambu Studio, ha-bambulab)
# A full X1 report is ~10 KB; anything near this is not a status report. Bigger packets are
# refused before they are read into memory and the connection is dropped with a clear status.
MAX_PACKET = 1024 * 1024
DEV_MODE_OFF = (
    "Control is refused: enable LAN Only Mode and Developer Mode on the printer "
    "(Settings → Network), then try again; its status still shows without them"
)
# Commands rejected because they are not signed by Bambu's apps (firmware 2025+ without
# Developer Mode): this err_code in the reply, and this bit in `print.fun` says so up front.
UNSIGNED_REFUSED = 84033543
FUN_SIGNATURE_REQUIRED = 0x20000000
BUSY_STATES = frozenset({"PREPARE", "RUNNING", "PAUSE", "SLICING"})


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One context for every printer (a context per connection costs ~200 KB at 1,000 printers).
    No CA check: the certificate is pinned instead (printers.drivers.bambu)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def parse_address(url: str) -> tuple[str, int, int]:
    """`mqtts://host[:port][?ftps=port]` (or a bare host) -> (host, MQTT port, FTPS port)."""
    text = url.strip()
    parts = urlsplit(text if "://" in text else f"mqtts://{text}")
    try:
        port = parts.port or MQTT_PORT
        ftps = parse_qs(parts.query).get("ftps", [str(FTPS_PORT)])[0]
        ftps_port = int(ftps)
    except ValueError:
        raise DriverError(f"Not a Bambu printer address: {url!r}", permanent=True) from None
    if parts.scheme != "mqtts" or not parts.hostname or not 0 < ftps_port < 65536:
        raise DriverError(
            f"Not a Bambu printer address: {url!r} (expected the printer's IP or host name)", permanent=True
        )
    return parts.hostname, port, ftps_port


def certificate_name(der: bytes) -> str:
    """The subject CN of a DER certificate ("" when it has none or can't be read)."""
    try:
        names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return ""
    return str(names[0].value) if names else ""


class CertificateRefused(ssl.SSLError):
    """Raised inside the TLS handshake's thread: the connection ends before MQTT's CONNECT
    (and so before the access code) is sent."""


def signature_required(report: Mapping[str, Any]) -> bool:
    fun = report.get("fun")
    try:
        bits = int(fun, 16) if isinstance(fun, str) else int(fun) if isinstance(fun, int) else 0
    except ValueError:
        return False
    return bool(bits & FUN_SIGNATURE_REQUIRED)


def card_name(remote_name: str) -> str:
    """The path on the SD card, relative to its root (§4.3: uploads go into the root)."""
    name = remote_name.replace("\\", "/").strip("/")
    parts = PurePosixPath(name).parts
    if not parts or any(p in {".", ".."} for p in parts) or any(c in name for c in "\r\n\x00"):
        raise DriverError(f"Not a file name the printer can take: {remote_name!r}", permanent=True)
    return name


def upload_error(exc: BaseException, name: str, refused: DriverError | None) -> DriverError:
    if refused is not None:
        return refused
    if isinstance(exc, ftplib.error_perm) and str(exc).startswith("530"):
        return DriverAuthError("The printer refused the LAN access code for the file upload")
    if isinstance(exc, TimeoutError | socket.timeout):
        return DriverError(f"The upload of {name} stalled: the printer stopped taking data")
    if isinstance(exc, ftplib.Error):
        return DriverError(f"The printer refused the upload of {name}: {exc}")
    return DriverError(f"The upload of {name} failed: {exc or type(exc).__name__}; nothing was started")


def drop(client: aiomqtt.Client) -> None:
    """Close a client's socket whatever state aiomqtt left it in (a failed connect keeps it)."""
    paho: Any = client._client  # noqa: SLF001
    with contextlib.suppress(Exception):
        paho._sock_close()  # noqa: SLF001
