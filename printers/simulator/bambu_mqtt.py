"""A minimal MQTT 3.1.1 broker, one per simulated Bambu printer, as the printer's firmware runs.

Only what a Bambu printer's broker does: CONNECT with username `bblp` and the LAN access code as
password (else CONNACK 5, not authorised), a client limit (CONNACK 3, server unavailable),
SUBSCRIBE/UNSUBSCRIBE with `+`/`#` filters, PUBLISH from clients at QoS 0/1 (2 acknowledged too),
QoS 0 PUBLISH to subscribers of the report topic, PINGREQ, DISCONNECT, and the keepalive
enforced at 1.5x. Anything malformed closes that connection only. A full broker library per
printer would be far too heavy for 1,000 printers in one process; this costs one coroutine and
one small object per connection.

TLS is started by hand after accept (`StreamWriter.start_tls`), so the "blackhole" fault can
hold a TCP connection whose TLS handshake never completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from printers.simulator.bambu import BambuDevice

logger = logging.getLogger(__name__)

USERNAME = "bblp"
MAX_CLIENTS = 4  # Bambu firmware serves only a few (Studio, Handy, Home Assistant compete)
MAX_PACKET = 1024 * 1024  # a request larger than this is garbage
CONNECT_TIMEOUT = 10.0  # seconds from accept to a CONNECT (and for the TLS handshake)
WRITE_BUFFER_LIMIT = 4 * 1024 * 1024  # a subscriber that stops reading is dropped past this
CLOSE_TIMEOUT = 1.0  # seconds a closing connection may take to flush
HOLD_CHECK = 0.25  # seconds between a held connection's looks at whether its fault cleared

# Packet types (high nibble of the first byte)
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# CONNACK return codes
ACCEPTED, BAD_PROTOCOL, SERVER_UNAVAILABLE, NOT_AUTHORISED = 0, 1, 3, 5


class ProtocolError(Exception):
    """The client broke MQTT: its connection is closed."""


def encode_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(data):
        raise ProtocolError("truncated string")
    (size,) = struct.unpack_from(">H", data, pos)
    end = pos + 2 + size
    if end > len(data):
        raise ProtocolError("truncated string")
    return data[pos + 2 : end], end


def _text(data: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _string(data, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise ProtocolError("string is not UTF-8") from exc


def publish_packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH, ready to write."""
    name = topic.encode()
    body_len = 2 + len(name) + len(payload)
    return b"".join(
        (bytes([PUBLISH << 4]), encode_length(body_len), struct.pack(">H", len(name)), name, payload)
    )


def topic_matches(filter_: str, topic: str) -> bool:
    """MQTT wildcard match: `+` one level, `#` the rest (including the parent level)."""
    f_parts = filter_.split("/")
    t_parts = topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


def valid_filter(filter_: str) -> bool:
    if not filter_:
        return False
    parts = filter_.split("/")
    for i, part in enumerate(parts):
        if "#" in part and (part != "#" or i != len(parts) - 1):
            return False
        if "+" in part and part != "+":
            return False
    return True


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """(type, flags, body) of the next packet; IncompleteReadError at EOF."""
    first = (await reader.readexactly(1))[0]
    length = 0
    for shift in range(0, 28, 7):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        raise ProtocolError("remaining length longer than 4 bytes")
    if length > MAX_PACKET:
        raise ProtocolError(f"packet of {length} bytes")
    body = await reader.readexactly(length) if length else b""
    return first >> 4, first & 0x0F, body


async def close(writer: asyncio.StreamWriter) -> None:
    """Close after what is buffered (a refusing CONNACK) is sent; abort a peer that won't read."""
    transport = writer.transport
    if transport.is_closing():
        transport.abort()  # (a no-op when already closed) TLS may still be flushing
        return
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (TimeoutError, OSError, ssl.SSLError):
        pass
    finally:
        transport.abort()


class Session:
    """One client connection to one printer's broker."""

    def __init__(self, broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.broker = broker
        self.reader = reader
        self.writer = writer
        self.filters: list[str] = []
        self.subscribed = False  # whether a filter matches the report topic
        self.client_id = ""

    def send(self, data: bytes) -> None:
        transport = self.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.abort()  # a client that stopped reading; a real broker drops it too
            return
        self.writer.write(data)

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()

    def _update_subscribed(self) -> None:
        topic = self.broker.report_topic
        self.subscribed = any(topic_matches(f, topic) for f in self.filters)


class Broker:
    """The MQTT side of one simulated Bambu printer; the device decides what the messages mean."""

    def __init__(self, device: BambuDevice, *, max_clients: int = MAX_CLIENTS) -> None:
        self.device = device
        self.max_clients = max_clients
        self.sessions: set[Session] = set()
        self.connections: set[asyncio.StreamWriter] = set()  # every open one, sessions or not
        self.report_topic = f"device/{device.serial}/report"
        self.request_topic = f"device/{device.serial}/request"

    @property
    def subscribers(self) -> list[Session]:
        return [s for s in self.sessions if s.subscribed]

    def publish(self, payload: bytes, *, only: Session | None = None) -> int:
        """Send `payload` on the report topic to every subscriber (or just `only`); how many."""
        packet = publish_packet(self.report_topic, payload)
        targets = [only] if only is not None else self.subscribers
        for session in targets:
            session.send(packet)
        return len(targets)

    def drop_all(self, drop: Callable[[asyncio.BaseTransport], None]) -> None:
        for writer in list(self.connections):
            drop(writer.transport)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One accepted TCP connection, from the TLS handshake to its close."""
        device = self.device
        self.connections.add(writer)
        try:
            if device.fault == "blackhole":
                await self._hold(writer)  # TCP accepted, TLS never starts
                return
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await writer.start_tls(device.certificate.context)
            if device.fault in ("blackhole", "no_connack"):
                await self._hold(writer)  # TLS up, CONNECT never answered
                return
            async with asyncio.timeout(CONNECT_TIMEOUT):
                kind, _flags, body = await read_packet(reader)
            if kind != CONNECT:
                raise ProtocolError(f"first packet type {kind}, not CONNECT")
            session = Session(self, reader, writer)
            keepalive = self._connect(session, body)
            if keepalive is None:
                return
            self.sessions.add(session)
            try:
                await self._serve(session, keepalive)
            finally:
                self.sessions.discard(session)
        except (ProtocolError, ssl.SSLError) as exc:
            logger.debug("%s: MQTT connection closed: %s", device.serial, exc)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except Exception:
            logger.exception("%s: MQTT connection failed", device.serial)
        finally:
            self.connections.discard(writer)
            await close(writer)

    async def _hold(self, writer: asyncio.StreamWriter) -> None:
        """Keep the connection open without a word until the fault clears or the farm stops;
        then drop it, as a printer that rebooted does."""
        while self.device.fault in ("blackhole", "no_connack") and not writer.transport.is_closing():
            if await self.device.farm.wait_closing(HOLD_CHECK):
                break
        writer.transport.abort()

    def _connect(self, session: Session, body: bytes) -> float | None:
        """Parse CONNECT and answer CONNACK; the keepalive in seconds, or None when refused."""
        name, pos = _text(body, 0)
        if pos + 4 > len(body):
            raise ProtocolError("truncated CONNECT")
        level, flags = body[pos], body[pos + 1]
        (keepalive,) = struct.unpack_from(">H", body, pos + 2)
        pos += 4
        if name != "MQTT" or level != 4:
            self._connack(session, BAD_PROTOCOL)
            return None
        if flags & 0x01:
            raise ProtocolError("reserved CONNECT flag set")
        session.client_id, pos = _text(body, pos)
        if flags & 0x04:  # will topic and message: read past them, never sent
            _, pos = _text(body, pos)
            _, pos = _string(body, pos)
        username = password = None
        if flags & 0x80:
            username, pos = _text(body, pos)
        if flags & 0x40:
            raw, pos = _string(body, pos)
            password = raw.decode("utf-8", "replace")
        if username != USERNAME or password != self.device.current_access_code:
            self._connack(session, NOT_AUTHORISED)
            return None
        if len(self.sessions) >= self.max_clients:
            self._connack(session, SERVER_UNAVAILABLE)
            return None
        self._connack(session, ACCEPTED)
        return keepalive * 1.5  # 0: no keepalive asked, none enforced

    def _connack(self, session: Session, code: int) -> None:
        session.send(bytes([CONNACK << 4, 2, 0, code]))

    async def _serve(self, session: Session, keepalive: float) -> None:
        reader = session.reader
        while True:
            async with asyncio.timeout(keepalive or None):
                kind, flags, body = await read_packet(reader)
            if kind == PUBLISH:
                self._on_publish(session, flags, body)
            elif kind == SUBSCRIBE:
                self._on_subscribe(session, flags, body)
            elif kind == UNSUBSCRIBE:
                self._on_unsubscribe(session, flags, body)
            elif kind == PINGREQ:
                if self.device.fault != "blackhole":
                    session.send(bytes([PINGRESP << 4, 0]))
            elif kind == PUBREL:
                session.send(bytes([PUBCOMP << 4, 2]) + body[:2])
            elif kind == DISCONNECT:
                return
            elif kind in (PUBACK, PUBREC, PUBCOMP):
                continue  # we never publish above QoS 0; tolerate stray acks
            else:
                raise ProtocolError(f"unexpected packet type {kind}")

    def _on_publish(self, session: Session, flags: int, body: bytes) -> None:
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        topic, pos = _text(body, 0)
        if qos:
            if pos + 2 > len(body):
                raise ProtocolError("PUBLISH without packet id")
            packet_id = body[pos : pos + 2]
            pos += 2
            if self.device.fault != "blackhole":  # a black hole acknowledges nothing either
                session.send(bytes([(PUBACK if qos == 1 else PUBREC) << 4, 2]) + packet_id)
        if topic == self.request_topic and self.device.fault != "blackhole":
            self.device.on_request(body[pos:], session)

    def _on_subscribe(self, session: Session, flags: int, body: bytes) -> None:
        if flags != 0x02 or len(body) < 2:
            raise ProtocolError("malformed SUBSCRIBE")
        packet_id, pos = body[:2], 2
        granted = bytearray()
        while pos < len(body):
            filter_, pos = _text(body, pos)
            if pos >= len(body):
                raise ProtocolError("SUBSCRIBE filter without QoS")
            qos = body[pos] & 0x03
            pos += 1
            if valid_filter(filter_):
                if filter_ not in session.filters:
                    session.filters.append(filter_)
                granted.append(min(qos, 1))
            else:
                granted.append(0x80)
        if not granted:
            raise ProtocolError("SUBSCRIBE without filters")
        session._update_subscribed()
        session.send(bytes([SUBACK << 4]) + encode_length(2 + len(granted)) + packet_id + bytes(granted))

    def _on_unsubscribe(self, session: Session, flags: int, body: bytes) -> None:
        if flags != 0x02 or len(body) < 2:
            raise ProtocolError("malformed UNSUBSCRIBE")
        packet_id, pos = body[:2], 2
        while pos < len(body):
            filter_, pos = _text(body, pos)
            with contextlib.suppress(ValueError):
                session.filters.remove(filter_)
        session._update_subscribed()
        session.send(bytes([UNSUBACK << 4, 2]) + packet_id)
