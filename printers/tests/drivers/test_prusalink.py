"""The PrusaLink driver against the simulated Buddy printer over loopback HTTP: its two logins
(digest with nonces going stale, X-Api-Key), one request at a time, the requests a poll makes,
every v1 state, the upload answers, and the connection Buddy closes after each upload."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
import pytest

from printers.coordinator import Coordinator
from printers.drivers import DriverAuthError, DriverConfig, DriverError, PrinterBusy, get_driver
from printers.drivers.prusalink import STATUS_PATH, PrusaLinkDriver
from printers.drivers.prusalink_status import ATTENTION, BUSY, READY, parse_status
from printers.polling import PrinterConfig, PrinterPoller
from printers.simulator import SimulatedFarm
from printers.simulator.prusalink_state import PrusaLinkDevice
from printers.state import State
from printers.tests.drivers.conftest import LONG_PRINT, FarmFactory, gcode_file, wait_for
from printfarm.testing import eventually

NAME = "part.gcode"
WHERE = "Settings → Network → PrusaLink"


@pytest.fixture
async def farm(make_farm: FarmFactory) -> SimulatedFarm:
    return await make_farm("prusalink")


@pytest.fixture
def device(farm: SimulatedFarm) -> PrusaLinkDevice:
    return farm.prusalink_devices[0]


def driver_with(
    farm: SimulatedFarm, client: httpx.AsyncClient, *, password: str | None = None, username: str = ""
) -> PrusaLinkDriver:
    device = farm.prusalink_devices[0]
    config = DriverConfig(
        base_url=farm.printers[0].base_url,
        api_key=device.password if password is None else password,
        username=username,
    )
    driver = get_driver("prusalink", config, client)
    assert isinstance(driver, PrusaLinkDriver)
    return driver


@pytest.fixture
def key_driver(farm: SimulatedFarm, client: httpx.AsyncClient) -> PrusaLinkDriver:
    return driver_with(farm, client)


@pytest.fixture
def digest_driver(farm: SimulatedFarm, client: httpx.AsyncClient) -> PrusaLinkDriver:
    return driver_with(farm, client, username="maker")


def bgcode_file(directory: Path, name: str = "part.bgcode") -> Path:
    """A file that starts as binary G-code does (libbgcode: magic, version 1, CRC32)."""
    path = directory / name
    path.write_bytes(b"GCDE" + (1).to_bytes(4, "little") + (1).to_bytes(2, "little") + bytes(64 * 1024))
    return path


def printing(farm: SimulatedFarm, name: str = NAME) -> None:
    farm.start_print(0, name, duration=LONG_PRINT)


# --- logins


async def test_digest_survives_nonces_going_stale_over_many_polls(
    farm: SimulatedFarm, device: PrusaLinkDevice, digest_driver: PrusaLinkDriver
) -> None:
    device.nonce_lifetime = 0.2  # Buddy's ~5 s, shrunk: every poll now meets a stale nonce
    for _ in range(8):
        assert (await digest_driver.fetch_status()).state is State.IDLE
        await eventually(lambda: not device.nonce_fresh(digest_driver.digest.nonce))
    assert digest_driver.digest is not None and digest_driver.digest.challenges >= 8
    farm.set_fault(0, "stale_nonce")  # and every nonce serves one request only
    for _ in range(5):
        assert (await digest_driver.fetch_status()).state is State.IDLE


async def test_upload_with_digest_never_fails_on_a_stale_nonce(
    farm: SimulatedFarm, device: PrusaLinkDevice, digest_driver: PrusaLinkDriver, tmp_path: Path
) -> None:
    farm.set_fault(0, "stale_nonce")
    path = gcode_file(tmp_path, size=2 * 1024 * 1024)
    for attempt in range(3):
        await digest_driver.upload(path, remote_name=f"part{attempt}.gcode")
        assert farm.printers[0].file_path(f"part{attempt}.gcode").read_bytes() == path.read_bytes()


async def test_upload_that_meets_a_stale_nonce_is_sent_again_from_the_file(
    farm: SimulatedFarm, device: PrusaLinkDevice, digest_driver: PrusaLinkDriver, tmp_path: Path
) -> None:
    # The race the fresh nonce before each upload guards against, forced: the PUT goes with a
    # nonce that went stale, the printer answers 401 stale=true, the driver sends it once more.
    farm.set_fault(0, "stale_nonce")  # a nonce serves one request
    await digest_driver.fetch_status()  # ...and this one has served its request
    digest_driver._fresh_nonce = _keep_nonce  # type: ignore[method-assign]
    sent: list[tuple[int, int]] = []
    path = gcode_file(tmp_path, size=1024 * 1024)
    await digest_driver.upload(path, remote_name=NAME, start=True, progress=lambda *s: sent.append(s))
    assert sent.count((0, path.stat().st_size)) == 2  # streamed twice, from the start
    assert (await wait_for(digest_driver, State.PRINTING)).file == NAME
    assert farm.printers[0].file_path(NAME).read_bytes() == path.read_bytes()


async def _keep_nonce() -> None:
    pass


async def test_api_key_goes_in_one_round_trip(farm: SimulatedFarm, key_driver: PrusaLinkDriver) -> None:
    before = farm.stats_counters.requests
    assert (await key_driver.fetch_status()).state is State.IDLE
    assert farm.stats_counters.requests == before + 1


@pytest.mark.parametrize(
    ("username", "words"),
    [("", "refused the API key"), ("maker", "refused user 'maker' and its password")],
)
async def test_wrong_key_or_password_says_where_the_password_is(
    farm: SimulatedFarm, client: httpx.AsyncClient, tmp_path: Path, username: str, words: str
) -> None:
    driver = driver_with(farm, client, password="wrong", username=username)
    printing(farm)
    for call in (
        driver.fetch_status,
        driver.probe,
        driver.pause,
        lambda: driver.upload(gcode_file(tmp_path), remote_name="other.gcode"),
    ):
        with pytest.raises(DriverAuthError, match=words) as caught:
            await call()
        assert WHERE in caught.value.message and caught.value.permanent
    assert not farm.printers[0].file_path("other.gcode").exists()


async def test_no_password_at_all_asks_for_one(farm: SimulatedFarm, client: httpx.AsyncClient) -> None:
    with pytest.raises(DriverAuthError, match="asks for a password"):
        await driver_with(farm, client, password="").fetch_status()


# --- one request at a time, and only the requests needed


async def test_never_more_than_one_connection_or_request_per_printer(
    farm: SimulatedFarm, device: PrusaLinkDevice, digest_driver: PrusaLinkDriver, tmp_path: Path
) -> None:
    farm.set_fault(0, "slow_usb")  # the upload takes a while: polls and commands come meanwhile
    device.reset_peaks()
    path = gcode_file(tmp_path, size=256 * 1024)
    upload = asyncio.create_task(digest_driver.upload(path, remote_name=NAME))
    during = [await digest_driver.fetch_status() for _ in range(5)]
    await upload
    farm.set_fault(0, None)
    await asyncio.gather(*(digest_driver.fetch_status() for _ in range(8)), digest_driver.start(NAME))
    await asyncio.gather(digest_driver.pause(), digest_driver.fetch_status(), digest_driver.probe())
    assert all(status.state is State.IDLE for status in during)  # the last reading, kept
    assert (device.peak_connections, device.peak_active) == (1, 1)
    assert (await digest_driver.fetch_status()).state is State.PAUSED


async def test_job_and_info_are_asked_only_when_needed(
    farm: SimulatedFarm, key_driver: PrusaLinkDriver
) -> None:
    for _ in range(3):
        await key_driver.fetch_status()
    printing(farm)
    for _ in range(10):
        assert (await key_driver.fetch_status()).file == NAME
    assert key_driver.requests == {STATUS_PATH: 13, "/api/v1/job": 1}
    farm.start_print(0, "second.gcode", duration=LONG_PRINT)  # a new job id
    assert (await key_driver.fetch_status()).file == "second.gcode"
    assert key_driver.requests["/api/v1/job"] == 2
    result = await key_driver.probe()
    assert result.firmware.startswith("PrusaLink")
    assert key_driver.requests["/api/version"] == key_driver.requests["/api/v1/info"] == 1


# --- every state


async def test_every_prusalink_state_is_mapped(
    farm: SimulatedFarm, device: PrusaLinkDevice, key_driver: PrusaLinkDriver
) -> None:
    status = await key_driver.fetch_status()
    assert (status.state, status.bed_ready) == (State.IDLE, False)

    farm.set_fault(0, "attention")  # a dialog on an idle printer: nothing can start
    status = await wait_for(key_driver, State.ERROR)
    assert status.message == ATTENTION
    farm.set_fault(0, "not_ready")  # BUSY without a job
    assert (await wait_for(key_driver, State.CONNECTING)).message == BUSY
    farm.set_fault(0, None)

    printing(farm)
    await wait_for(key_driver, State.PRINTING)
    farm.set_fault(0, "attention")  # during a print: the print waits for someone
    status = await wait_for(key_driver, State.PAUSED)
    assert (status.message, status.file) == (ATTENTION, NAME)
    farm.set_fault(0, None)
    await wait_for(key_driver, State.PRINTING)

    await key_driver.cancel()  # STOPPED: free again
    assert (await wait_for(key_driver, State.IDLE)).message == "Print cancelled"
    device.set_ready()  # "Set Ready" on the printer's screen
    status = await wait_for(key_driver, State.IDLE, check=lambda s: s.bed_ready)
    assert status.message == READY

    farm.start_print(0, NAME, duration=30.0)  # a print clears READY
    status = await wait_for(key_driver, State.PRINTING)
    assert not status.bed_ready
    status = await wait_for(key_driver, State.FINISHED, timeout=10.0)
    assert (status.file, status.progress, status.bed_ready) == (NAME, 100.0, False)
    device.set_ready()
    status = await wait_for(key_driver, State.IDLE, check=lambda s: s.bed_ready)
    assert status.file == ""

    farm.set_fault(0, "disconnect")  # Buddy halted on an error screen
    status = await wait_for(key_driver, State.ERROR)
    assert "see its screen" in status.message


@pytest.mark.parametrize(
    ("word", "job", "state"),
    [
        ("BUSY", True, State.PRINTING),  # Buddy: a print being set up, cancelled or finished
        ("UNKNOWN", False, State.CONNECTING),  # Buddy, before its printer task is up
        ("SOMETHING_NEW", False, State.CONNECTING),
        ("", False, State.CONNECTING),
        ("ERROR", False, State.ERROR),
    ],
)
def test_state_words_without_a_simulator_case(word: str, job: bool, state: State) -> None:
    reply = {"printer": {"state": word, "temp_nozzle": 25.0, "temp_bed": 24.0}}
    if job:
        reply["job"] = {"id": 3, "progress": 99.0, "time_printing": 600}
    status = parse_status(reply, None)
    assert status.state is state and (status.message or state is State.PRINTING)


def test_prusa_link_error_text_is_shown() -> None:
    # Prusa-Link (Pi) adds status_printer {ok, message}; Buddy has no error text in v1.
    reply = {"printer": {"state": "ERROR"}, "status_printer": {"ok": False, "message": "Serial timeout"}}
    assert parse_status(reply, None).message == "Serial timeout"


# --- uploads


async def test_another_transfer_in_progress_is_busy(
    farm: SimulatedFarm, device: PrusaLinkDevice, key_driver: PrusaLinkDriver, tmp_path: Path
) -> None:
    # PrusaSlicer (another client, its own connection) is sending a file to a slow drive.
    farm.set_fault(0, "slow_usb")
    async with httpx.AsyncClient() as slicer:
        other = driver_with(farm, slicer)
        their_file = gcode_file(tmp_path, "theirs.gcode")
        theirs = asyncio.create_task(other.upload(their_file, remote_name="t.gcode"))
        await wait_for(key_driver, State.IDLE, check=lambda s: device.transfer is not None)
        with pytest.raises(PrinterBusy, match="receiving another file") as caught:
            await key_driver.upload(gcode_file(tmp_path, size=64 * 1024), remote_name=NAME)
        assert not caught.value.permanent
        theirs.cancel()
    assert not farm.printers[0].file_path(NAME).exists()


async def test_a_file_being_printed_is_not_overwritten(
    farm: SimulatedFarm, key_driver: PrusaLinkDriver, tmp_path: Path
) -> None:
    path = gcode_file(tmp_path, size=64 * 1024)
    await key_driver.upload(path, remote_name=NAME, start=True)
    await wait_for(key_driver, State.PRINTING)
    with pytest.raises(PrinterBusy, match="is being printed") as caught:
        await key_driver.upload(gcode_file(tmp_path, "other.gcode", size=32 * 1024), remote_name=NAME)
    assert not caught.value.permanent
    assert farm.printers[0].file_path(NAME).read_bytes() == path.read_bytes()


async def test_upload_and_print_while_printing_keeps_the_file(
    farm: SimulatedFarm, key_driver: PrusaLinkDriver, tmp_path: Path
) -> None:
    printing(farm)
    with pytest.raises(PrinterBusy, match="can't print right now") as caught:
        await key_driver.upload(gcode_file(tmp_path, size=64 * 1024), remote_name="next.gcode", start=True)
    assert not caught.value.permanent
    assert farm.printers[0].file_path("next.gcode").exists()  # stored: a later start prints it
    assert (await key_driver.fetch_status()).file == NAME


@pytest.mark.parametrize("remote_name", ["bad:name.gcode", 'quote".gcode'])
async def test_a_file_name_the_printer_refuses_is_permanent(
    farm: SimulatedFarm, key_driver: PrusaLinkDriver, tmp_path: Path, remote_name: str
) -> None:
    with pytest.raises(DriverError, match="refused the file name") as caught:
        await key_driver.upload(gcode_file(tmp_path, size=512 * 1024), remote_name=remote_name)
    assert caught.value.permanent and "invalid characters" in caught.value.message
    assert (await key_driver.fetch_status()).state is State.IDLE  # the next request works


@pytest.mark.parametrize(
    ("source", "remote_name", "words"),
    [
        ("text", "part.3mf", "prints only G-code"),
        ("binary", "part.gcode", "binary G-code, named as text"),
        ("text", "part.bgcode", "text G-code, named as binary"),
    ],
)
async def test_a_file_the_printer_would_refuse_is_not_sent(
    farm: SimulatedFarm,
    key_driver: PrusaLinkDriver,
    tmp_path: Path,
    source: str,
    remote_name: str,
    words: str,
) -> None:
    path = bgcode_file(tmp_path) if source == "binary" else gcode_file(tmp_path)
    before = farm.stats_counters.requests
    with pytest.raises(DriverError, match=words) as caught:
        await key_driver.upload(path, remote_name=remote_name)
    assert caught.value.permanent
    assert farm.stats_counters.requests == before


async def test_binary_gcode_is_sent_as_bgcode_and_printed(
    farm: SimulatedFarm, key_driver: PrusaLinkDriver, tmp_path: Path
) -> None:
    path = bgcode_file(tmp_path)
    await key_driver.upload(path, remote_name="parts/part.bgcode", start=True)
    assert farm.printers[0].file_path("parts/part.bgcode").read_bytes() == path.read_bytes()
    assert (await wait_for(key_driver, State.PRINTING)).file == "parts/part.bgcode"


async def test_buddy_closing_the_connection_after_each_upload_is_no_failure(
    farm: SimulatedFarm, device: PrusaLinkDevice, digest_driver: PrusaLinkDriver, tmp_path: Path
) -> None:
    path = gcode_file(tmp_path, size=128 * 1024)
    for round_ in range(3):
        name = f"round{round_}.gcode"
        await digest_driver.upload(path, remote_name=name)
        await digest_driver.start(name)  # on a new connection: the upload's was closed
        await wait_for(digest_driver, State.PRINTING, check=lambda s, n=name: s.file == n)
        await digest_driver.cancel()
        await wait_for(digest_driver, State.IDLE)
    assert device.peak_connections == 1


async def test_commands_without_a_print_and_what_prusalink_lacks(key_driver: PrusaLinkDriver) -> None:
    for command in (key_driver.pause, key_driver.resume, key_driver.cancel):
        with pytest.raises(PrinterBusy, match="Nothing is printing"):
            await command()
    for command in (key_driver.emergency_stop, lambda: key_driver.set_temperature(hotend=200)):
        with pytest.raises(DriverError, match="PrusaLink") as caught:
            await command()
        assert caught.value.permanent


async def test_a_command_acts_on_the_job_running_now(
    farm: SimulatedFarm, key_driver: PrusaLinkDriver
) -> None:
    printing(farm)
    await wait_for(key_driver, State.PRINTING)
    farm.start_print(0, "second.gcode", duration=LONG_PRINT)  # another job between status and command
    await key_driver.pause()
    assert (await wait_for(key_driver, State.PAUSED)).file == "second.gcode"


# --- polling


def test_the_poller_waits_at_least_prusalinks_interval() -> None:
    coordinator = Coordinator(interval=0.5, concurrency=4, timeout=1.0, backoff_max=4.0)
    poller = PrinterPoller(config=PrinterConfig(pk=1, protocol="prusalink", base_url="http://127.0.0.1:1"))
    poller.driver = coordinator._driver(poller)
    assert coordinator._interval_of(poller) == PrusaLinkDriver.poll_interval == 1.5
    slower = Coordinator(interval=5.0, concurrency=4, timeout=1.0, backoff_max=4.0)
    assert slower._interval_of(dataclasses.replace(poller)) == 5.0


async def test_digest_header_leaves_out_the_algorithm_buddy_once_misread(farm: SimulatedFarm) -> None:
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request.headers.get("Authorization", ""))

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        driver = driver_with(farm, client, username="maker")
        assert (await driver.fetch_status()).state is State.IDLE
    assert sent[0] == "" and sent[1].startswith('Digest username="maker", realm="Printer API"')
    assert "algorithm" not in sent[1] and "qop" not in sent[1]
