"""Klipper through Moonraker's websocket: the status pushed by a subscription (printer-protocols.md
§1.3); commands, uploads, history and the probe over HTTP as MoonrakerDriver.

One JSON-RPC connection per printer: server.info (is Klippy there?), printer.info (its
version), then printer.objects.subscribe with the fields the dashboard shows. The reply is the
full status, then `notify_status_update` brings the changed fields (Klipper batches them every
250 ms); they are merged into one copy per printer and mapped by the polling driver's
`parse_status`, so both transports report the same status for the same printer.

Klippy going away (notify_klippy_disconnected, a firmware restart) forgets the subscription:
the status reads as polling's "Klipper not ready", server.info is asked again every few
seconds, and the subscription is renewed once Klippy is back (notify_klippy_ready or
server.info saying so). A socket quiet for `silence` s is pinged; no pong within the reply
timeout and the printer is gone (a host that died keeps no TCP connection honest).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import socket
from collections.abc import AsyncGenerator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from printers.drivers.base import DriverConfig, DriverError, PushDriver
from printers.drivers.moonraker import MoonrakerDriver, firmware_name, parse_status
from printers.drivers.rest import auth_error, http_error, invalid_address, text, transport_error
from printers.state import PrinterStatus, State

# What parse_status reads, and nothing more: every other field would be a delta to parse.
SUBSCRIPTION: dict[str, list[str]] = {
    "webhooks": ["state", "state_message"],
    "print_stats": ["state", "filename", "print_duration", "total_duration", "message"],
    "virtual_sdcard": ["progress"],
    "display_status": ["progress", "message"],
    "extruder": ["temperature", "target"],
    "heater_bed": ["temperature", "target"],
}
MAX_MESSAGE = 1024 * 1024  # a status update is ~200 bytes; a full subscribe reply ~1 KB
_SUBSCRIBE = "printer.objects.subscribe"


def _as_httpx(exc: BaseException, kind: type[httpx.TransportError]) -> httpx.TransportError:
    """A transport failure in httpx's terms, as the polling driver's carry (the poller and the
    tests read the cause to tell "unreachable" from a refusal), the original kept beneath."""
    error = kind(str(exc) or type(exc).__name__)
    error.__cause__ = exc
    return error


def socket_url(base_url: str) -> str:
    """http://host:7125 -> ws://host:7125/websocket (https -> wss)."""
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :] + "/websocket"
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :] + "/websocket"
    raise invalid_address(base_url)


class MoonrakerSocketDriver(PushDriver, MoonrakerDriver):
    """MoonrakerDriver whose status comes from a websocket subscription (the coordinator runs
    `watch()`); `fetch_status()` is one subscribe on a connection of its own."""

    protocol: ClassVar[str] = "moonraker"
    label: ClassVar[str] = "Klipper (Moonraker)"
    # Quiet this long, the socket is pinged; an unchanged status is passed on this often too
    # (it says "still there": the writer refreshes last_seen from it). A dead printer shows
    # within silence + the reply timeout (3 + 3 s), about what polling every 2 s takes (2 + 3).
    silence: float = 3.0
    # Without Klippy: server.info is asked this often until it is back (§1.3: don't rely on
    # notify_klippy_ready alone).
    recheck: float = 2.0

    def __init__(self, config: DriverConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        timeout = client.timeout
        self.connect_timeout = float(timeout.connect or 5.0)
        self.reply_timeout = float(timeout.read or 5.0)
        self.malformed = 0  # frames that were not JSON objects
        self._ids = itertools.count(1)

    # -- connection -----------------------------------------------------------------------

    async def _connect_socket(self, url: str) -> socket.socket:
        """The TCP connection, within the connect timeout (as polling's connect phase)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "wss" else 80)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                family, kind, proto, _, address = found[0]
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setblocking(False)
                    await loop.sock_connect(sock, address)
                except BaseException:
                    sock.close()
                    raise
                return sock
        except TimeoutError as exc:
            raise DriverError(
                f"Could not connect to {self.base_url} within {self.connect_timeout:g} s"
                " — is the printer on and the address right?"
            ) from _as_httpx(exc, httpx.ConnectTimeout)
        except OSError as exc:
            error = transport_error(exc, base_url=self.base_url, timeout=self.client.timeout)
            raise error from _as_httpx(exc, httpx.ConnectError)

    async def _open(self) -> ClientConnection:
        url = socket_url(self.base_url)
        headers = {"X-Api-Key": self.config.api_key} if self.config.api_key else None
        sock = await self._connect_socket(url)
        try:
            try:
                # The upgrade's answer within the read timeout (as polling's reply).
                async with asyncio.timeout(self.reply_timeout):
                    return await connect(
                        url,
                        sock=sock,
                        additional_headers=headers,
                        user_agent_header="printfarm",
                        compression=None,  # ~200-byte JSON: deflate costs more CPU than it saves
                        proxy=None,
                        open_timeout=None,  # the timeout above
                        ping_interval=None,  # pinged when quiet, below: no keepalive task per printer
                        max_size=MAX_MESSAGE,
                        max_queue=64,
                    )
            except BaseException:
                sock.close()
                raise
        except InvalidStatus as exc:
            response = exc.response
            reply = httpx.Response(
                response.status_code,
                headers=list(response.headers.raw_items()),
                content=bytes(response.body or b""),
            )
            if response.status_code in (401, 403):
                raise auth_error(reply) from None
            if response.status_code == 404:
                if await self._server_info() is None:
                    raise self._no_api() from None
                raise DriverError(
                    f"Moonraker at {self.base_url} has no websocket (/websocket is missing)", permanent=True
                ) from None
            raise http_error(reply) from None
        except InvalidURI:
            raise invalid_address(self.base_url) from None
        except TimeoutError as exc:
            raise DriverError(
                f"No answer from {self.base_url} within {self.reply_timeout:g} s"
            ) from _as_httpx(exc, httpx.ReadTimeout)
        except InvalidHandshake as exc:
            raise DriverError(f"{self.base_url} did not open a websocket: {exc}") from ConnectionError()
        except OSError as exc:
            error = transport_error(exc, base_url=self.base_url, timeout=self.client.timeout)
            raise error from _as_httpx(exc, httpx.ReadError)

    def _lost(self, exc: ConnectionClosed) -> DriverError:
        if exc.rcvd is not None and exc.rcvd.code == 1009:
            return DriverError(f"The printer sent a message of over {MAX_MESSAGE // 1024} KB; dropped it")
        return DriverError(f"{self.base_url} closed the connection unexpectedly")

    async def _send(self, ws: ClientConnection, method: str, params: Mapping[str, Any] | None = None) -> int:
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            message["params"] = params
        await ws.send(orjson.dumps(message).decode())
        return request_id

    # -- status ---------------------------------------------------------------------------

    async def watch(self) -> AsyncGenerator[PrinterStatus, None]:
        ws = await self._open()
        try:
            async for status in self._follow(ws):
                yield status
        except ConnectionClosed as exc:
            raise self._lost(exc) from ConnectionError()
        except OSError as exc:
            raise transport_error(exc, base_url=self.base_url, timeout=self.client.timeout) from exc
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await ws.close()
            ws.transport.abort()

    async def _follow(self, ws: ClientConnection) -> AsyncGenerator[PrinterStatus, None]:
        loop = asyncio.get_running_loop()
        objects: dict[str, dict[str, Any]] = {}
        payload = {"result": {"status": objects}}  # parse_status's envelope around the merged copy
        waiting: dict[int, tuple[str, float]] = {}  # request id -> (method, sent at)
        subscribed = False
        # Only the versions of server.info's and printer.info's answers are kept (1,000
        # printers' whole answers were ~4 MB of the poller's memory).
        moonraker: Mapping[str, Any] = {}
        klipper: Mapping[str, Any] | None = None
        last: PrinterStatus | None = None
        heard = yielded = loop.time()
        pong: Any = None  # the waiter of a ping sent because the socket went quiet
        pong_at = 0.0
        recheck_at: float | None = None  # when to ask server.info again (no Klippy)
        readable = self.malformed  # malformed frames before the last readable one

        async def ask(method: str, params: Mapping[str, Any] | None = None) -> None:
            waiting[await self._send(ws, method, params)] = (method, loop.time())

        def firmware() -> str:
            return firmware_name(moonraker, klipper)

        await ask("server.info")
        while True:
            now = loop.time()
            deadline = heard + self.silence if pong is None else pong_at + self.reply_timeout
            if waiting:
                deadline = min(deadline, min(sent for _, sent in waiting.values()) + self.reply_timeout)
            if recheck_at is not None:
                deadline = min(deadline, recheck_at)
            try:
                async with asyncio.timeout_at(deadline):
                    raw = await ws.recv(decode=False)
            except TimeoutError:
                now = loop.time()
                garbled = self.malformed - readable
                if garbled and now - heard >= self.silence:
                    raise self._unanswered(now - heard, garbled) from None  # it talks, but not JSON
                if any(now - sent >= self.reply_timeout for _, sent in waiting.values()):
                    raise self._unanswered(now - heard, garbled) from TimeoutError()
                if pong is not None and now - pong_at >= self.reply_timeout:
                    if not pong.done():
                        raise self._unanswered(now - heard, garbled) from TimeoutError()
                    # Alive when pinged: the reading still holds (read again: a thumbnail
                    # fetched meanwhile shows); quiet from then on, ping again.
                    heard, pong = pong_at, None
                    fresh = await self._status(payload) if subscribed else last
                    if fresh is not None and fresh.firmware != (named := firmware()):
                        fresh = dataclasses.replace(fresh, firmware=named)
                    if fresh is not None and (fresh != last or now - yielded >= self.silence):
                        last, yielded = fresh, now
                        yield fresh
                elif pong is None and now - heard >= self.silence:
                    pong, pong_at = await ws.ping(), now
                if recheck_at is not None and now >= recheck_at:
                    recheck_at = None
                    await ask("server.info")
                continue
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                message = None
            if not isinstance(message, dict):
                self.malformed += 1
                if waiting and not subscribed:  # the answer we wait for, most likely: broken
                    asked = ", ".join(method for method, _ in waiting.values())
                    raise DriverError(f"Printer sent invalid JSON (websocket, waiting for {asked})")
                continue
            resubscribed = any(method == _SUBSCRIBE for method, _ in waiting.values())
            if self.malformed != readable and subscribed and not resubscribed:
                # The broken frames were updates: a change they carried (a print's end) is sent
                # once, so the merged copy may miss it for good. Subscribing again answers the
                # full status.
                await ask(_SUBSCRIBE, {"objects": SUBSCRIPTION})
            heard, readable = loop.time(), self.malformed
            method = message.get("method")
            status: PrinterStatus | None = None
            if method == "notify_status_update":
                params = message.get("params")
                delta = params[0] if isinstance(params, list) and params else None
                if not subscribed or not isinstance(delta, dict):
                    continue
                for name, changed in delta.items():
                    if isinstance(changed, dict):
                        objects.setdefault(name, {}).update(changed)
                status = await self._status(payload)
            elif method == "notify_klippy_disconnected":
                subscribed = False
                objects.clear()
                status = PrinterStatus(state=State.CONNECTING, message="Klipper not ready: disconnected")
                recheck_at = loop.time() + self.recheck
            elif method == "notify_klippy_ready":
                recheck_at = None
                await ask("printer.info")
                await ask(_SUBSCRIBE, {"objects": SUBSCRIPTION})
            elif method is None and message.get("id") in waiting:
                asked, _ = waiting.pop(message["id"])
                result, error = message.get("result"), message.get("error")
                if asked == "server.info":
                    if not isinstance(result, dict):
                        raise self._no_api()
                    moonraker = {"moonraker_version": result.get("moonraker_version")}
                    state = text(result.get("klippy_state")) or "unknown"
                    if result.get("klippy_connected") is False or state == "disconnected":
                        # Klippy isn't there: polling's words for it, and ask again later.
                        subscribed = False
                        status = PrinterStatus(state=State.CONNECTING, message=f"Klipper not ready: {state}")
                        recheck_at = loop.time() + self.recheck
                    elif not subscribed:
                        await ask("printer.info")
                        await ask(_SUBSCRIBE, {"objects": SUBSCRIPTION})
                elif asked == "printer.info":
                    if isinstance(result, dict):
                        klipper = {"software_version": result.get("software_version")}
                    status = last  # now naming Klipper's version
                elif asked == _SUBSCRIBE:
                    envelope = {"result": result}
                    if error is not None or not isinstance(result, dict):
                        if isinstance(error, dict):
                            # Klippy went (or never came) between server.info and the subscribe.
                            recheck_at = loop.time() + self.recheck
                            continue
                        parse_status(envelope)  # raises: "unexpected reply"
                    fresh = result.get("status")
                    objects.clear()
                    if isinstance(fresh, dict):
                        objects.update({k: dict(v) for k, v in fresh.items() if isinstance(v, dict)})
                    subscribed = True
                    status = await self._status(envelope)
            # An idle printer's socket may stay quiet for hours: keep no reply alive meanwhile.
            message = result = error = fresh = envelope = None
            if status is None:
                continue
            if status.firmware != (named := firmware()):
                status = dataclasses.replace(status, firmware=named)
            if status != last or heard - yielded >= self.silence:
                last, yielded = status, heard
                yield status

    async def _status(self, payload: object) -> PrinterStatus:
        # As polling reads it: the slicer's estimate and the printer's thumbnail of the file.
        return await self.reading(payload)

    def _unanswered(self, seconds: float, garbled: int) -> DriverError:
        if garbled:
            return DriverError(
                f"Printer sent invalid JSON on its websocket: {garbled} malformed messages, "
                f"none readable for {seconds:.0f} s"
            )
        return DriverError(
            f"No answer from the printer's websocket for {seconds:.0f} s: it stopped responding"
        )
