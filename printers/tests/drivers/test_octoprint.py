"""OctoPrintDriver against the simulated OctoPrint over loopback HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from printers.drivers import DriverAuthError, DriverError, PrinterBusy
from printers.drivers.http import make_client
from printers.drivers.octoprint import OctoPrintDriver
from printers.simulator import SimulatedFarm
from printers.state import State
from printers.tests.drivers.conftest import LONG_PRINT, FarmFactory, driver_for, gcode_file, wait_for


@pytest.fixture
async def farm(make_farm: FarmFactory) -> SimulatedFarm:
    return await make_farm("octoprint")


@pytest.fixture
def driver(farm: SimulatedFarm, client: httpx.AsyncClient) -> OctoPrintDriver:
    driver = driver_for(farm, client)
    assert isinstance(driver, OctoPrintDriver)
    return driver


async def test_idle_printer_reports_idle_with_temperatures(driver: OctoPrintDriver) -> None:
    status = await driver.fetch_status()
    assert status.state is State.IDLE
    assert status.message == ""
    assert status.hotend_actual is not None and 15 < status.hotend_actual < 40
    assert status.bed_target == 0.0
    assert status.file == ""


async def test_printing_reports_file_progress_and_time_left(
    farm: SimulatedFarm, driver: OctoPrintDriver
) -> None:
    farm.start_print(0, "benchy.gcode", duration=600)  # 10 s at SPEED
    status = await wait_for(driver, State.PRINTING, check=lambda s: (s.progress or 0) >= 1)
    assert status.file == "benchy.gcode"
    assert status.progress is not None and status.progress < 50
    assert status.elapsed is not None and status.remaining is not None
    assert abs(status.elapsed + status.remaining - 600) < 15


async def test_operational_after_a_completed_print_reads_finished(
    farm: SimulatedFarm, driver: OctoPrintDriver
) -> None:
    farm.start_print(0, "short.gcode", duration=1.0)
    status = await wait_for(driver, State.FINISHED)
    assert status.progress == 100.0
    assert status.file == "short.gcode"


async def test_pause_resume_cancel(farm: SimulatedFarm, driver: OctoPrintDriver) -> None:
    farm.start_print(0, "benchy.gcode", duration=LONG_PRINT)
    await driver.pause()
    await wait_for(driver, State.PAUSED)
    # An explicit action, never a toggle: pausing again leaves it paused.
    await driver.pause()
    await wait_for(driver, State.PAUSED)
    await driver.resume()
    await driver.resume()
    await wait_for(driver, State.PRINTING)
    await driver.cancel()
    status = await wait_for(driver, State.IDLE)
    assert status.file == "benchy.gcode"  # OctoPrint keeps the job selected


async def test_cancel_without_a_print_is_busy_nothing_printing(driver: OctoPrintDriver) -> None:
    with pytest.raises(PrinterBusy, match="^Nothing is printing$"):
        await driver.cancel()


async def test_emergency_stop_is_error_with_the_firmwares_message(
    farm: SimulatedFarm, driver: OctoPrintDriver
) -> None:
    farm.start_print(0, "benchy.gcode", duration=LONG_PRINT)
    await driver.emergency_stop()
    # OctoPrint closes the port: /api/printer answers 409, /api/job "Offline after error".
    status = await wait_for(driver, State.ERROR)
    assert status.message == "Printer halted. kill() called!"


async def test_set_temperature_sets_targets(driver: OctoPrintDriver) -> None:
    await driver.set_temperature(hotend=215, bed=65.5)
    status = await wait_for(driver, State.IDLE, check=lambda s: s.hotend_target == 215.0)
    assert status.bed_target == 65.5
    await driver.set_temperature(hotend=0)
    status = await wait_for(driver, State.IDLE, check=lambda s: s.hotend_target == 0.0)
    assert status.bed_target == 65.5


async def test_upload_streams_with_progress_then_start(
    farm: SimulatedFarm, driver: OctoPrintDriver, tmp_path: Path
) -> None:
    path = gcode_file(tmp_path, size=3 * 1024 * 1024)
    size = path.stat().st_size
    calls: list[tuple[int, int]] = []
    await driver.upload(path, remote_name="parts/cube.gcode", progress=lambda *a: calls.append(a))
    assert calls[0] == (0, size)
    assert calls[-1] == (size, size)
    assert len(calls) >= 12
    stored = farm.printers[0].files_dir / "parts" / "cube.gcode"
    assert stored.read_bytes() == path.read_bytes()
    assert (await driver.fetch_status()).state is State.IDLE

    await driver.start("parts/cube.gcode")
    status = await wait_for(driver, State.PRINTING)
    assert status.file == "parts/cube.gcode"


async def test_upload_and_start(driver: OctoPrintDriver, tmp_path: Path) -> None:
    await driver.upload(gcode_file(tmp_path, name="my part.gcode"), remote_name="my part.gcode", start=True)
    status = await wait_for(driver, State.PRINTING)
    assert status.file == "my part.gcode"


async def test_upload_and_start_while_printing_is_busy(
    farm: SimulatedFarm, driver: OctoPrintDriver, tmp_path: Path
) -> None:
    farm.start_print(0, "benchy.gcode", duration=LONG_PRINT)
    with pytest.raises(PrinterBusy, match="Uploaded, but the printer did not start: it is busy"):
        await driver.upload(gcode_file(tmp_path), remote_name="cube.gcode", start=True)
    assert (await driver.fetch_status()).file == "benchy.gcode"


async def test_start_while_printing_is_busy(
    farm: SimulatedFarm, driver: OctoPrintDriver, tmp_path: Path
) -> None:
    await driver.upload(gcode_file(tmp_path), remote_name="cube.gcode")
    farm.start_print(0, "benchy.gcode", duration=LONG_PRINT)
    with pytest.raises(PrinterBusy, match="already printing"):
        await driver.start("cube.gcode")


async def test_start_of_a_missing_file_is_permanent(driver: OctoPrintDriver) -> None:
    with pytest.raises(DriverError, match="HTTP 404: File not found") as caught:
        await driver.start("nope.gcode")
    assert caught.value.permanent


async def test_upload_of_a_non_gcode_file_is_refused(driver: OctoPrintDriver, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not G-code")
    with pytest.raises(DriverError, match="HTTP 415") as caught:
        await driver.upload(path, remote_name="notes.txt")
    assert caught.value.permanent


async def test_probe_names_octoprint(driver: OctoPrintDriver) -> None:
    result = await driver.probe()
    assert result.firmware == "OctoPrint 1.11.8"
    assert result.status.state is State.IDLE
    assert result.status.firmware == "OctoPrint 1.11.8"


# --- faults


async def test_offline_printer_is_connection_refused(farm: SimulatedFarm, driver: OctoPrintDriver) -> None:
    farm.set_fault(0, "offline")
    with pytest.raises(DriverError, match="Connection refused at http://127.0.0.1:") as caught:
        await driver.fetch_status()
    assert not caught.value.permanent
    with pytest.raises(DriverError, match="Connection refused"):
        await driver.pause()


async def test_blackholed_printer_times_out(farm: SimulatedFarm) -> None:
    farm.set_fault(0, "blackhole")
    # The connection is accepted, the answer never comes: a generous connect timeout keeps a
    # busy machine's slow accept from reading as "could not connect".
    async with make_client(timeout=httpx.Timeout(0.5, connect=10.0)) as client:
        with pytest.raises(DriverError, match=r"^No answer from http://127\.0\.0\.1:\d+ within 0\.5 s$"):
            await driver_for(farm, client).fetch_status()


async def test_slow_printer_times_out_before_its_delay(farm: SimulatedFarm) -> None:
    farm.set_fault(0, "slow", delay=2.0)
    async with make_client(timeout=0.3) as client:
        with pytest.raises(DriverError, match="within 0.3 s"):
            await driver_for(farm, client).fetch_status()


async def test_http_500_is_a_retryable_error(farm: SimulatedFarm, driver: OctoPrintDriver) -> None:
    farm.set_fault(0, "http500")
    with pytest.raises(DriverError, match=r"^Printer returned HTTP 500$") as caught:
        await driver.fetch_status()
    assert not caught.value.permanent


async def test_malformed_reply_is_invalid_json(farm: SimulatedFarm, driver: OctoPrintDriver) -> None:
    farm.set_fault(0, "malformed")
    with pytest.raises(DriverError, match="Printer sent invalid JSON"):
        await driver.fetch_status()


async def test_serial_not_connected_is_connecting(farm: SimulatedFarm, driver: OctoPrintDriver) -> None:
    farm.set_fault(0, "not_ready")
    status = await driver.fetch_status()
    assert status.state is State.CONNECTING
    assert status.message == "Printer not connected to OctoPrint (serial closed)"
    result = await driver.probe()
    assert result.firmware == "OctoPrint 1.11.8"
    assert result.status.state is State.CONNECTING
    with pytest.raises(PrinterBusy, match="^OctoPrint is not connected to the printer$"):
        await driver.set_temperature(hotend=200)


async def test_reset_mid_upload_is_retryable_and_starts_nothing(
    farm: SimulatedFarm, driver: OctoPrintDriver, tmp_path: Path
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


# --- auth and address


@pytest.mark.parametrize("key", ["wrong", ""])
async def test_wrong_or_missing_api_key_is_auth_error(
    make_farm: FarmFactory, client: httpx.AsyncClient, key: str
) -> None:
    farm = await make_farm("octoprint", api_key="s3cret")
    assert (await driver_for(farm, client, api_key="s3cret").fetch_status()).state is State.IDLE
    driver = driver_for(farm, client, api_key=key)
    with pytest.raises(DriverAuthError, match=r"API key rejected \(HTTP 403\)") as caught:
        await driver.fetch_status()
    assert caught.value.permanent
    with pytest.raises(DriverAuthError):
        await driver.cancel()
    with pytest.raises(DriverAuthError):
        await driver.probe()


async def test_right_api_key_works_for_commands_and_upload(
    make_farm: FarmFactory, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    farm = await make_farm("octoprint", api_key="s3cret")
    driver = driver_for(farm, client, api_key="s3cret")
    await driver.upload(gcode_file(tmp_path), remote_name="cube.gcode", start=True)
    await wait_for(driver, State.PRINTING)
    await driver.pause()
    await wait_for(driver, State.PAUSED)


async def test_not_an_octoprint_address(make_farm: FarmFactory, client: httpx.AsyncClient) -> None:
    moonraker = await make_farm("moonraker")
    driver = OctoPrintDriver(driver_for(moonraker, client).config, client)
    with pytest.raises(DriverError, match="No OctoPrint API at http://127.0.0.1:") as caught:
        await driver.fetch_status()
    assert caught.value.permanent
    with pytest.raises(DriverError, match="No OctoPrint API"):
        await driver.probe()


async def test_mixed_farm_through_the_registry(make_farm: FarmFactory, client: httpx.AsyncClient) -> None:
    farm = await make_farm("mixed", count=4)
    for index in range(4):
        status = await driver_for(farm, client, index).fetch_status()
        assert status.state is State.IDLE
