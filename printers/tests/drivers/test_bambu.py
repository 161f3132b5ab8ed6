"""The Bambu Lab driver: report mapping (recorded payloads), addresses, and the wire against
the simulated printers (TLS pinning, access code, silent brokers, FTPS faults)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import sys
import traceback
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async

from jobs.tests.threemf_samples import two_plates
from printers.commands import COMMANDS, command_send, connection_probe
from printers.coordinator import Coordinator
from printers.drivers.bambu import BambuDriver
from printers.drivers.bambu_connection import parse_address
from printers.drivers.bambu_status import hms_text, merge, print_error_text, status_from_report
from printers.drivers.base import DriverConfig, DriverError, PrinterBusy, PrintOptions
from printers.drivers.http import make_client
from printers.models import Printer, PrinterStatusRow
from printers.services import printer_create, printer_update
from printers.simulator import SimulatedFarm
from printers.state import EXTERNAL_TRAY, State, Tray
from printers.tests.drivers.conftest import driver_for, gcode_file, wait_for
from printfarm.testing import eventually

# An X1C push_status as firmware 01.07 sends it (trimmed to the keys the driver reads).
X1_PRINTING = {
    "command": "push_status",
    "sequence_id": "2021",
    "gcode_state": "RUNNING",
    "stg_cur": 0,
    "mc_percent": 42,
    "mc_remaining_time": 73,
    "layer_num": 120,
    "total_layer_num": 300,
    "nozzle_temper": 219.8,
    "nozzle_target_temper": 220.0,
    "bed_temper": 54.9,
    "bed_target_temper": 55.0,
    "chamber_temper": 31.0,
    "subtask_name": "benchy",
    "gcode_file": "/data/Metadata/plate_1.gcode",
    "print_error": 0,
    "hms": [],
    "fun": "3EC1AFFF9CFF",
    "ams": {
        "ams": [
            {
                "id": "0",
                "humidity": "4",
                "tray": [
                    {"id": "0", "tray_type": "PLA", "tray_color": "000000FF", "remain": 80},
                    {"id": "1", "tray_type": "PETG", "tray_color": "FFFFFFFF", "remain": -1},
                    {"id": "2"},
                    {"id": "3", "tray_type": "PLA", "tray_color": "FF0000FF", "remain": 5},
                ],
            }
        ],
        "tray_now": "1",
    },
    "vt_tray": {"id": "254", "tray_type": "TPU", "tray_color": "00FF00FF", "remain": 0},
}


def status(**changes: object):
    report = copy.deepcopy(X1_PRINTING)
    report.update(changes)
    return status_from_report(report)


def test_a_printing_report_maps_every_reading() -> None:
    reading = status()
    assert reading.state is State.PRINTING
    assert reading.message == ""
    assert (reading.progress, reading.remaining) == (42.0, 73 * 60)
    assert (reading.layer, reading.layer_count) == (120, 300)
    assert (reading.hotend_actual, reading.hotend_target) == (219.8, 220.0)
    assert (reading.bed_actual, reading.bed_target, reading.chamber_actual) == (54.9, 55.0, 31.0)
    assert reading.file == "benchy"


def test_trays_come_from_the_ams_and_the_external_spool() -> None:
    assert status().trays == (
        Tray(id=0, type="PLA", colour="#000000", remaining=80, active=False),
        Tray(id=1, type="PETG", colour="#FFFFFF", remaining=None, active=True),
        Tray(id=2, type="", colour="", remaining=None, active=False),
        Tray(id=3, type="PLA", colour="#FF0000", remaining=5, active=False),
        Tray(id=EXTERNAL_TRAY, type="TPU", colour="#00FF00", remaining=0, active=False),
    )


def test_a_second_ams_unit_numbers_its_trays_from_four() -> None:
    ams = {"ams": [{"id": "1", "tray": [{"id": "2", "tray_type": "ABS", "tray_color": "0000FFFF"}]}]}
    (tray,) = status(ams=ams, vt_tray={}).trays
    assert (tray.id, tray.label) == (6, "AMS 2 slot 3")


@pytest.mark.parametrize(
    ("gcode_state", "stage", "state", "message"),
    [
        ("IDLE", 255, State.IDLE, ""),
        ("PREPARE", 0, State.PRINTING, "Preparing"),
        ("RUNNING", 2, State.PRINTING, "Heating the bed"),
        ("RUNNING", 1, State.PRINTING, "Auto bed levelling"),
        ("RUNNING", 4, State.PRINTING, "Changing filament"),
        ("PAUSE", 16, State.PAUSED, "Paused by the user"),
        ("PAUSE", 6, State.PAUSED, "Paused: filament ran out"),
        ("FINISH", 255, State.FINISHED, ""),
        ("INIT", -1, State.CONNECTING, "Printer state INIT"),
        ("", 0, State.CONNECTING, "Waiting for a full report"),
    ],
)
def test_gcode_state_and_stage_map_to_state_and_message(
    gcode_state: str, stage: int, state: State, message: str
) -> None:
    reading = status(gcode_state=gcode_state, stg_cur=stage)
    assert (reading.state, reading.message) == (state, message)


def test_a_failed_print_with_an_error_is_an_error_in_words() -> None:
    reading = status(gcode_state="FAILED", print_error=0x0300800A)
    assert reading.state is State.ERROR
    assert reading.message == "A filament pile-up was detected by the AI print monitoring"


def test_a_stopped_print_is_cancelled_not_an_error() -> None:
    # Bambu firmware reports a user's stop as FAILED with print_error 0 or "task cancelled".
    assert status(gcode_state="FAILED", print_error=0).message == "Print cancelled"
    assert status(gcode_state="FAILED", print_error=0x0300400C).state is State.IDLE


def test_an_unknown_print_error_is_shown_by_its_code() -> None:
    assert print_error_text(0x12345678) == "Printer error 1234_5678 (details on the printer's screen)"
    assert print_error_text("0") == ""


def test_hms_codes_read_as_module_severity_and_code() -> None:
    assert hms_text({"attr": 0x07000100, "code": 0x00020001}) == (
        "AMS 1 serious alert HMS 0700_0100_0002_0001 (details on the printer's screen)"
    )
    assert hms_text({"attr": "garbage"}) == ""
    reading = status(hms=[{"attr": 0x03000100, "code": 0x00010007}])
    assert reading.message == (
        "Motion controller fatal alert HMS 0300_0100_0001_0007 (details on the printer's screen)"
    )


def test_a_paused_print_shows_its_stage_and_its_alerts() -> None:
    reading = status(gcode_state="PAUSE", stg_cur=16, hms=[{"attr": 0x0C000100, "code": 0x00030001}])
    assert reading.message == (
        "Paused by the user. Camera warning alert HMS 0C00_0100_0003_0001 (details on the printer's screen)"
    )


def test_p1_deltas_merge_into_the_last_full_report() -> None:
    report: dict = {}
    merge(report, copy.deepcopy(X1_PRINTING))
    merge(report, {"command": "push_status", "mc_percent": 43, "ams": {"tray_now": "0"}})
    reading = status_from_report(report)
    assert reading.progress == 43.0
    assert reading.layer == 120  # untouched keys keep their last value
    assert [t.id for t in reading.trays if t.active] == [0]
    assert len(reading.trays) == 5  # the AMS units survive a delta naming only tray_now


def test_numbers_sent_as_strings_are_read_and_garbage_is_ignored() -> None:
    reading = status(mc_percent="55", mc_remaining_time="bogus", layer_num=[1], nozzle_temper="NaN")
    assert reading.progress == 55.0
    assert reading.remaining is None
    assert reading.layer is None
    assert reading.hotend_actual is None


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("mqtts://10.0.0.7", ("10.0.0.7", 8883, 990)),
        ("10.0.0.7", ("10.0.0.7", 8883, 990)),
        ("mqtts://127.0.0.1:18883?ftps=10990", ("127.0.0.1", 18883, 10990)),
        ("mqtts://printer.lan:8883", ("printer.lan", 8883, 990)),
    ],
)
def test_addresses(address: str, parsed: tuple[str, int, int]) -> None:
    assert parse_address(address) == parsed


@pytest.mark.parametrize("address", ["http://10.0.0.7", "mqtts://", "mqtts://h?ftps=x", "mqtts://h:99999"])
def test_bad_addresses_are_permanent_errors(address: str) -> None:
    with pytest.raises(DriverError) as caught:
        parse_address(address)
    assert caught.value.permanent


# -- the poller and the web against simulated Bambu printers ----------------------------------


@pytest.fixture
async def bambu_farm() -> AsyncIterator[SimulatedFarm]:
    farm = SimulatedFarm(2, protocol="bambu", speed=60.0)
    await farm.start()
    yield farm
    await farm.stop()


async def add_bambu(farm: SimulatedFarm, index: int, **fields: object) -> Printer:
    device = farm.bambu(index)
    values = {
        "name": f"bambu-{index}",
        "protocol": "bambu",
        "base_url": farm.printers[index].base_url,
        "api_key": device.access_code,
        "serial": device.serial,
    }
    return await sync_to_async(printer_create)(fields=values | fields)


async def shows(printer: Printer, state: State, message: str = "") -> bool:
    row = await PrinterStatusRow.objects.aget(pk=printer.pk)
    return row.state == state and message in row.message


async def pin_of(printer: Printer) -> str:
    return (await Printer.objects.aget(pk=printer.pk)).certificate_pin


def poller() -> Coordinator:
    return Coordinator(interval=1.0, timeout=2.0, backoff_max=4.0, flush_interval=0.05, reload_interval=0.2)


@pytest.mark.django_db(transaction=True)
async def test_poller_pins_each_certificate_on_first_use_and_refuses_a_changed_one(bambu_farm) -> None:
    first, second = await add_bambu(bambu_farm, 0), await add_bambu(bambu_farm, 1)
    async with poller():
        await eventually(lambda: shows(first, State.IDLE))
        await eventually(lambda: shows(second, State.IDLE))
        assert await pin_of(first) == bambu_farm.bambu(0).certificate.sha256
        row = await PrinterStatusRow.objects.aget(pk=first.pk)
        assert [tray["id"] for tray in row.trays] == [0, 1, 2, 3]

        bambu_farm.set_fault(0, "cert_changed")
        await eventually(lambda: shows(first, State.ERROR, "The printer's certificate changed ("))
        assert (await PrinterStatusRow.objects.aget(pk=first.pk)).message.endswith(
            "if you replaced the printer, clear its pinned certificate on its page"
        )
        assert await shows(second, State.IDLE)  # one printer's trouble is its own

        # The operator says the printer was replaced: the next connection pins the new one.
        await sync_to_async(printer_update)(printer=first, fields={"certificate_pin": ""})
        await eventually(lambda: shows(first, State.IDLE))
        assert await pin_of(first) == bambu_farm.bambu(0).certificate.sha256


@pytest.mark.django_db(transaction=True)
async def test_wrong_access_code_and_silent_broker_are_clear_statuses(bambu_farm) -> None:
    wrong = await add_bambu(bambu_farm, 0, api_key="00000000")
    silent = await add_bambu(bambu_farm, 1)
    bambu_farm.set_fault(1, "no_connack")
    async with poller():
        await eventually(lambda: shows(wrong, State.ERROR, "The printer refused the LAN access code"))
        await eventually(lambda: shows(silent, State.OFFLINE, "No MQTT answer from 127.0.0.1"))
        assert await pin_of(wrong) == ""  # nothing learnt from a connection that was refused
        bambu_farm.set_fault(1, None)
        await eventually(lambda: shows(silent, State.IDLE))


@pytest.mark.django_db(transaction=True)
async def test_developer_mode_off_refuses_commands_in_words_and_status_still_shows(bambu_farm) -> None:
    printer = await add_bambu(bambu_farm, 0)
    bambu_farm.start_print(0, "part.gcode", duration=36_000)
    bambu_farm.set_fault(0, "dev_mode_off")
    outcome = await command_send(printer=printer, command=COMMANDS["pause"], by=None, check_state=False)
    assert not outcome.ok
    assert outcome.message.startswith(
        "Control is refused: enable LAN Only Mode and Developer Mode on the printer (Settings → Network)"
    )
    async with poller():
        await eventually(lambda: shows(printer, State.PRINTING))


@pytest.mark.django_db(transaction=True)
async def test_commands_from_the_poller_go_over_its_open_connection(bambu_farm) -> None:
    printer = await add_bambu(bambu_farm, 0)
    async with poller() as coordinator:
        await eventually(lambda: shows(printer, State.IDLE))
        driver = coordinator.driver_for(printer.pk)
        assert isinstance(driver, BambuDriver) and driver._live is not None
        await driver.set_temperature(hotend=200, bed=None)
        await eventually(lambda: PrinterStatusRow.objects.filter(pk=printer.pk, hotend_target=200).aexists())
        assert len(bambu_farm.bambu(0).broker.subscribers) == 1  # no second connection


# -- 3MF prints --------------------------------------------------------------------------------


def _device_job(farm: SimulatedFarm):
    return farm.bambu(0).job


async def test_a_3mf_plate_starts_with_its_trays_and_a_fresh_task_id_each_time(bambu_farm, tmp_path) -> None:
    async with make_client(timeout=2.0) as client:
        driver = driver_for(bambu_farm, client)
        path = two_plates(tmp_path / "set.gcode.3mf")
        options = PrintOptions(plate=2, trays=(1, 2))
        await driver.upload(path, remote_name="set-job7.gcode.3mf", start=True, options=options)
        status = await wait_for(driver, State.PRINTING)
        assert status.file == "set-job7.gcode.3mf"  # a job finds its print by this
        job = _device_job(bambu_farm)
        assert job.gcode_file == "/data/Metadata/plate_2.gcode"
        assert job.ams_mapping == [1, 2]
        first_task = job.task_id
        await driver.cancel()
        await wait_for(driver, State.IDLE)
        await driver.start("set-job7.gcode.3mf", PrintOptions(plate=1))
        await wait_for(driver, State.PRINTING)
        assert _device_job(bambu_farm).task_id != first_task  # a reprint is no continuation


async def test_a_3mf_plate_that_does_not_exist_is_refused_for_good(bambu_farm, tmp_path) -> None:
    async with make_client(timeout=2.0) as client:
        driver = driver_for(bambu_farm, client)
        await driver.upload(two_plates(tmp_path / "set.gcode.3mf"), remote_name="set.gcode.3mf")
        with pytest.raises(DriverError, match="refused the start of set.gcode.3mf") as caught:
            await driver.start("set.gcode.3mf", PrintOptions(plate=9))
        assert caught.value.permanent
        status = await driver.fetch_status()
        assert status.state is State.ERROR and status.message  # the printer failed the job, in words


async def test_temperatures_while_printing_are_refused_as_the_firmware_does(bambu_farm) -> None:
    bambu_farm.start_print(0, "part.gcode", duration=36_000)
    async with make_client(timeout=2.0) as client:
        driver = driver_for(bambu_farm, client)
        with pytest.raises(PrinterBusy, match="it takes no G-code while printing") as caught:
            await driver.set_temperature(hotend=215)
        assert not caught.value.permanent


async def test_the_light_switches(bambu_farm) -> None:
    async with make_client(timeout=2.0) as client:
        driver = driver_for(bambu_farm, client)
        assert isinstance(driver, BambuDriver)
        await driver.set_light(on=False)
        assert not bambu_farm.bambu(0).light_on
        await driver.set_light(on=True)
        assert bambu_farm.bambu(0).light_on


async def test_test_connection_names_the_firmware_and_checks_a_pin_it_is_given(bambu_farm) -> None:
    device = bambu_farm.bambu(0)
    config = DriverConfig(
        base_url=bambu_farm.printers[0].base_url, api_key=device.access_code, serial=device.serial
    )
    outcome = await connection_probe(protocol="bambu", config=config)
    assert outcome.ok and outcome.message.startswith("Connected: Bambu Lab firmware 01.08.02.00")
    pinned = dataclasses.replace(config, certificate_pin="0" * 64)
    refused = await connection_probe(protocol="bambu", config=pinned)
    assert not refused.ok and refused.message.startswith("The printer's certificate changed")
    wrong = await connection_probe(
        protocol="bambu", config=dataclasses.replace(config, serial="01S00C999999999")
    )
    assert not wrong.ok and "check the serial number" in wrong.message


@pytest.mark.django_db(transaction=True)
async def test_the_dispatcher_driver_refuses_a_start_while_the_printer_prints(bambu_farm) -> None:
    printer = await add_bambu(bambu_farm, 0)
    bambu_farm.start_print(0, "part.gcode", duration=36_000)
    async with poller() as coordinator:
        await eventually(lambda: shows(printer, State.PRINTING))
        with pytest.raises(PrinterBusy, match="busy"):
            await coordinator.driver_for(printer.pk).start("other.gcode")
    assert bambu_farm.bambu(0).job.gcode_file == "/sdcard/part.gcode"  # the running print was left alone


def _uploading() -> bool:
    """Is a thread inside the FTPS upload now?"""
    for frame in sys._current_frames().values():
        for seen, _ in traceback.walk_stack(frame):
            if seen.f_code.co_filename.endswith("bambu_ftps.py"):
                return True
    return False


async def test_a_cancelled_upload_ends_its_thread_at_once_and_leaves_no_file(bambu_farm, tmp_path) -> None:
    # jobs.transfer cancels an upload that stalls; the blocking FTPS thread must not run on.
    bambu_farm.set_fault(0, "stall_upload")
    async with make_client(timeout=2.0) as client:
        driver = driver_for(bambu_farm, client)
        sent: list[int] = []
        path = gcode_file(tmp_path, size=8 * 1024 * 1024)
        upload = asyncio.create_task(
            driver.upload(path, remote_name="big.gcode", progress=lambda done, _: sent.append(done))
        )
        await eventually(lambda: sent and sent[-1] >= 512 * 1024)
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
        await eventually(lambda: not _uploading(), timeout=5.0)
    bambu_farm.set_fault(0, None)
    assert not bambu_farm.printers[0].file_path("big.gcode").exists()


@pytest.mark.django_db(transaction=True)
async def test_a_printer_that_falls_silent_on_an_open_connection_is_not_shown_live(
    bambu_farm, monkeypatch
) -> None:
    # Found by the benchmark: a black-holed printer kept its last status for 60-120 s, until
    # MQTT's keepalive gave up, because its silence was taken for "nothing changed". Now a
    # quiet printer is asked something it answers, and no answer is a visible status.
    monkeypatch.setattr(BambuDriver, "silence", 0.5)
    quiet, fine = await add_bambu(bambu_farm, 0), await add_bambu(bambu_farm, 1)
    async with poller():
        await eventually(lambda: shows(quiet, State.IDLE))
        bambu_farm.set_fault(0, "blackhole")
        await eventually(lambda: _not_live(quiet))
        row = await PrinterStatusRow.objects.aget(pk=quiet.pk)
        # Which comes first, the unanswered question or its unacknowledged publish, is timing.
        assert row.message.startswith(("No report from the printer", "Lost the connection")), row.message
        assert await shows(fine, State.IDLE)  # one printer's silence is its own


async def _not_live(printer: Printer) -> bool:
    row = await PrinterStatusRow.objects.aget(pk=printer.pk)
    return row.state in (State.OFFLINE, State.ERROR)
