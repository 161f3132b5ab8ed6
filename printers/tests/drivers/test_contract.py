"""The contract every registered driver passes against its simulator, over loopback HTTP.

Parametrized over the driver registry: a newly registered protocol runs every case here and
fails until it has a `Profile` (and so a simulator). Where protocols legitimately differ the
profile says so as data; the test bodies never ask which protocol they drive. A case a driver
fails because of a known bug is named in its profile's `known_bugs` (strict xfail: fixing the
bug makes the case pass and the entry must go).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from printers.drivers import (
    DRIVERS,
    Capability,
    Driver,
    DriverAuthError,
    DriverError,
    PrinterBusy,
    PushDriver,
)
from printers.drivers.http import make_client
from printers.simulator import FAULTS, SimPrinter, SimulatedFarm
from printers.simulator.printer import BAMBU_FAULTS, PRUSALINK_FAULTS, faults_for
from printers.simulator.printer import PROTOCOLS as SIMULATED_PROTOCOLS
from printers.state import TEMP_MAX, TEMP_MIN, PrinterStatus, State
from printers.tests.drivers.conftest import LONG_PRINT, FarmFactory, driver_for, gcode_file, wait_for
from printfarm.testing import eventually

# A client timeout short enough to keep the fault cases fast, long enough for a loaded machine
# to answer a healthy request well within it.
SHORT_TIMEOUT = 0.5
NAME = "contract part.gcode"
ERROR_TEXT = "Heater extruder not heating at expected rate"
# Spaces, non-ASCII and folders reach the printer and come back in its status unchanged.
REMOTE_NAMES = ["cube.gcode", "my part v2.gcode", "pièce ünïcode 部品.gcode", "parts/nested dir/cube.gcode"]


@dataclass(frozen=True)
class Profile:
    """What one protocol's driver does differently from the others, and its known bugs."""

    # The firmware link lost (fault "disconnect"): Moonraker says Klippy is reconnecting,
    # OctoPrint's serial port failed with an error.
    link_lost_state: State
    # Klipper's CANCEL_PRINT without a print is a no-op; OctoPrint answers 409.
    refuses_cancel_when_idle: bool
    # The message of a printer whose print was cancelled (Klipper keeps "cancelled").
    cancelled_message: str
    # Moonraker keeps a job history; OctoPrint keeps none.
    keeps_history: bool
    # Klipper and OctoPrint refuse to start a missing file and stay idle; Bambu firmware takes
    # the job and fails it (FAILED with a print_error).
    missing_file_state: State = State.IDLE
    # Klipper and OctoPrint report a failed print in the firmware's words; Bambu firmware reports
    # only codes (print_error, HMS), which the driver names without that text.
    reports_error_text: bool = True
    # PrusaLink (Buddy) names no job once a print is over: a print that ended before the driver
    # saw it running finishes without its file's name.
    names_unseen_finished_file: bool = True
    # Requests a driver makes before an upload's own (PrusaLink lists the writable storage).
    requests_before_upload: int = 0
    # case id -> why the driver fails it today
    known_bugs: dict[str, str] = field(default_factory=dict)
    # case id -> why the case doesn't exist for this protocol (its simulator has no such fault)
    not_applicable: dict[str, str] = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    "moonraker": Profile(
        link_lost_state=State.CONNECTING,
        refuses_cancel_when_idle=False,
        cancelled_message="Print cancelled",
        keeps_history=True,
        known_bugs={},
    ),
    "octoprint": Profile(
        link_lost_state=State.ERROR,
        refuses_cancel_when_idle=True,
        cancelled_message="",
        keeps_history=False,
        known_bugs={},
    ),
    "prusalink": Profile(
        link_lost_state=State.ERROR,
        refuses_cancel_when_idle=True,
        cancelled_message="Print cancelled",
        keeps_history=False,
        reports_error_text=False,
        names_unseen_finished_file=False,
        requests_before_upload=1,
        known_bugs={},
    ),
    "bambu": Profile(
        link_lost_state=State.OFFLINE,
        refuses_cancel_when_idle=False,
        cancelled_message="Print cancelled",
        keeps_history=False,
        missing_file_state=State.ERROR,
        reports_error_text=False,
        known_bugs={},
        not_applicable={
            "state-not-ready": "Bambu firmware has no separate link to a controller that can be down",
            "state-link-lost": "Bambu firmware has no separate link to a controller that can be lost",
            "garbage-command-reply": "a malformed Bambu report garbles pushes, not replies: see 'garbled'",
            "garbage-upload-reply": "FTPS answers are status lines; the upload faults cover a cut transfer",
        },
    ),
}

# What the contract exercises of the Driver interface; a new abstract method fails
# test_contract_covers_the_driver_interface until it has cases here.
COVERED_METHODS = frozenset(
    {
        "fetch_status",
        "probe",
        "pause",
        "resume",
        "cancel",
        "emergency_stop",
        "set_temperature",
        "upload",
        "start",
    }
)


def test_every_registered_driver_has_a_profile_and_a_simulator() -> None:
    assert set(PROFILES) == set(DRIVERS)
    assert set(DRIVERS) <= set(SIMULATED_PROTOCOLS)


def test_contract_covers_the_driver_interface() -> None:
    assert Driver.__abstractmethods__ <= COVERED_METHODS


@pytest.fixture(params=sorted(DRIVERS))
def protocol(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def profile(protocol: str) -> Profile:
    if protocol not in PROFILES:
        pytest.fail(f"No contract profile for the registered protocol {protocol!r}")
    return PROFILES[protocol]


@pytest.fixture
async def farm(make_farm: FarmFactory, protocol: str, profile: Profile) -> SimulatedFarm:
    return await make_farm(protocol)


@pytest.fixture
def driver(farm: SimulatedFarm, client: httpx.AsyncClient) -> Driver:
    return driver_for(farm, client)


@pytest.fixture
def known_bug(request: pytest.FixtureRequest, profile: Profile) -> Callable[[str], None]:
    """known_bug("case") marks this test a strict xfail when the profile lists the case."""

    def mark(case: str) -> None:
        if case in profile.not_applicable:
            pytest.skip(profile.not_applicable[case])
        if case in profile.known_bugs:
            request.applymarker(pytest.mark.xfail(reason=profile.known_bugs[case], strict=True))

    return mark


def on_printer(farm: SimulatedFarm, change: Callable[[SimPrinter, float], None]) -> None:
    """Change the simulated printer as its firmware would, at the farm's current time (the
    farm runs on this test's loop, so this is a plain call)."""
    printer = farm.printers[0]
    now = farm.sim_now()
    printer.advance(now)
    change(printer, now)


def last_outcome(farm: SimulatedFarm) -> str:
    return farm.print_log(0)[-1]["outcome"]


def assert_sane(status: PrinterStatus) -> None:
    """Fields every status carries whatever the protocol: typed, in range, explained."""
    assert isinstance(status.state, State)
    assert status.state is not State.MAINTENANCE  # an operator's setting, never a reading
    for temp in (status.hotend_actual, status.hotend_target, status.bed_actual, status.bed_target):
        assert temp is None or (isinstance(temp, float) and TEMP_MIN <= temp <= TEMP_MAX), status
    assert status.progress is None or 0.0 <= status.progress <= 100.0, status  # a percentage
    for seconds in (status.elapsed, status.remaining):
        assert seconds is None or (isinstance(seconds, int) and seconds >= 0), status
    assert isinstance(status.message, str) and isinstance(status.file, str)
    if status.state in (State.PRINTING, State.PAUSED):
        assert status.file and status.progress is not None, status
    if status.state in (State.ERROR, State.CONNECTING, State.OFFLINE):
        assert status.message, status  # the operator is told why


# --- status in every state the simulator can put a printer in


def _print(farm: SimulatedFarm) -> None:
    farm.start_print(0, NAME, duration=LONG_PRINT)


def _paused(farm: SimulatedFarm) -> None:
    _print(farm)
    on_printer(farm, lambda p, now: p.pause(now))


def _cancelled(farm: SimulatedFarm) -> None:
    _print(farm)
    on_printer(farm, lambda p, now: p.cancel(now))


def _error(farm: SimulatedFarm) -> None:
    _print(farm)
    on_printer(farm, lambda p, now: p.emergency_stop(now, ERROR_TEXT))


def _finished(farm: SimulatedFarm) -> None:
    farm.start_print(0, NAME, duration=1.0)  # 1 simulated second


@dataclass(frozen=True)
class StateCase:
    setup: Callable[[SimulatedFarm], None]
    expected: Callable[[Profile], State]
    job_file: bool = False  # the status names the job's file
    # the exact message, when the contract fixes it (None from the callable: not for this profile)
    message: Callable[[Profile], str | None] | None = None


STATE_CASES: dict[str, StateCase] = {
    "idle": StateCase(lambda farm: None, lambda _: State.IDLE, message=lambda _: ""),
    "printing": StateCase(_print, lambda _: State.PRINTING, job_file=True),
    "paused": StateCase(_paused, lambda _: State.PAUSED, job_file=True),
    "finished": StateCase(_finished, lambda _: State.FINISHED, job_file=True),
    "cancelled": StateCase(_cancelled, lambda _: State.IDLE, message=lambda p: p.cancelled_message),
    "error": StateCase(
        _error, lambda _: State.ERROR, message=lambda p: ERROR_TEXT if p.reports_error_text else None
    ),
    "not-ready": StateCase(lambda farm: farm.set_fault(0, "not_ready"), lambda _: State.CONNECTING),
    "link-lost": StateCase(lambda farm: farm.set_fault(0, "disconnect"), lambda p: p.link_lost_state),
}


@pytest.mark.parametrize("case", list(STATE_CASES))
async def test_status_in_every_state(
    farm: SimulatedFarm, driver: Driver, profile: Profile, case: str, known_bug: Callable[[str], None]
) -> None:
    known_bug(f"state-{case}")
    spec = STATE_CASES[case]
    spec.setup(farm)
    status = await wait_for(driver, spec.expected(profile))
    assert_sane(status)
    if spec.job_file and (case != "finished" or profile.names_unseen_finished_file):
        assert status.file == NAME
    message = spec.message(profile) if spec.message is not None else None
    if message is not None:
        assert status.message == message
    if status.state is State.IDLE:
        assert status.hotend_actual is not None and status.bed_actual is not None
    if status.state is State.FINISHED:
        assert status.progress == 100.0


async def test_offline_printer_is_a_driver_error_or_offline(farm: SimulatedFarm, driver: Driver) -> None:
    farm.set_fault(0, "offline")
    try:
        status = await driver.fetch_status()
    except DriverError as exc:
        assert exc.message and not exc.permanent
    else:
        assert status.state is State.OFFLINE and status.message


async def test_print_history_of_a_finished_print(
    farm: SimulatedFarm, driver: Driver, profile: Profile
) -> None:
    _finished(farm)
    await wait_for(driver, State.FINISHED)
    record = await driver.print_history(NAME)
    if profile.keeps_history:
        assert record is not None and record.file == NAME and record.outcome == "completed"
    else:
        assert record is None


async def test_probe_names_the_firmware_and_reads_the_status(driver: Driver) -> None:
    result = await driver.probe()
    assert result.firmware
    assert result.status.state is State.IDLE
    assert result.status.firmware == result.firmware
    assert_sane(result.status)


# --- each command, as seen in the next status


async def test_pause_then_resume(
    farm: SimulatedFarm, driver: Driver, known_bug: Callable[[str], None]
) -> None:
    known_bug("pause-then-resume")
    _print(farm)
    await driver.pause()
    assert (await wait_for(driver, State.PAUSED)).file == NAME
    await driver.resume()
    assert (await wait_for(driver, State.PRINTING)).file == NAME


@pytest.mark.parametrize("setup", [_print, _paused], ids=["printing", "paused"])
async def test_cancel_ends_the_print(
    farm: SimulatedFarm, driver: Driver, setup: Callable[[SimulatedFarm], None]
) -> None:
    setup(farm)
    await driver.cancel()
    assert_sane(await wait_for(driver, State.IDLE))
    assert last_outcome(farm) == "cancelled"


async def refused_without(driver: Driver, capability: Capability, command: Callable[[], object]) -> bool:
    """A driver that doesn't list `capability` refuses its command at once, in words, without
    touching the printer; True when it did (the caller's case is then done)."""
    if capability in driver.capabilities:
        return False
    with pytest.raises(DriverError) as caught:
        await command()  # type: ignore[misc]
    assert caught.value.permanent and caught.value.message
    return True


@pytest.mark.parametrize("setup", [_print, lambda farm: None], ids=["printing", "idle"])
async def test_emergency_stop_halts_the_printer(
    farm: SimulatedFarm, driver: Driver, setup: Callable[[SimulatedFarm], None]
) -> None:
    setup(farm)
    if await refused_without(driver, Capability.EMERGENCY_STOP, driver.emergency_stop):
        return
    await driver.emergency_stop()
    assert_sane(await wait_for(driver, State.ERROR))
    assert all(entry["outcome"] != "in_progress" for entry in farm.print_log(0))


async def test_light_switches_where_the_printer_has_one(driver: Driver) -> None:
    if await refused_without(driver, Capability.LIGHT, lambda: driver.set_light(on=False)):
        return
    await driver.set_light(on=False)
    await wait_for(driver, State.IDLE, check=lambda s: s.light is False)
    await driver.set_light(on=True)
    await wait_for(driver, State.IDLE, check=lambda s: s.light is True)


async def test_preheat_then_cool_down(driver: Driver) -> None:
    if await refused_without(driver, Capability.TEMPERATURE, lambda: driver.set_temperature(bed=60)):
        return
    await driver.set_temperature(hotend=205.5, bed=60)
    status = await wait_for(driver, State.IDLE, check=lambda s: s.hotend_target == 205.5)
    assert status.bed_target == 60.0
    await driver.set_temperature(bed=70)  # None leaves the hotend alone
    status = await wait_for(driver, State.IDLE, check=lambda s: s.bed_target == 70.0)
    assert status.hotend_target == 205.5
    await driver.set_temperature(hotend=0, bed=0)
    await wait_for(driver, State.IDLE, check=lambda s: s.hotend_target == 0.0 and s.bed_target == 0.0)


@pytest.mark.parametrize("target", [-1.0, 501.0, float("nan")])
async def test_absurd_temperature_is_refused_before_sending(driver: Driver, target: float) -> None:
    with pytest.raises(DriverError) as caught:
        await driver.set_temperature(hotend=target)
    assert caught.value.permanent
    assert (await driver.fetch_status()).hotend_target == 0.0


@pytest.mark.parametrize("command", ["pause", "resume"])
async def test_pause_or_resume_without_a_print_is_refused(driver: Driver, command: str) -> None:
    with pytest.raises(DriverError):
        await getattr(driver, command)()
    assert (await driver.fetch_status()).state is State.IDLE


async def test_cancel_without_a_print(driver: Driver, profile: Profile) -> None:
    if profile.refuses_cancel_when_idle:
        with pytest.raises(DriverError):
            await driver.cancel()
    else:
        await driver.cancel()
    assert (await driver.fetch_status()).state is State.IDLE


# --- upload + start


@pytest.mark.parametrize("remote_name", REMOTE_NAMES)
async def test_upload_then_start_prints_the_uploaded_file(
    farm: SimulatedFarm, driver: Driver, tmp_path: Path, remote_name: str
) -> None:
    path = gcode_file(tmp_path, size=600 * 1024)
    size = path.stat().st_size
    calls: list[tuple[int, int]] = []
    await driver.upload(path, remote_name=remote_name, progress=lambda *sent: calls.append(sent))
    assert calls[0] == (0, size) and calls[-1] == (size, size)
    assert farm.printers[0].file_path(remote_name).read_bytes() == path.read_bytes()
    assert (await driver.fetch_status()).state is State.IDLE  # stored, not started

    await driver.start(remote_name)
    status = await wait_for(driver, State.PRINTING)
    assert status.file == remote_name
    assert farm.print_log(0)[-1]["filename"] == remote_name


@pytest.mark.parametrize("remote_name", REMOTE_NAMES)
async def test_upload_with_start_prints_it(
    farm: SimulatedFarm, driver: Driver, tmp_path: Path, remote_name: str
) -> None:
    await driver.upload(gcode_file(tmp_path, size=64 * 1024), remote_name=remote_name, start=True)
    status = await wait_for(driver, State.PRINTING)
    assert status.file == remote_name
    assert_sane(status)


async def test_upload_with_start_while_printing_is_busy(
    farm: SimulatedFarm, driver: Driver, tmp_path: Path, known_bug: Callable[[str], None]
) -> None:
    known_bug("start-while-printing")
    _print(farm)
    with pytest.raises(PrinterBusy):
        await driver.upload(gcode_file(tmp_path), remote_name="other.gcode", start=True)
    assert (await driver.fetch_status()).file == NAME


async def test_start_while_printing_is_busy(
    farm: SimulatedFarm, driver: Driver, tmp_path: Path, known_bug: Callable[[str], None]
) -> None:
    known_bug("start-while-printing")
    await driver.upload(gcode_file(tmp_path), remote_name="other.gcode")
    _print(farm)
    with pytest.raises(PrinterBusy) as caught:
        await driver.start("other.gcode")
    assert not caught.value.permanent
    assert (await driver.fetch_status()).file == NAME


async def test_start_of_a_missing_file_is_permanent(
    driver: Driver, profile: Profile, known_bug: Callable[[str], None]
) -> None:
    known_bug("start-missing-file")
    with pytest.raises(DriverError) as caught:
        await driver.start("never uploaded.gcode")
    assert caught.value.permanent
    assert (await driver.fetch_status()).state is profile.missing_file_state


# --- every fault kind


async def _fault_offline(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    farm.set_fault(0, "offline")
    with pytest.raises(DriverError) as caught:
        await driver.fetch_status()
    assert caught.value.message and not caught.value.permanent
    with pytest.raises(DriverError):
        await driver.pause()
    with pytest.raises(DriverError):
        await driver.upload(gcode_file(tmp_path), remote_name=NAME)


async def _timeout(farm: SimulatedFarm, fault: str, delay: float = 3.0) -> None:
    farm.set_fault(0, fault, delay=delay)
    async with make_client(timeout=SHORT_TIMEOUT) as client:
        driver = driver_for(farm, client)
        for call in (driver.fetch_status, driver.pause):
            with pytest.raises(DriverError, match=f"within {SHORT_TIMEOUT:g} s") as caught:
                await call()
            assert not caught.value.permanent


async def _fault_blackhole(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    await _timeout(farm, "blackhole")


async def _fault_slow(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    await _timeout(farm, "slow", delay=SHORT_TIMEOUT * 6)
    farm.set_fault(0, "slow", delay=0.05)  # slower than usual but within the (2 s) timeout
    assert_sane(await wait_for(driver, State.IDLE))


async def _fault_http500(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    farm.set_fault(0, "http500")
    with pytest.raises(DriverError, match="HTTP 500") as caught:
        await driver.fetch_status()
    assert not caught.value.permanent
    if Capability.TEMPERATURE in driver.capabilities:
        with pytest.raises(DriverError) as caught:
            await driver.set_temperature(hotend=200)
        assert not caught.value.permanent
    with pytest.raises(DriverError) as caught:
        await driver.upload(gcode_file(tmp_path), remote_name=NAME)
    assert not caught.value.permanent


async def _unreadable_status(farm: SimulatedFarm, driver: Driver, fault: str) -> None:
    farm.set_fault(0, fault)
    with pytest.raises(DriverError) as caught:
        await driver.fetch_status()
    assert not caught.value.permanent
    with pytest.raises(DriverError):
        await driver.probe()


async def _fault_malformed(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    await _unreadable_status(farm, driver, "malformed")


async def _fault_garbled(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    await _unreadable_status(farm, driver, "garbled")
    # The printer did take the print; only its answer was garbage.
    with pytest.raises(DriverError):
        await driver.upload(gcode_file(tmp_path), remote_name=NAME, start=True)
    farm.set_fault(0, None)
    assert (await wait_for(driver, State.PRINTING)).file == NAME


async def _fault_not_ready(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    farm.set_fault(0, "not_ready")
    status = await driver.fetch_status()
    assert status.state is State.CONNECTING and status.message
    probed = await driver.probe()
    assert probed.firmware and probed.status.state is State.CONNECTING
    for command in (driver.pause, driver.emergency_stop, lambda: driver.set_temperature(hotend=200)):
        with pytest.raises(DriverError):
            await command()


async def _fault_disconnect(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    _print(farm)
    await wait_for(driver, State.PRINTING)
    farm.set_fault(0, "disconnect")
    status = await wait_for(driver, profile.link_lost_state)
    assert_sane(status)
    assert last_outcome(farm) != "in_progress"  # the print ended with the link


async def _failed_upload(
    farm: SimulatedFarm,
    driver: Driver,
    tmp_path: Path,
    fault: str,
    *,
    held: bool = False,
    before_upload: int = 0,
) -> None:
    farm.set_fault(0, fault)
    before = farm.stats_counters.requests
    upload = asyncio.create_task(
        driver.upload(gcode_file(tmp_path, size=8 * 1024 * 1024), remote_name=NAME, start=True)
    )
    if held:
        # The printer stops reading once the request reached it and holds it until the fault
        # clears, then drops the connection (as one that gave up on its SD card does).
        await eventually(lambda: farm.stats_counters.requests > before + before_upload or upload.done())
        farm.set_fault(0, None)
    with pytest.raises(DriverError) as caught:
        await upload
    assert not caught.value.permanent and not isinstance(caught.value, PrinterBusy)
    farm.set_fault(0, None)
    assert (await driver.fetch_status()).state is State.IDLE
    assert not farm.printers[0].file_path(NAME).exists()


async def _fault_reset_upload(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    await _failed_upload(farm, driver, tmp_path, "reset_upload")


async def _fault_stall_upload(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    await _failed_upload(
        farm, driver, tmp_path, "stall_upload", held=True, before_upload=profile.requests_before_upload
    )


FAULT_CASES = {
    "offline": _fault_offline,
    "blackhole": _fault_blackhole,
    "slow": _fault_slow,
    "http500": _fault_http500,
    "malformed": _fault_malformed,
    "garbled": _fault_garbled,
    "not_ready": _fault_not_ready,
    "disconnect": _fault_disconnect,
    "reset_upload": _fault_reset_upload,
    "stall_upload": _fault_stall_upload,
}


# --- the faults of a Bambu printer's transport (MQTT over TLS, FTPS)


async def _fault_no_connack(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    await _timeout(farm, "no_connack")


async def _fault_bad_access_code(
    farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path
) -> None:
    farm.set_fault(0, "bad_access_code")
    path = gcode_file(tmp_path)
    for call in (driver.fetch_status, driver.pause, lambda: driver.upload(path, remote_name=NAME)):
        with pytest.raises(DriverAuthError, match="access code"):
            await call()
    assert not farm.printers[0].file_path(NAME).exists()


async def _fault_dev_mode_off(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    _print(farm)
    farm.set_fault(0, "dev_mode_off")
    with pytest.raises(DriverError) as caught:
        await driver.pause()
    assert caught.value.message.startswith(
        "Control is refused: enable LAN Only Mode and Developer Mode on the printer (Settings → Network)"
    )
    assert (await driver.fetch_status()).state is State.PRINTING  # the status still reads


async def _fault_cert_changed(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    pins: list[str] = []

    async def record(pin: str) -> None:
        pins.append(pin)

    kind = type(driver)
    await kind(dataclasses.replace(driver.config, on_certificate=record), driver.client).fetch_status()
    assert len(pins) == 1 and len(pins[0]) == 64  # pinned on first use
    pinned = kind(dataclasses.replace(driver.config, certificate_pin=pins[0]), driver.client)
    assert_sane(await pinned.fetch_status())
    farm.set_fault(0, "cert_changed")
    path = gcode_file(tmp_path)
    for call in (pinned.fetch_status, pinned.pause, lambda: pinned.upload(path, remote_name=NAME)):
        with pytest.raises(DriverError, match="certificate changed") as caught:
            await call()
        assert caught.value.permanent
    assert not farm.printers[0].file_path(NAME).exists()


async def _fault_push_stop(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    assert isinstance(driver, PushDriver)
    driver.silence, driver.pushall_every = 0.3, 0.0  # type: ignore[attr-defined]
    stream = driver.watch()
    try:
        await anext(stream)
        farm.set_fault(0, "push_stop")
        # The printer changes while it pushes nothing; the driver asks (pushall) and sees it.
        on_printer(farm, lambda p, now: p.set_targets(now, hotend=180.0, bed=None))
        async with asyncio.timeout(10):
            async for status in stream:
                if status.hotend_target == 180.0:
                    break
    finally:
        await stream.aclose()


async def _fault_huge_push(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    farm.set_fault(0, "huge_push")
    with pytest.raises(DriverError, match="over 1024 KB") as caught:
        await driver.fetch_status()
    assert not caught.value.permanent


async def _fault_runout(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    _print(farm)
    farm.set_fault(0, "runout")
    status = await wait_for(driver, State.PAUSED)
    assert "filament ran out" in status.message
    assert_sane(status)


async def _fault_garbled_replies(
    farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path
) -> None:
    _print(farm)
    farm.set_fault(0, "garbled")
    assert (await driver.fetch_status()).state is State.PRINTING  # pushes still read
    with pytest.raises(DriverError, match="did not answer") as caught:
        await driver.pause()
    assert not caught.value.permanent
    farm.set_fault(0, None)
    await wait_for(driver, State.PAUSED)  # the printer did pause; only its answer was garbage


BAMBU_FAULT_CASES = {
    "offline": _fault_offline,
    "blackhole": _fault_blackhole,
    "no_connack": _fault_no_connack,
    "bad_access_code": _fault_bad_access_code,
    "dev_mode_off": _fault_dev_mode_off,
    "cert_changed": _fault_cert_changed,
    "push_stop": _fault_push_stop,
    "malformed": _fault_malformed,
    "garbled": _fault_garbled_replies,
    "huge_push": _fault_huge_push,
    "runout": _fault_runout,
    "reset_upload": _fault_reset_upload,
    "stall_upload": _fault_stall_upload,
}
# --- the faults of a PrusaLink printer beyond HTTP's: its USB drive, digest nonces, dialogs


async def _usb_refused(farm: SimulatedFarm, driver: Driver, tmp_path: Path, fault: str, words: str) -> None:
    farm.set_fault(0, fault)
    with pytest.raises(DriverError, match=words) as caught:
        await driver.upload(gcode_file(tmp_path, size=64 * 1024), remote_name=NAME, start=True)
    # The operator can put a drive in or make room: the transfer is retried, not failed.
    assert not caught.value.permanent and not isinstance(caught.value, PrinterBusy)
    assert not farm.printers[0].file_path(NAME).exists()
    assert (await driver.fetch_status()).state is State.IDLE


async def _fault_no_usb(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    await _usb_refused(farm, driver, tmp_path, "no_usb", "No USB drive")


async def _fault_usb_full(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    await _usb_refused(farm, driver, tmp_path, "usb_full", "drive is full")


async def _fault_slow_usb(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    farm.set_fault(0, "slow_usb")
    path = gcode_file(tmp_path, size=96 * 1024)
    calls: list[tuple[int, int]] = []
    await driver.upload(path, remote_name=NAME, progress=lambda *sent: calls.append(sent))
    assert calls[-1] == (path.stat().st_size,) * 2
    assert farm.printers[0].file_path(NAME).read_bytes() == path.read_bytes()


async def _fault_stale_nonce(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    # Every nonce serves one request: each request of the digest login meets a stale one.
    farm.set_fault(0, "stale_nonce")
    digest = type(driver)(dataclasses.replace(driver.config, username="maker"), driver.client)
    for _ in range(3):
        assert_sane(await digest.fetch_status())
    await digest.upload(gcode_file(tmp_path, size=256 * 1024), remote_name=NAME, start=True)
    assert (await wait_for(digest, State.PRINTING)).file == NAME
    await digest.pause()
    await wait_for(digest, State.PAUSED)


async def _fault_attention(farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path) -> None:
    _print(farm)
    await wait_for(driver, State.PRINTING)
    farm.set_fault(0, "attention")
    status = await wait_for(driver, State.PAUSED)
    assert "attention at the printer" in status.message and status.file == NAME
    assert_sane(status)
    farm.set_fault(0, None)  # someone answered the dialog
    await wait_for(driver, State.PRINTING)


PRUSALINK_FAULT_CASES = FAULT_CASES | {
    "no_usb": _fault_no_usb,
    "usb_full": _fault_usb_full,
    "slow_usb": _fault_slow_usb,
    "stale_nonce": _fault_stale_nonce,
    "attention": _fault_attention,
}
CASES_BY_FAULTS = {
    FAULTS: FAULT_CASES,
    BAMBU_FAULTS: BAMBU_FAULT_CASES,
    PRUSALINK_FAULTS: PRUSALINK_FAULT_CASES,
}


def test_every_simulator_fault_has_a_case() -> None:
    assert set(FAULT_CASES) == set(FAULTS)
    assert set(BAMBU_FAULT_CASES) == set(BAMBU_FAULTS)
    assert set(PRUSALINK_FAULT_CASES) == set(PRUSALINK_FAULTS)


# Each protocol with the faults its simulator has.
@pytest.mark.parametrize(
    ("protocol", "fault"),
    [(protocol, fault) for protocol in sorted(DRIVERS) for fault in faults_for(protocol)],
)
async def test_fault(
    farm: SimulatedFarm, driver: Driver, profile: Profile, tmp_path: Path, protocol: str, fault: str
) -> None:
    await CASES_BY_FAULTS[faults_for(protocol)][fault](farm, driver, profile, tmp_path)
    # Whatever the fault did, the printer reads normally once it clears.
    farm.set_fault(0, None)
    assert_sane(await driver.fetch_status())


async def test_command_answered_with_garbage_is_an_error(
    farm: SimulatedFarm, driver: Driver, known_bug: Callable[[str], None]
) -> None:
    known_bug("garbage-command-reply")
    _print(farm)
    farm.set_fault(0, "malformed")  # the printer does nothing and answers garbage
    with pytest.raises(DriverError):
        await driver.pause()
    farm.set_fault(0, None)
    assert (await driver.fetch_status()).state is State.PRINTING


async def test_upload_answered_with_garbage_is_an_error(
    farm: SimulatedFarm, driver: Driver, tmp_path: Path, known_bug: Callable[[str], None]
) -> None:
    known_bug("garbage-upload-reply")
    farm.set_fault(0, "malformed")  # the printer stores nothing and answers garbage
    with pytest.raises(DriverError):
        await driver.upload(gcode_file(tmp_path, size=64 * 1024), remote_name=NAME)
    assert not farm.printers[0].file_path(NAME).exists()
