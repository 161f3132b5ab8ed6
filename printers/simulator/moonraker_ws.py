"""Moonraker's websocket (`/websocket`, printer-protocols.md §1.3) for simulated printers.

JSON-RPC 2.0 over text frames: server.info, printer.info, printer.objects.list|query|subscribe
and server.connection.identify. A subscription answers with the full status of its objects,
then `notify_status_update` carries only the fields that changed, at most every 250 ms per
connection (Klipper's webhooks batch subscriptions on that timer; Moonraker forwards them) and
nothing while nothing changed. Klippy's link shows as notify_klippy_disconnected / _shutdown /
_ready; a Klippy that went away (the "disconnect" fault, a firmware restart) forgets the
subscription, so a client subscribes again after notify_klippy_ready, as Mainsail does.

Every connection is paced by one farm-wide task (`SocketHub.pace_forever`) in slots, the way
the farm paces Bambu pushes: 1,000 websockets cost one timer, not 1,000.

Faults on a live socket: "blackhole" stops reading it (pings go unanswered) and sends nothing,
then resets it when the fault clears; "malformed"/"garbled" break every frame sent; "slow"
delays replies and paces updates by the fault's delay; "offline" drops it with the port
(farm_faults); "disconnect"/"not_ready" are Klippy's notifications. The upgrade request meets
the HTTP faults in the middleware (blackhole held, slow delayed, http500, auth).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from printers.simulator.common import FARM, PRINTER
from printers.simulator.klipper import OBJECT_NAMES, webhooks_state
from printers.simulator.moonraker import (
    klippy_connected,
    printer_info_result,
    query_status,
    server_info_result,
)
from printers.simulator.printer import SimPrinter

logger = logging.getLogger(__name__)

PACE = 0.25  # Klipper's SUBSCRIPTION_REFRESH_TIME (klippy/webhooks.py)
SLOTS = 5  # the pace is spread over this many turns so not every socket is written at once
WRITE_BACKLOG = 1024 * 1024  # bytes queued to a client that doesn't read: skip its updates
BROKEN = '{"jsonrpc": "2.0", "method": "notify_status_update", "params": [{"print_stats": {"sta'
SOCKETS: web.AppKey[SocketHub] = web.AppKey("moonraker_sockets")
_MISSING = object()


def _klippy(printer: SimPrinter) -> str:
    """Klippy's state as a websocket client learns it: "disconnected" without a Klippy socket."""
    return webhooks_state(printer)[0] if klippy_connected(printer) else "disconnected"


class Connection:
    """One client's websocket: its subscription and what it was last sent."""

    __slots__ = ("held", "klippy", "printer", "sent", "slot", "subscribed", "transport", "ws")

    def __init__(
        self, ws: web.WebSocketResponse, printer: SimPrinter, transport: asyncio.Transport, slot: int
    ) -> None:
        self.ws = ws
        self.printer = printer
        self.transport = transport
        self.slot = slot  # the pacer's turn this connection is updated in
        self.subscribed: dict[str, list[str] | None] = {}
        self.sent: dict[str, dict[str, Any]] = {}  # object -> its fields as last sent
        self.klippy = _klippy(printer)
        self.held = False  # reading paused by the blackhole fault

    async def send(self, message: dict[str, Any]) -> None:
        fault = self.printer.fault
        text = BROKEN if fault in ("malformed", "garbled") else json.dumps(message, separators=(",", ":"))
        await self.ws.send_str(text)

    def subscribe(self, wanted: dict[str, list[str] | None], status: dict[str, Any]) -> None:
        self.subscribed = wanted
        self.sent = {name: dict(values) for name, values in status.items()}

    def changes(self, now: float) -> dict[str, dict[str, Any]]:
        """The fields of the subscribed objects that differ from what was last sent."""
        status = query_status(self.printer, now, self.subscribed)["status"]
        delta: dict[str, dict[str, Any]] = {}
        for name, values in status.items():
            last = self.sent.setdefault(name, {})
            changed = {key: value for key, value in values.items() if last.get(key, _MISSING) != value}
            if changed:
                last.update(changed)
                delta[name] = changed
        return delta


class SocketHub:
    """Every live websocket of a farm's Moonraker printers, paced by one task."""

    def __init__(self, farm: Any) -> None:
        self.farm = farm
        self.connections: set[Connection] = set()
        self._pacer: asyncio.Task[None] | None = None
        self._slow_due: dict[Connection, float] = {}
        self.opened = 0

    def add(self, connection: Connection) -> None:
        self.connections.add(connection)
        if self._pacer is None or self._pacer.done():
            self._pacer = self.farm.spawn(self.pace_forever())

    def discard(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._slow_due.pop(connection, None)

    def count(self, printer: SimPrinter) -> int:
        return sum(1 for c in self.connections if c.printer is printer)

    async def pace_forever(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        slot = 0
        while True:
            # A fixed rate: a turn's own work doesn't stretch the pace.
            due += PACE / SLOTS
            await asyncio.sleep(max(0.0, due - loop.time()))
            turn = [c for c in self.connections if c.slot == slot]
            slot = (slot + 1) % SLOTS
            if not turn:
                continue
            now = self.farm.sim_now()
            for connection in turn:
                try:
                    await self._tick(connection, now, loop.time())
                except (ConnectionError, RuntimeError):
                    pass  # the client went away mid-send; its handler removes it
                except Exception:
                    logger.exception("%s: websocket update failed", connection.printer.name)

    async def _tick(self, c: Connection, now: float, mono: float) -> None:
        printer = c.printer
        transport = c.transport
        if transport.is_closing():
            return
        if printer.fault == "blackhole":
            if not c.held:
                c.held = True
                transport.pause_reading()  # pings and requests go unanswered: a dead host
            return
        if c.held:
            transport.abort()  # the fault cleared: a device that rebooted resets its connections
            return
        if printer.fault == "slow":
            if mono < self._slow_due.get(c, 0.0):
                return
            self._slow_due[c] = mono + printer.fault_delay
        if transport.get_write_buffer_size() > WRITE_BACKLOG:
            return  # the client doesn't read: don't queue more for it
        printer.advance(now)
        stats = self.farm.stats_counters
        klippy = _klippy(printer)
        if klippy != c.klippy:
            await self._klippy_changed(c, c.klippy, klippy)
            c.klippy = klippy
        if not c.subscribed:
            return
        delta = c.changes(now)
        if delta:
            params = [delta, round(time.monotonic(), 3)]
            await c.send({"jsonrpc": "2.0", "method": "notify_status_update", "params": params})
            stats.note_status(printer.index)
        else:
            # Nothing changed: the client's copy is as fresh as an update would have made it.
            stats.last_status[printer.index] = time.monotonic()

    async def _klippy_changed(self, c: Connection, old: str, new: str) -> None:
        gone = new in ("disconnected", "startup") or (new == "ready" and old == "shutdown")
        if gone and old not in ("disconnected", "startup"):
            # Klippy's API socket closed (lost, or restarting): its subscriptions are gone.
            c.subscribed, c.sent = {}, {}
            await c.send({"jsonrpc": "2.0", "method": "notify_klippy_disconnected"})
        if new == "shutdown":
            await c.send({"jsonrpc": "2.0", "method": "notify_klippy_shutdown"})
        elif new == "ready":
            await c.send({"jsonrpc": "2.0", "method": "notify_klippy_ready"})


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def _call(c: Connection, hub: SocketHub, now: float, method: str, params: Any) -> tuple[Any, Any]:
    """(result, error) of one JSON-RPC request."""
    printer = c.printer
    if method == "server.info":
        return server_info_result(printer, hub.count(printer)), None
    if method == "server.connection.identify":
        return {"connection_id": id(c)}, None
    if not method.startswith("printer."):
        return None, _error(-32601, f"Method not found: {method}")
    # Klippy's endpoints exist once it connected (-32601 before, as over HTTP's 404).
    if printer.fault == "not_ready":
        return None, _error(-32601, f"Method not found: {method}")
    if not klippy_connected(printer):
        return None, _error(503, "Klippy Host not connected")
    if method == "printer.info":
        return printer_info_result(printer), None
    if method == "printer.objects.list":
        return {"objects": list(OBJECT_NAMES)}, None
    if method in ("printer.objects.query", "printer.objects.subscribe"):
        objects = params.get("objects", {}) if isinstance(params, dict) else None
        if not isinstance(objects, dict):
            return None, _error(400, "Invalid argument 'objects'")
        wanted = {
            str(name): [str(f) for f in fields] if isinstance(fields, list) else None
            for name, fields in objects.items()
        }
        status = query_status(printer, now, wanted)
        if method == "printer.objects.subscribe":
            c.subscribe(wanted, status["status"])  # a new subscription replaces the old one
            c.klippy = _klippy(printer)
        return status, None
    return None, _error(-32601, f"Method not found: {method}")


async def websocket(request: web.Request) -> web.StreamResponse:
    farm = request.app[FARM]
    hub = request.app[SOCKETS]
    printer: SimPrinter = request[PRINTER]
    transport = request.transport
    if transport is None:
        raise web.HTTPBadRequest()  # the client is already gone
    ws = web.WebSocketResponse(compress=False, max_msg_size=1024 * 1024)
    await ws.prepare(request)
    hub.opened += 1
    c = Connection(ws, printer, transport, hub.opened % SLOTS)  # type: ignore[arg-type]
    hub.add(c)
    try:
        async for message in ws:
            if message.type != web.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(message.data)
            except ValueError:
                await c.send({"jsonrpc": "2.0", "error": _error(-32700, "Parse error"), "id": None})
                continue
            if not isinstance(data, dict) or not isinstance(data.get("method"), str):
                await c.send({"jsonrpc": "2.0", "error": _error(-32600, "Invalid Request"), "id": None})
                continue
            if printer.fault == "slow" and await farm.wait_closing(printer.fault_delay):
                break
            now = farm.sim_now()
            printer.advance(now)
            result, error = _call(c, hub, now, data["method"], data.get("params"))
            if "id" not in data:
                continue  # a notification from the client: no reply
            reply = {"jsonrpc": "2.0", "id": data["id"]}
            reply.update({"error": error} if error is not None else {"result": result})
            await c.send(reply)
    finally:
        hub.discard(c)
    return ws


def add_routes(app: web.Application) -> None:
    app[SOCKETS] = SocketHub(app[FARM])
    app.router.add_route("GET", "/websocket", websocket)
