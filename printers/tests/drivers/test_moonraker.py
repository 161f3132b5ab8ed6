"""MoonrakerDriver against the simulated Moonraker over loopback HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from printers.drivers import DriverAuthError, DriverError, PrinterBusy
from printers.drivers.http import make_client
from printers.drivers.moonraker import MoonrakerDriver
from printers.simulator import SimulatedFarm
from printers.state import State
from printers.tests.drivers.conftest import LONG_PRINT, FarmFactory, driver_for, gcode_file, wait_for

# Every case with both drivers: subscribed to the websocket (the default) and polling.
pytestmark = pytest.mark.usefixtures("moonraker_transport")


@pytest.fixture
async def farm(make_farm: FarmFactory) -> SimulatedFarm:
    return await make_farm("moonraker")


@pytest.fixture
def driver(farm: SimulatedFarm, client: httpx.AsyncClient) -> MoonrakerDriver:
    driver = driver_for(farm, client)
    assert isinstance(driver, MoonrakerDriver)
    return driver


async def test_idle_printer_reports_idle_with_temperatures(driver: MoonrakerDriver) -> None:
    status = await driver.fetch_status()
    assert status.state is State.IDLE
    assert status.message == ""
    assert status.hotend_actual is not None and 15 < status.hotend_actual < 40
    assert status.bed_target == 0.0
    assert status.remaining is None


async def test_printing_reports_file_progress_and_computed_eta(
    farm: SimulatedFarm, driver: MoonrakerDriver
) -> None:
    farm.start_print(0, "benchy.gcode", duration=600)  # 10 s at SPEED
    status = await wait_for(driver, State.PRINTING, check=lambda s: (s.progress or 0) >= 1)
    assert status.file == "benchy.gcode"
    assert status.progress is not None and status.progress < 50
    assert status.elapsed is not None and status.remaining is not None
    # print_duration/progress - print_duration: the rest of the 600 s job
    assert abs(status.elapsed + status.remaining - 600) < 15


async def test_finished_print_reads_finished(farm: SimulatedFarm, driver: MoonrakerDriver) -> None:
    farm.start_print(0, "short.gcode", duration=1.0)
    status = await wait_for(driver, State.FINISHED)
    assert status.progress == 100.0
    assert status.remaining == 0
    assert status.file == "short.gcode"


async def test_simulated_klipper_without_an_extruder_keeps_print_duration_at_zero(
    farm: SimulatedFarm, client: httpx.AsyncClient
) -> None:
    """As klippy/extras/print_stats.py: print_duration counts from the first extrusion only;
    total_duration and the file progress run from the start."""
    farm.set_first_extrusion(0, None)
    farm.start_print(0, "plotter.gcode", duration=600)
    url = f"{farm.printers[0].base_url}/printer/objects/query?print_stats&virtual_sdcard"
    for _ in range(200):
        objects = (await client.get(url)).json()["result"]["status"]
        if objects["virtual_sdcard"]["progress"] >= 0.05:
            break
        await asyncio.sleep(0.05)
    assert objects["print_stats"]["state"] == "printing"
    assert objects["print_stats"]["print_duration"] == 0.0
    assert objects["print_stats"]["filament_used"] == 0.0
    assert objects["print_stats"]["total_duration"] >= 29  # 5 % of 600 s, less rounding


async def test_print_without_an_extruder_reads_time_since_start_and_a_derived_time_left(
    farm: SimulatedFarm, driver: MoonrakerDriver
) -> None:
    """The reported defect: "61% · 0s left" and 0 s printed while print_duration stays 0."""
    farm.set_first_extrusion(0, None)
    farm.start_print(0, "plotter.gcode", duration=600)  # no slicer estimate: extrapolated
    # past EXTRAPOLATE_FROM (5 %), however the reported percentage is rounded
    status = await wait_for(driver, State.PRINTING, check=lambda s: (s.progress or 0) >= 6)
    assert status.elapsed is not None and status.elapsed >= 30
    assert status.remaining is not None and status.remaining > 0
    # total_duration/progress - total_duration: the rest of the 600 s print
    assert abs(status.elapsed + status.remaining - 600) < 15


async def test_print_clock_not_started_takes_the_time_left_from_the_slicer_estimate(
    farm: SimulatedFarm, driver: MoonrakerDriver, tmp_path: Path
) -> None:
    path = tmp_path / "plot.gcode"
    path.write_bytes(b"; estimated printing time (normal mode) = 2h 0m 0s\nG28\n" + b"G1 X1 Y1\n" * 5000)
    farm.set_first_extrusion(0, None)
    await driver.upload(path, remote_name="plot.gcode", start=True)
    status = await wait_for(driver, State.PRINTING, check=lambda s: s.progress is not None)
    # /server/files/metadata's estimated_time (7,200 s) for the part not yet printed, from the
    # first reading on: no need to wait for the print to get far.
    assert status.remaining is not None
    assert abs(status.remaining - 7200 * (1 - status.progress / 100)) <= 10  # progress is rounded to 0.1 %


async def test_pause_resume_cancel(farm: SimulatedFarm, driver: MoonrakerDriver) -> None:
    farm.start_print(0, "benchy.gcode", duration=LONG_PRINT)
    await driver.pause()
    await wait_for(driver, State.PAUSED)
    await driver.resume()
    await wait_for(driver, State.PRINTING)
    await driver.cancel()
    status = await wait_for(driver, State.IDLE)
    assert status.message == "Print cancelled"


async def test_pause_without_a_print_is_busy_with_klippys_words(driver: MoonrakerDriver) -> None:
    with pytest.raises(PrinterBusy, match="No print in progress"):
        await driver.pause()


async def test_emergency_stop_shuts_klipper_down(farm: SimulatedFarm, driver: MoonrakerDriver) -> None:
    farm.start_print(0, "benchy.gcode", duration=LONG_PRINT)
    await driver.emergency_stop()
    status = await wait_for(driver, State.ERROR)
    assert status.message == "Emergency stop"


async def test_set_temperature_sets_targets(driver: MoonrakerDriver) -> None:
    await driver.set_temperature(hotend=205.5, bed=60)
    status = await wait_for(driver, State.IDLE, check=lambda s: s.hotend_target == 205.5)
    assert status.bed_target == 60.0
    await driver.set_temperature(bed=0)
    status = await wait_for(driver, State.IDLE, check=lambda s: s.bed_target == 0.0)
    assert status.hotend_target == 205.5


async def test_upload_streams_with_progress_then_start(
    farm: SimulatedFarm, driver: MoonrakerDriver, tmp_path: Path
) -> None:
    path = gcode_file(tmp_path, size=3 * 1024 * 1024)
    size = path.stat().st_size
    calls: list[tuple[int, int]] = []
    await driver.upload(path, remote_name="parts/cube.gcode", progress=lambda *a: calls.append(a))
    assert calls[0] == (0, size)
    assert calls[-1] == (size, size)
    assert len(calls) >= 12  # 256 kB chunks
    assert [sent for sent, _ in calls] == sorted(sent for sent, _ in calls)
    stored = farm.printers[0].files_dir / "parts" / "cube.gcode"
    assert stored.read_bytes() == path.read_bytes()
    assert (await driver.fetch_status()).state is State.IDLE

    await driver.start("parts/cube.gcode")
    status = await wait_for(driver, State.PRINTING)
    assert status.file == "parts/cube.gcode"


async def test_upload_and_start(driver: MoonrakerDriver, tmp_path: Path) -> None:
    await driver.upload(gcode_file(tmp_path), remote_name="cube.gcode", start=True)
    status = await wait_for(driver, State.PRINTING)
    assert status.file == "cube.gcode"


async def test_upload_and_start_while_printing_is_busy(
    farm: SimulatedFarm, driver: MoonrakerDriver, tmp_path: Path
) -> None:
    farm.start_print(0, "benchy.gcode", duration=LONG_PRINT)
    with pytest.raises(PrinterBusy, match="Uploaded, but the printer did not start: it is busy"):
        await driver.upload(gcode_file(tmp_path), remote_name="cube.gcode", start=True)
    assert (await driver.fetch_status()).file == "benchy.gcode"


async def test_start_while_printing_is_busy(
    farm: SimulatedFarm, driver: MoonrakerDriver, tmp_path: Path
) -> None:
    await driver.upload(gcode_file(tmp_path), remote_name="cube.gcode")
    farm.start_print(0, "benchy.gcode", duration=LONG_PRINT)
    with pytest.raises(PrinterBusy) as caught:
        await driver.start("cube.gcode")
    assert not caught.value.permanent


async def test_overwriting_the_loaded_file_is_busy(
    farm: SimulatedFarm, driver: MoonrakerDriver, tmp_path: Path
) -> None:
    await driver.upload(gcode_file(tmp_path), remote_name="cube.gcode", start=True)
    await wait_for(driver, State.PRINTING)
    with pytest.raises(PrinterBusy, match="File is loaded"):
        await driver.upload(gcode_file(tmp_path), remote_name="cube.gcode")


async def test_probe_names_moonraker_and_klipper(driver: MoonrakerDriver) -> None:
    result = await driver.probe()
    assert result.firmware == "Moonraker v0.9.3-42-gsim · Klipper v0.12.0-500-gsim"
    assert result.status.state is State.IDLE
    assert result.status.firmware == result.firmware


# --- faults


async def test_offline_printer_is_connection_refused(farm: SimulatedFarm, driver: MoonrakerDriver) -> None:
    farm.set_fault(0, "offline")
    with pytest.raises(DriverError, match="Connection refused at http://127.0.0.1:") as caught:
        await driver.fetch_status()
    assert "is the printer on and the address right?" in caught.value.message
    assert not caught.value.permanent
    assert isinstance(caught.value.__cause__, httpx.HTTPError)


async def test_blackholed_printer_times_out(farm: SimulatedFarm) -> None:
    farm.set_fault(0, "blackhole")
    # Accepted, never answered: a generous connect timeout keeps a busy machine's slow accept
    # from reading as "could not connect".
    async with make_client(timeout=httpx.Timeout(0.5, connect=10.0)) as client:
        with pytest.raises(DriverError, match=r"^No answer from http://127\.0\.0\.1:\d+ within 0\.5 s$"):
            await driver_for(farm, client).fetch_status()


async def test_slow_printer_times_out_before_its_delay(farm: SimulatedFarm) -> None:
    farm.set_fault(0, "slow", delay=2.0)
    async with make_client(timeout=0.3) as client:
        with pytest.raises(DriverError, match="within 0.3 s"):
            await driver_for(farm, client).fetch_status()


async def test_slow_printer_within_the_timeout_answers(farm: SimulatedFarm, driver: MoonrakerDriver) -> None:
    farm.set_fault(0, "slow", delay=0.2)
    assert (await driver.fetch_status()).state is State.IDLE


async def test_http_500_is_a_retryable_error(farm: SimulatedFarm, driver: MoonrakerDriver) -> None:
    farm.set_fault(0, "http500")
    with pytest.raises(DriverError, match=r"^Printer returned HTTP 500$") as caught:
        await driver.fetch_status()
    assert not caught.value.permanent


async def test_malformed_reply_is_invalid_json(farm: SimulatedFarm, driver: MoonrakerDriver) -> None:
    farm.set_fault(0, "malformed")
    with pytest.raises(DriverError, match="Printer sent invalid JSON"):
        await driver.fetch_status()


async def test_klippy_not_ready_is_connecting(farm: SimulatedFarm, driver: MoonrakerDriver) -> None:
    farm.set_fault(0, "not_ready")
    status = await driver.fetch_status()
    assert status.state is State.CONNECTING
    assert status.message == "Klipper not ready: disconnected"
    result = await driver.probe()
    assert result.firmware == "Moonraker v0.9.3-42-gsim · Klipper (not ready)"
    assert result.status.state is State.CONNECTING
    with pytest.raises(DriverError, match="Klipper is not ready"):
        await driver.pause()


async def test_reset_mid_upload_is_retryable_and_starts_nothing(
    farm: SimulatedFarm, driver: MoonrakerDriver, tmp_path: Path
) -> None:
    farm.set_fault(0, "reset_upload")
    with pytest.raises(DriverError, match=r"^Upload (interrupted after [\d.]+ MB of 8\.0 MB|sent)") as caught:
        await driver.upload(gcode_file(tmp_path, size=8 * 1024 * 1024), remote_name="cube.gcode", start=True)
    assert not caught.value.permanent
    assert not isinstance(caught.value, PrinterBusy)
    farm.set_fault(0, None)
    status = await driver.fetch_status()
    assert status.state is State.IDLE
    assert not (farm.printers[0].files_dir / "cube.gcode").exists()


async def test_fault_cleared_printer_recovers(farm: SimulatedFarm, driver: MoonrakerDriver) -> None:
    farm.set_fault(0, "offline")
    with pytest.raises(DriverError):
        await driver.fetch_status()
    farm.set_fault(0, None)
    assert (await driver.fetch_status()).state is State.IDLE


# --- auth and address


@pytest.mark.parametrize("key", ["wrong", ""])
async def test_wrong_or_missing_api_key_is_auth_error(
    make_farm: FarmFactory, client: httpx.AsyncClient, key: str
) -> None:
    farm = await make_farm("moonraker", api_key="s3cret")
    assert (await driver_for(farm, client, api_key="s3cret").fetch_status()).state is State.IDLE
    driver = driver_for(farm, client, api_key=key)
    with pytest.raises(DriverAuthError, match=r"API key rejected \(HTTP 401\)") as caught:
        await driver.fetch_status()
    assert caught.value.permanent
    with pytest.raises(DriverAuthError):
        await driver.pause()


async def test_right_api_key_works_for_commands_and_upload(
    make_farm: FarmFactory, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    farm = await make_farm("moonraker", api_key="s3cret")
    driver = driver_for(farm, client, api_key="s3cret")
    await driver.upload(gcode_file(tmp_path), remote_name="cube.gcode", start=True)
    await wait_for(driver, State.PRINTING)
    await driver.pause()
    await wait_for(driver, State.PAUSED)


async def test_not_a_moonraker_address(make_farm: FarmFactory, client: httpx.AsyncClient) -> None:
    octoprint = await make_farm("octoprint")
    driver = MoonrakerDriver(driver_for(octoprint, client).config, client)
    with pytest.raises(DriverError, match="No Moonraker API at http://127.0.0.1:") as caught:
        await driver.fetch_status()
    assert caught.value.permanent
    with pytest.raises(DriverError, match="No Moonraker API"):
        await driver.probe()
