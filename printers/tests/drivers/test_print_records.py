"""What every driver owes the job records: a start counts only when the printer's reply says
so, and the printer's own job history (where it keeps one) names how a print ended."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from printers.drivers import DriverConfig, DriverError, get_driver
from printers.drivers.base import PrintRecord
from printers.drivers.moonraker import parse_history
from printers.state import State
from printers.tests.drivers.conftest import LONG_PRINT, FarmFactory, driver_for, gcode_file, wait_for

PROTOCOLS = ["moonraker", "octoprint"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_confirmed_start_returns(
    make_farm: FarmFactory, client: httpx.AsyncClient, tmp_path: Path, protocol: str
) -> None:
    farm = await make_farm(protocol)
    driver = driver_for(farm, client)
    await driver.upload(gcode_file(tmp_path), remote_name="cube-job1.gcode")
    await driver.start("cube-job1.gcode")
    assert (await wait_for(driver, State.PRINTING)).file == "cube-job1.gcode"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", ["garbled", "malformed"])
async def test_start_answered_with_garbage_is_not_a_confirmed_start(
    make_farm: FarmFactory, client: httpx.AsyncClient, tmp_path: Path, protocol: str, fault: str
) -> None:
    """garbled: the printer started and its reply is garbage; malformed: it did nothing. Either
    way the driver can't say it started: only the printer's next status can."""
    farm = await make_farm(protocol)
    driver = driver_for(farm, client)
    await driver.upload(gcode_file(tmp_path), remote_name="cube-job2.gcode")
    farm.set_fault(0, fault)
    with pytest.raises(DriverError, match="answer to the start was unreadable"):
        await driver.start("cube-job2.gcode")
    farm.set_fault(0, None)
    status = await driver.fetch_status()
    assert (status.state == State.PRINTING) == (fault == "garbled")


async def test_moonraker_history_names_how_each_print_ended(
    make_farm: FarmFactory, client: httpx.AsyncClient
) -> None:
    farm = await make_farm("moonraker")
    driver = driver_for(farm, client)
    assert await driver.print_history("never.gcode") is None
    farm.start_print(0, "gcodes/a-job1.gcode", duration=1.0)
    await wait_for(driver, State.FINISHED)
    record = await driver.print_history("a-job1.gcode")
    assert record is not None and record.outcome == "completed" and record.finished
    farm.start_print(0, "b-job2.gcode", duration=LONG_PRINT)
    await wait_for(driver, State.PRINTING)
    assert (await driver.print_history("b-job2.gcode")).outcome == "in_progress"
    await driver.cancel()
    assert (await driver.print_history("b-job2.gcode")).outcome == "cancelled"
    farm.start_print(0, "c-job3.gcode", duration=LONG_PRINT)
    await wait_for(driver, State.PRINTING)
    farm.set_fault(0, "disconnect")
    farm.set_fault(0, None)
    assert (await driver.print_history("c-job3.gcode")).outcome == "klippy_disconnect"


async def test_moonraker_print_without_an_extruder_reports_its_real_print_time(
    make_farm: FarmFactory, client: httpx.AsyncClient
) -> None:
    """Klipper's print_duration stays 0 on a host without an extruder: the print's time is the
    time from its start to its end, in the finished status and in the history alike."""
    farm = await make_farm("moonraker")
    driver = driver_for(farm, client)
    farm.set_first_extrusion(0, None)
    farm.start_print(0, "plot-job1.gcode", duration=60.0)
    status = await wait_for(driver, State.FINISHED)
    assert status.elapsed == 60
    record = await driver.print_history("plot-job1.gcode")
    assert record is not None and record.outcome == "completed"
    assert record.print_seconds == 60


async def test_octoprint_keeps_no_history(make_farm: FarmFactory, client: httpx.AsyncClient) -> None:
    farm = await make_farm("octoprint")
    assert await driver_for(farm, client).print_history("a.gcode") is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"result": {"count": 0, "jobs": []}}, None),
        (
            {
                "result": {
                    "jobs": [
                        {"filename": "x.gcode", "status": "completed", "start_time": 5},
                        {
                            "filename": "dir/x.gcode",
                            "status": "error",
                            "start_time": 9,
                            "print_duration": 61.5,
                        },
                        "junk",
                        {"filename": 7, "status": "completed"},
                    ]
                }
            },
            PrintRecord(file="dir/x.gcode", outcome="error", print_seconds=61),
        ),
        ({"result": {"jobs": [{"filename": "x.gcode"}]}}, PrintRecord(file="x.gcode", outcome="unknown")),
        # A host without an extruder: Klipper's print clock never started; the time from the
        # start to the end is the print's.
        (
            {
                "result": {
                    "jobs": [
                        {
                            "filename": "x.gcode",
                            "status": "completed",
                            "print_duration": 0.0,
                            "total_duration": 75.5,
                        }
                    ]
                }
            },
            PrintRecord(file="x.gcode", outcome="completed", print_seconds=75),
        ),
    ],
)
def test_history_parsing_takes_the_newest_entry_of_the_file(payload: object, expected) -> None:
    assert parse_history(payload, "x.gcode") == expected


@pytest.mark.parametrize("payload", [None, [], {"result": {"jobs": "x"}}, {"error": {}}])
def test_history_without_a_job_list_is_an_error(payload: object) -> None:
    with pytest.raises(DriverError):
        parse_history(payload, "x.gcode")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_messages_never_carry_credentials_an_old_address_holds(
    make_farm: FarmFactory, client: httpx.AsyncClient, protocol: str
) -> None:
    """Addresses with user:password are refused now, but a row saved before may hold one, and
    a status message reaches every role."""
    farm = await make_farm(protocol)
    port = farm.printers[0].port
    farm.set_fault(0, "offline")
    driver = get_driver(protocol, DriverConfig(base_url=f"http://alice:s3cret@127.0.0.1:{port}"), client)
    with pytest.raises(DriverError) as caught:
        await driver.fetch_status()
    assert "s3cret" not in caught.value.message and "alice" not in caught.value.message
    assert f"127.0.0.1:{port}" in caught.value.message
