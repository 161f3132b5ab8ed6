"""Moonraker's websocket: the simulator's JSON-RPC subscription, and MoonrakerSocketDriver
reading it (the push shape), over real loopback sockets; last, the coordinator end to end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from moonraker_api import MoonrakerClient, MoonrakerListener
from websockets.asyncio.client import ClientConnection, connect

from printers.coordinator import Coordinator
from printers.drivers import DriverAuthError, DriverConfig, DriverError, get_driver
from printers.drivers.moonraker import MoonrakerDriver
from printers.drivers.moonraker_ws import SUBSCRIPTION, MoonrakerSocketDriver
from printers.models import Printer, PrinterStatusRow
from printers.services import printer_create
from printers.simulator import SimulatedFarm
from printers.state import PrinterStatus, State
from printers.tests.drivers.conftest import LONG_PRINT, FarmFactory
from printfarm.testing import eventually


@pytest.fixture
async def farm(make_farm: FarmFactory) -> SimulatedFarm:
    return await make_farm("moonraker")


def socket_driver(farm: SimulatedFarm, client: httpx.AsyncClient, api_key: str = "") -> MoonrakerSocketDriver:
    config = DriverConfig(base_url=farm.printers[0].base_url, api_key=api_key)
    driver = get_driver("moonraker", config, client, transport="websocket")
    assert isinstance(driver, MoonrakerSocketDriver)
    return driver


@pytest.fixture
def driver(farm: SimulatedFarm, client: httpx.AsyncClient) -> MoonrakerSocketDriver:
    return socket_driver(farm, client)


class Watch:
    """A driver's watch() read by a task into a list, for tests that wait on what it pushed."""

    def __init__(self, driver: MoonrakerSocketDriver) -> None:
        self.statuses: list[PrinterStatus] = []
        self.error: BaseException | None = None
        self.task = asyncio.ensure_future(self._run(driver))

    async def _run(self, driver: MoonrakerSocketDriver) -> None:
        try:
            async for status in driver.watch():
                self.statuses.append(status)
        except Exception as exc:
            self.error = exc

    def seen(self, state: State, message: str | None = None) -> bool:
        return any(s.state is state and (message is None or message in s.message) for s in self.statuses)

    @property
    def last(self) -> PrinterStatus:
        return self.statuses[-1]


@pytest.fixture
async def watch(driver: MoonrakerSocketDriver) -> AsyncIterator[Watch]:
    watching = Watch(driver)
    yield watching
    watching.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching.task


# -- the simulator's websocket, as any JSON-RPC client sees it --------------------------------


class Rpc:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.notifications: list[dict[str, Any]] = []

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        request = {"jsonrpc": "2.0", "method": method, "params": params or {}, "id": self.next_id}
        await self.ws.send(orjson.dumps(request).decode())  # a text frame, as Moonraker wants
        while True:
            message = orjson.loads(await self.ws.recv())
            if message.get("id") == self.next_id:
                return message
            self.notifications.append(message)

    async def notification(self, method: str) -> dict[str, Any]:
        for i, message in enumerate(self.notifications):
            if message.get("method") == method:
                return self.notifications.pop(i)
        while True:
            message = orjson.loads(await self.ws.recv())
            if message.get("method") == method:
                return message
            self.notifications.append(message)


@contextlib.asynccontextmanager
async def rpc(farm: SimulatedFarm, index: int = 0) -> AsyncIterator[Rpc]:
    async with connect(f"ws://127.0.0.1:{farm.printers[index].port}/websocket", ping_interval=None) as ws:
        yield Rpc(ws)


async def test_subscribe_answers_the_full_status_then_only_changed_fields(farm: SimulatedFarm) -> None:
    async with rpc(farm) as client:
        reply = await client.call("printer.objects.subscribe", {"objects": SUBSCRIPTION})
        status = reply["result"]["status"]
        assert set(status) == set(SUBSCRIPTION)
        assert status["print_stats"]["state"] == "standby"
        assert set(status["extruder"]) == {"temperature", "target"}

        farm.start_print(0, "cube.gcode", duration=LONG_PRINT)
        update = await client.notification("notify_status_update")
        delta, eventtime = update["params"]
        assert isinstance(eventtime, float)
        assert delta["print_stats"]["state"] == "printing"
        assert delta["print_stats"]["filename"] == "cube.gcode"
        # Only what changed: the webhooks state (still "ready") is not repeated.
        assert "webhooks" not in delta
        later = await client.notification("notify_status_update")
        assert "state" not in later["params"][0].get("print_stats", {})


async def test_json_rpc_info_and_errors(farm: SimulatedFarm) -> None:
    async with rpc(farm) as client:
        info = (await client.call("server.info"))["result"]
        assert info["klippy_state"] == "ready" and info["websocket_count"] == 1
        assert (await client.call("printer.info"))["result"]["software_version"]
        assert (await client.call("no.such.method"))["error"]["code"] == -32601
        farm.set_fault(0, "disconnect")
        assert (await client.call("printer.objects.subscribe", {"objects": SUBSCRIPTION}))["error"][
            "code"
        ] == 503


async def test_klippy_notifications_and_the_subscription_renewed(
    farm: SimulatedFarm, client: httpx.AsyncClient
) -> None:
    over_http = MoonrakerDriver(DriverConfig(base_url=farm.printers[0].base_url), client)
    async with rpc(farm) as socket:
        await socket.call("printer.objects.subscribe", {"objects": {"webhooks": None}})
        farm.set_fault(0, "disconnect")
        await socket.notification("notify_klippy_disconnected")
        farm.set_fault(0, None)
        await socket.notification("notify_klippy_ready")
        # The subscription went with Klippy: a client subscribes again.
        reply = await socket.call("printer.objects.subscribe", {"objects": {"webhooks": None}})
        assert reply["result"]["status"]["webhooks"]["state"] == "ready"
        await over_http.emergency_stop()
        await socket.notification("notify_klippy_shutdown")
        update = await socket.notification("notify_status_update")
        assert update["params"][0]["webhooks"]["state"] == "shutdown"


class Listener(MoonrakerListener):
    def __init__(self) -> None:
        self.notifications: list[tuple[str, Any]] = []

    async def on_notification(self, method: str, data: Any) -> None:
        self.notifications.append((method, data))

    def printing(self) -> bool:
        return any(
            method == "notify_status_update" and data[0].get("print_stats", {}).get("state") == "printing"
            for method, data in self.notifications
        )


# moonraker-api 4.0 passes aiohttp a float receive_timeout, deprecated since aiohttp 3.11.
@pytest.mark.filterwarnings("ignore:float parameter 'receive_timeout' is deprecated:DeprecationWarning")
async def test_a_third_party_client_subscribes(farm: SimulatedFarm) -> None:
    """moonraker-api (Home Assistant's Moonraker client, aiohttp) against the simulator."""
    listener = Listener()
    client = MoonrakerClient(listener, "127.0.0.1", farm.printers[0].port, loop=asyncio.get_running_loop())
    assert await client.connect()
    try:
        assert await client.get_klipper_status() == "ready"
        assert "print_stats" in (await client.get_supported_modules() or [])
        reply = await client.call_method("printer.objects.subscribe", objects={"print_stats": None})
        assert reply["status"]["print_stats"]["state"] == "standby"
        farm.start_print(0, "cube.gcode", duration=LONG_PRINT)
        await eventually(listener.printing)
    finally:
        await client.disconnect()
        await client.session.close()


# -- the driver ------------------------------------------------------------------------------


async def test_fetch_status_is_one_subscription(driver: MoonrakerSocketDriver) -> None:
    status = await driver.fetch_status()
    assert status.state is State.IDLE
    assert status.hotend_actual is not None and 15 < status.hotend_actual < 40
    assert status.firmware.startswith("Moonraker v") and "Klipper v" in status.firmware


async def test_print_start_pause_and_cancel_arrive_as_pushes(
    farm: SimulatedFarm, driver: MoonrakerSocketDriver, watch: Watch
) -> None:
    await eventually(lambda: watch.statuses)
    assert watch.last.state is State.IDLE
    farm.start_print(0, "benchy.gcode", duration=LONG_PRINT)
    await eventually(lambda: watch.last.state is State.PRINTING and watch.last.file == "benchy.gcode")
    elapsed = watch.last.elapsed or 0
    await eventually(lambda: (watch.last.elapsed or 0) > elapsed)  # the clock moves by deltas
    await driver.pause()  # commands go over HTTP, their effect comes back on the socket
    await eventually(lambda: watch.last.state is State.PAUSED)
    await driver.resume()
    await eventually(lambda: watch.last.state is State.PRINTING)
    await driver.cancel()
    await eventually(lambda: watch.last.state is State.IDLE and watch.last.message == "Print cancelled")
    assert watch.error is None


async def test_klippy_disconnect_reads_not_ready_then_recovers(farm: SimulatedFarm, watch: Watch) -> None:
    await eventually(lambda: watch.statuses)
    farm.set_fault(0, "disconnect")
    await eventually(lambda: watch.last.state is State.CONNECTING)
    assert watch.last.message == "Klipper not ready: disconnected"  # polling's words
    farm.set_fault(0, None)
    await eventually(lambda: watch.last.state is State.IDLE)
    # Subscribed again: a print started now is pushed.
    farm.start_print(0, "after.gcode", duration=LONG_PRINT)
    await eventually(lambda: watch.last.state is State.PRINTING)
    assert watch.error is None


async def test_klippy_never_connected_reads_not_ready(
    farm: SimulatedFarm, driver: MoonrakerSocketDriver
) -> None:
    farm.set_fault(0, "not_ready")
    status = await driver.fetch_status()
    assert (status.state, status.message) == (State.CONNECTING, "Klipper not ready: disconnected")


async def test_emergency_stop_and_firmware_restart(
    farm: SimulatedFarm, driver: MoonrakerSocketDriver, watch: Watch
) -> None:
    await eventually(lambda: watch.statuses)
    await driver.emergency_stop()
    await eventually(lambda: watch.last.state is State.ERROR)
    assert "Emergency stop" in watch.last.message
    await driver._command("/printer/firmware_restart")  # noqa: SLF001 (no Driver method for it)
    await eventually(lambda: watch.seen(State.CONNECTING))
    await eventually(lambda: watch.last.state is State.IDLE)
    assert watch.error is None


async def test_blackholed_socket_raises_within_a_bound(
    farm: SimulatedFarm, driver: MoonrakerSocketDriver, watch: Watch
) -> None:
    driver.silence = 0.5  # a short quiet spell before the ping; the reply timeout is the client's
    await eventually(lambda: watch.statuses)
    farm.set_fault(0, "blackhole")
    await eventually(lambda: watch.task.done())
    assert isinstance(watch.error, DriverError)
    assert "stopped responding" in watch.error.message


async def test_blackholed_printer_refuses_a_new_socket_in_time(
    farm: SimulatedFarm, driver: MoonrakerSocketDriver
) -> None:
    farm.set_fault(0, "blackhole")
    with pytest.raises(DriverError, match="No answer from"):
        await driver.fetch_status()


async def test_offline_printer_is_refused(farm: SimulatedFarm, driver: MoonrakerSocketDriver) -> None:
    farm.set_fault(0, "offline")
    with pytest.raises(DriverError, match="Connection refused"):
        await driver.fetch_status()


async def test_offline_drops_a_live_socket(farm: SimulatedFarm, watch: Watch) -> None:
    await eventually(lambda: watch.statuses)
    farm.set_fault(0, "offline")
    await eventually(lambda: watch.task.done())
    assert isinstance(watch.error, DriverError)


@pytest.mark.parametrize("fault", ["malformed", "garbled"])
async def test_broken_frames_are_an_error_not_a_crash(
    farm: SimulatedFarm, driver: MoonrakerSocketDriver, fault: str
) -> None:
    farm.set_fault(0, fault)
    with pytest.raises(DriverError) as raised:
        await driver.fetch_status()
    assert "Printer sent invalid JSON" in raised.value.message
    farm.set_fault(0, None)
    assert (await driver.fetch_status()).state is State.IDLE


async def test_broken_frames_on_a_live_socket(
    farm: SimulatedFarm, driver: MoonrakerSocketDriver, watch: Watch
) -> None:
    driver.silence = 0.5
    await eventually(lambda: watch.statuses)
    farm.start_print(0, "cube.gcode", duration=LONG_PRINT)  # updates every 250 ms, all broken
    await eventually(lambda: watch.last.state is State.PRINTING)
    farm.set_fault(0, "malformed")
    await eventually(lambda: watch.task.done())
    assert isinstance(watch.error, DriverError) and "invalid JSON" in watch.error.message


async def test_a_change_lost_in_a_broken_frame_is_read_again(
    farm: SimulatedFarm, driver: MoonrakerSocketDriver, watch: Watch
) -> None:
    """Seen in the chaos test: a print ended during a second of broken frames, and its end,
    sent once as a delta, was never read; the printer read "printing" until the poller stopped."""
    await eventually(lambda: watch.statuses)
    farm.start_print(0, "cube.gcode", duration=LONG_PRINT)
    await eventually(lambda: watch.last.state is State.PRINTING)
    farm.set_fault(0, "malformed")
    sim = farm.printers[0]
    sim.advance(farm.sim_now())
    sim.cancel(farm.sim_now())  # on the printer's screen: the HTTP API is broken too
    broken = driver.malformed
    # The update after the cancel (print_stats.state) went out broken, and later ones too.
    await eventually(lambda: driver.malformed >= broken + 2)
    farm.set_fault(0, None)
    await eventually(lambda: watch.last.state is State.IDLE and watch.last.message == "Print cancelled")
    assert watch.error is None


async def test_server_error_on_the_upgrade(farm: SimulatedFarm, driver: MoonrakerSocketDriver) -> None:
    farm.set_fault(0, "http500")
    with pytest.raises(DriverError, match="HTTP 500"):
        await driver.fetch_status()


async def test_wrong_api_key_is_an_auth_error(make_farm: FarmFactory, client: httpx.AsyncClient) -> None:
    farm = await make_farm("moonraker", api_key="right")
    with pytest.raises(DriverAuthError, match="API key rejected"):
        await socket_driver(farm, client, api_key="wrong").fetch_status()
    assert (await socket_driver(farm, client, api_key="right").fetch_status()).state is State.IDLE


async def test_transport_setting_picks_the_driver(
    farm: SimulatedFarm, client: httpx.AsyncClient, settings: Any
) -> None:
    config = DriverConfig(base_url=farm.printers[0].base_url)
    settings.PRINTFARM_MOONRAKER_TRANSPORT = "websocket"
    assert isinstance(get_driver("moonraker", config, client), MoonrakerSocketDriver)
    settings.PRINTFARM_MOONRAKER_TRANSPORT = "poll"
    driver = get_driver("moonraker", config, client)
    assert type(driver) is MoonrakerDriver


# -- through the coordinator ------------------------------------------------------------------


@pytest.fixture
async def close_thread_connections() -> AsyncIterator[None]:
    """The coordinator queries from sync_to_async's worker thread; close its connection so
    PostgreSQL can drop the test database afterwards."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_coordinator_keeps_a_subscription_per_printer(farm: SimulatedFarm, settings: Any) -> None:
    settings.PRINTFARM_MOONRAKER_TRANSPORT = "websocket"
    printer = await sync_to_async(printer_create)(
        fields={"name": "ws", "protocol": Printer.Protocol.MOONRAKER, "base_url": farm.printers[0].base_url}
    )

    async def shows(state: State, file: str | None = None) -> bool:
        row = await PrinterStatusRow.objects.filter(printer=printer).afirst()
        return row is not None and row.state == state and (file is None or row.file == file)

    async with Coordinator(interval=60.0, timeout=2.0, flush_interval=0.05) as coordinator:
        await eventually(lambda: shows(State.IDLE, ""))
        assert isinstance(coordinator.driver_for(printer.pk), MoonrakerSocketDriver)
        # An interval of 60 s: only a push brings this within the test's patience.
        farm.start_print(0, "pushed.gcode", duration=LONG_PRINT)
        await eventually(lambda: shows(State.PRINTING, "pushed.gcode"))
        farm.set_fault(0, "offline")
        await eventually(lambda: shows(State.OFFLINE))
        farm.set_fault(0, None)  # reconnects after the back-off; the print went on meanwhile
        await eventually(lambda: shows(State.PRINTING, "pushed.gcode"), timeout=40)
