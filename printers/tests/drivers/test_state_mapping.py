"""Recorded-shape firmware replies through the drivers' pure parse functions (no HTTP)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from printers.drivers import moonraker, octoprint
from printers.drivers.base import DriverError
from printers.state import PrinterStatus, State

# --- Moonraker: GET /printer/objects/query?webhooks&print_stats&... (printer-protocols.md §1.2)

MOONRAKER_IDLE: dict[str, Any] = {
    "webhooks": {"state": "ready", "state_message": "Printer is ready"},
    "print_stats": {
        "filename": "",
        "total_duration": 0.0,
        "print_duration": 0.0,
        "filament_used": 0.0,
        "state": "standby",
        "message": "",
        "info": {"total_layer": None, "current_layer": None},
    },
    "virtual_sdcard": {"file_path": None, "progress": 0.0, "is_active": False, "file_position": 0},
    "display_status": {"progress": 0.0, "message": None},
    "extruder": {"temperature": 24.61, "target": 0.0},
    "heater_bed": {"temperature": 23.9, "target": 0.0},
}


def moonraker_reply(**objects: dict[str, Any] | Any) -> dict[str, Any]:
    """A query reply: the idle printer with each named object's fields updated (or replaced
    outright when the override is not a dict)."""
    status = copy.deepcopy(MOONRAKER_IDLE)
    for name, fields in objects.items():
        if isinstance(fields, dict) and isinstance(status.get(name), dict):
            status[name].update(fields)
        else:
            status[name] = fields
    return {"result": {"eventtime": 35218.704, "status": status}}


PRINTING = {"state": "printing", "filename": "benchy.gcode", "print_duration": 600.0}


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        pytest.param({}, {"state": State.IDLE, "message": "", "file": "", "progress": 0.0}, id="standby"),
        pytest.param(
            {"print_stats": PRINTING, "virtual_sdcard": {"progress": 0.25}},
            {
                "state": State.PRINTING,
                "file": "benchy.gcode",
                "progress": 25.0,
                "elapsed": 600,
                "remaining": 1800,
            },
            id="printing",
        ),
        pytest.param(
            {"print_stats": {**PRINTING, "state": "paused"}, "virtual_sdcard": {"progress": 0.5}},
            {"state": State.PAUSED, "progress": 50.0, "remaining": 600},
            id="paused",
        ),
        pytest.param(
            {"print_stats": {**PRINTING, "state": "complete"}, "virtual_sdcard": {"progress": 1.0}},
            {"state": State.FINISHED, "progress": 100.0, "remaining": 0, "file": "benchy.gcode"},
            id="complete",
        ),
        pytest.param(
            {"print_stats": {**PRINTING, "state": "cancelled"}, "virtual_sdcard": {"progress": 0.4}},
            {"state": State.IDLE, "message": "Print cancelled", "remaining": None},
            id="cancelled",
        ),
        pytest.param(
            {"print_stats": {**PRINTING, "state": "error", "message": "Move out of range: 0.000 250.100"}},
            {"state": State.ERROR, "message": "Move out of range: 0.000 250.100", "remaining": None},
            id="print-error",
        ),
        pytest.param(
            {"print_stats": {**PRINTING, "state": "error", "message": ""}},
            {"state": State.ERROR, "message": "Print failed"},
            id="print-error-without-message",
        ),
        pytest.param(
            {"webhooks": {"state": "startup", "state_message": "Printer is not ready"}},
            {"state": State.CONNECTING, "message": "Klipper not ready: startup"},
            id="klippy-startup",
        ),
        pytest.param(
            {
                "webhooks": {
                    "state": "shutdown",
                    "state_message": "Shutdown due to webhooks request",
                },
                "print_stats": PRINTING,
            },
            {"state": State.ERROR, "message": "Shutdown due to webhooks request"},
            id="klippy-shutdown-wins-over-job",
        ),
        pytest.param(
            {"webhooks": {"state": "error", "state_message": ""}},
            {"state": State.ERROR, "message": "Klipper error"},
            id="klippy-error-without-message",
        ),
        pytest.param(
            {"print_stats": PRINTING, "display_status": {"message": "Layer 3/120"}},
            {"state": State.PRINTING, "message": "Layer 3/120"},
            id="m117-message",
        ),
        pytest.param(
            {"print_stats": {"state": "cancelled"}, "display_status": {"message": "Cooling down"}},
            {"state": State.IDLE, "message": "Print cancelled · Cooling down"},
            id="m117-appended",
        ),
        pytest.param(
            {"print_stats": PRINTING, "virtual_sdcard": {"progress": 0.0}},
            {"state": State.PRINTING, "progress": 0.0, "remaining": None},
            id="no-eta-at-zero-progress",
        ),
        pytest.param(
            {"print_stats": PRINTING, "virtual_sdcard": None, "display_status": {"progress": 0.4}},
            {"progress": 40.0, "remaining": 900},
            id="display-progress-fallback",
        ),
        pytest.param(
            {
                "extruder": {"temperature": 214.87, "target": 215},
                "heater_bed": {"temperature": 60, "target": 60},
            },
            {"hotend_actual": 214.9, "hotend_target": 215.0, "bed_actual": 60.0, "bed_target": 60.0},
            id="temperatures",
        ),
    ],
)
def test_moonraker_state_mapping(objects: dict[str, Any], expected: dict[str, Any]) -> None:
    status = moonraker.parse_status(moonraker_reply(**objects))
    assert isinstance(status, PrinterStatus)
    for field, value in expected.items():
        assert getattr(status, field) == value, field


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        pytest.param(
            {
                "extruder": {"temperature": "hot", "target": None},
                "heater_bed": {"temperature": float("nan"), "target": float("inf")},
            },
            {"hotend_actual": None, "hotend_target": None, "bed_actual": None, "bed_target": None},
            id="temps-not-numbers",
        ),
        pytest.param(
            {"extruder": {"temperature": -273.1, "target": 2048.0}, "heater_bed": {"temperature": True}},
            {"hotend_actual": None, "hotend_target": None, "bed_actual": None},
            id="temps-absurd",
        ),
        pytest.param(
            {"print_stats": PRINTING, "virtual_sdcard": {"progress": 1.7}},
            {"state": State.PRINTING, "progress": 100.0, "remaining": 0},
            id="progress-above-one",
        ),
        pytest.param(
            {"print_stats": PRINTING, "virtual_sdcard": {"progress": -0.2}},
            {"progress": 0.0, "remaining": None},
            id="progress-negative",
        ),
        pytest.param(
            {"print_stats": {**PRINTING, "print_duration": "600"}, "virtual_sdcard": {"progress": "0.5"}},
            {"state": State.PRINTING, "progress": 0.0, "elapsed": None, "remaining": None},
            id="strings-where-numbers-go",
        ),
        pytest.param(
            {"print_stats": {**PRINTING, "print_duration": 1e12}, "virtual_sdcard": {"progress": 0.5}},
            {"elapsed": None, "remaining": None},
            id="absurd-duration",
        ),
        pytest.param(
            {"print_stats": {**PRINTING, "filename": 42}},
            {"state": State.PRINTING, "file": ""},
            id="filename-not-a-string",
        ),
        pytest.param(
            {"print_stats": {"state": "printing_fast"}},
            {"state": State.CONNECTING, "message": "Klipper reported an unknown print state 'printing_fast'"},
            id="unknown-job-state",
        ),
        pytest.param(
            {"print_stats": "standby", "webhooks": ["ready"]},
            {"state": State.CONNECTING, "message": "Klipper reported no print state"},
            id="objects-not-objects",
        ),
        pytest.param(
            {"webhooks": {"state": None}, "display_status": {"message": 7}},
            {"state": State.IDLE, "message": ""},
            id="webhooks-state-missing",
        ),
    ],
)
def test_moonraker_garbage_reads_as_unknown(objects: dict[str, Any], expected: dict[str, Any]) -> None:
    status = moonraker.parse_status(moonraker_reply(**objects))
    for field, value in expected.items():
        assert getattr(status, field) == value, field


def test_moonraker_empty_status_during_startup() -> None:
    # §1.6: Klippy in startup may answer the query with an empty status.
    status = moonraker.parse_status({"result": {"eventtime": 1.0, "status": {}}})
    assert status.state is State.CONNECTING
    assert status.hotend_actual is None
    assert status.progress is None


def test_moonraker_parses_nan_from_json_text() -> None:
    # Python's json accepts NaN/Infinity; a broken thermistor path can emit them.
    payload = json.loads(
        '{"result": {"status": {"webhooks": {"state": "ready"}, "print_stats": {"state": "standby"},'
        ' "extruder": {"temperature": NaN, "target": Infinity}}}}'
    )
    status = moonraker.parse_status(payload)
    assert status.state is State.IDLE
    assert status.hotend_actual is None
    assert status.hotend_target is None


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "ok",
        {"result": "ok"},
        {"result": {"status": []}},
        {"error": {"code": 400, "message": "Klippy Disconnected"}},
    ],
    ids=["null", "list", "string", "result-ok", "status-list", "error-envelope"],
)
def test_moonraker_wrong_envelope_is_driver_error(payload: object) -> None:
    with pytest.raises(DriverError, match="unexpected reply"):
        moonraker.parse_status(payload)


def test_moonraker_firmware_name() -> None:
    assert (
        moonraker.firmware_name(
            {"moonraker_version": "v0.9.3-12-gabcdef"}, {"software_version": "0.12.0-301-g1234"}
        )
        == "Moonraker v0.9.3-12-gabcdef · Klipper v0.12.0-301-g1234"
    )
    assert moonraker.firmware_name({}, None) == "Moonraker (unknown version) · Klipper (not ready)"


# Klipper's print_duration stays 0 until the first extrusion, and for the whole print on a host
# without an extruder (klippy/extras/print_stats.py); total_duration runs from the start.
CLOCK_NOT_STARTED = {**PRINTING, "print_duration": 0.0, "total_duration": 300.0}


@pytest.mark.parametrize(
    ("print_stats", "progress", "estimate", "expected"),
    [
        pytest.param(CLOCK_NOT_STARTED, 0.6, None, {"elapsed": 300, "remaining": 200}, id="from-total"),
        pytest.param(CLOCK_NOT_STARTED, 0.6, 1000.0, {"elapsed": 300, "remaining": 400}, id="from-estimate"),
        pytest.param(CLOCK_NOT_STARTED, 0.0, 1000.0, {"elapsed": 300, "remaining": 1000}, id="estimate-at-0"),
        # The first percent is start G-code run while heating: 300 s says nothing about the rest.
        pytest.param(CLOCK_NOT_STARTED, 0.01, None, {"elapsed": 300, "remaining": None}, id="too-early"),
        pytest.param(
            {**CLOCK_NOT_STARTED, "state": "paused"},
            0.6,
            None,
            {"elapsed": 300, "remaining": 200},
            id="paused",
        ),
        pytest.param(
            {**CLOCK_NOT_STARTED, "total_duration": 0.0},
            0.6,
            None,
            {"elapsed": 0, "remaining": None},
            id="no-clock",
        ),
        # Once Klipper counts, its print clock wins over the estimate and the total.
        pytest.param(
            {**CLOCK_NOT_STARTED, "print_duration": 120.0},
            0.6,
            1000.0,
            {"elapsed": 120, "remaining": 80},
            id="counting",
        ),
    ],
)
def test_moonraker_time_left_before_klippers_print_clock_starts(
    print_stats: dict[str, Any], progress: float, estimate: float | None, expected: dict[str, Any]
) -> None:
    reply = moonraker_reply(print_stats=print_stats, virtual_sdcard={"progress": progress})
    status = moonraker.parse_status(reply, estimate=estimate)
    assert {name: getattr(status, name) for name in expected} == expected
    assert status.remaining != 0  # never "0 s left" of a print that is not done


def test_moonraker_asks_the_estimate_only_while_the_print_clock_has_not_started() -> None:
    waiting = moonraker_reply(print_stats=CLOCK_NOT_STARTED, virtual_sdcard={"progress": 0.6})
    counting = moonraker_reply(print_stats=PRINTING, virtual_sdcard={"progress": 0.6})
    assert moonraker.waiting_for_clock(waiting) == "benchy.gcode"
    assert moonraker.waiting_for_clock(counting) == ""
    assert moonraker.waiting_for_clock(moonraker_reply()) == ""  # standby
    assert moonraker.waiting_for_clock({"error": "x"}) == ""


# --- OctoPrint: GET /api/printer?exclude=sd,history and GET /api/job (§2.2)

FLAGS = (
    "operational",
    "printing",
    "cancelling",
    "pausing",
    "resuming",
    "finishing",
    "closedOrError",
    "error",
    "paused",
    "ready",
    "sdReady",
)


def octo_printer(state_text: str = "Operational", *flags: str, tool: Any = 21.3, bed: Any = 22.0) -> dict:
    set_flags = set(flags) or {"operational", "ready"}
    return {
        "temperature": {
            "tool0": {"actual": tool, "target": 0.0, "offset": 0},
            "bed": {"actual": bed, "target": None, "offset": 0},
        },
        "state": {"text": state_text, "flags": {name: name in set_flags for name in FLAGS}},
    }


def octo_job(
    state_text: str = "Operational",
    *,
    path: str | None = None,
    completion: Any = None,
    print_time: Any = None,
    left: Any = None,
    error: str | None = None,
) -> dict:
    reply: dict[str, Any] = {
        "job": {
            "file": {
                "name": path.rsplit("/", 1)[-1] if path else None,
                "path": path,
                "display": path,
                "origin": "local" if path else None,
                "size": 1234567 if path else None,
                "date": 1718000000 if path else None,
            },
            "estimatedPrintTime": 3600.0 if path else None,
            "lastPrintTime": None,
            "filament": {"tool0": {"length": 1234.5, "volume": 3.1}} if path else None,
            "user": "farm",
        },
        "progress": {
            "completion": completion,
            "filepos": 0,
            "printTime": print_time,
            "printTimeLeft": left,
            "printTimeLeftOrigin": "estimate" if left is not None else None,
        },
        "state": state_text,
    }
    if error is not None:
        reply["error"] = error
    return reply


PRINTING_JOB = {"path": "parts/bracket.gcode", "completion": 42.5, "print_time": 1530, "left": 2070}


@pytest.mark.parametrize(
    ("printer", "job", "expected"),
    [
        pytest.param(
            octo_printer(),
            octo_job(),
            {"state": State.IDLE, "message": "", "file": "", "progress": None},
            id="operational",
        ),
        pytest.param(
            octo_printer("Printing", "operational", "printing"),
            octo_job("Printing", **PRINTING_JOB),
            {
                "state": State.PRINTING,
                "message": "",
                "file": "parts/bracket.gcode",
                "progress": 42.5,
                "elapsed": 1530,
                "remaining": 2070,
            },
            id="printing",
        ),
        pytest.param(
            octo_printer("Printing from SD", "operational", "printing", "sdReady"),
            octo_job("Printing from SD", **PRINTING_JOB),
            {"state": State.PRINTING, "message": "Printing from SD"},
            id="printing-from-sd",
        ),
        pytest.param(
            octo_printer("Starting", "operational", "printing"),
            octo_job("Starting", path="a.gcode", completion=0.0),
            {"state": State.PRINTING, "message": "Starting"},
            id="starting",
        ),
        pytest.param(
            octo_printer("Pausing", "operational", "pausing"),
            octo_job("Pausing", **PRINTING_JOB),
            {"state": State.PAUSED, "message": "Pausing"},
            id="pausing",
        ),
        pytest.param(
            octo_printer("Paused", "operational", "paused"),
            octo_job("Paused", **PRINTING_JOB),
            {"state": State.PAUSED, "message": "", "progress": 42.5},
            id="paused",
        ),
        pytest.param(
            octo_printer("Resuming", "operational", "resuming", "paused"),
            octo_job("Resuming", **PRINTING_JOB),
            {"state": State.PAUSED, "message": "Resuming"},
            id="resuming-still-paused-flag",
        ),
        pytest.param(
            octo_printer("Cancelling", "operational", "cancelling"),
            octo_job("Cancelling", **PRINTING_JOB),
            {"state": State.PRINTING, "message": "Cancelling"},
            id="cancelling-is-busy",
        ),
        pytest.param(
            octo_printer("Finishing", "operational", "finishing"),
            octo_job("Finishing", path="a.gcode", completion=100.0),
            {"state": State.PRINTING, "message": "Finishing"},
            id="finishing",
        ),
        pytest.param(
            octo_printer("Operational"),
            octo_job("Operational", path="a.gcode", completion=100.0, print_time=3600, left=0),
            {"state": State.FINISHED, "message": "", "progress": 100.0, "file": "a.gcode"},
            id="operational-after-done-is-finished",
        ),
        pytest.param(
            octo_printer("Operational"),
            octo_job("Operational", path="a.gcode", completion=37.2, print_time=900),
            {"state": State.IDLE, "progress": 37.2},
            id="operational-after-cancel-is-idle",
        ),
        pytest.param(
            octo_printer("Operational"),
            octo_job("Operational", completion=100.0),
            {"state": State.IDLE},
            id="operational-100-without-file-is-idle",
        ),
        pytest.param(
            octo_printer("Error", "error", "closedOrError"),
            octo_job("Error", error="MINTEMP triggered"),
            {"state": State.ERROR, "message": "MINTEMP triggered"},
            id="error-flag",
        ),
        pytest.param(
            octo_printer("Offline after error", "closedOrError"),
            octo_job("Offline after error"),
            {"state": State.ERROR, "message": "Offline after error"},
            id="closed-after-error",
        ),
        pytest.param(
            octo_printer("Offline", "closedOrError"),
            octo_job("Offline"),
            {"state": State.CONNECTING},
            id="closed-not-error",
        ),
        pytest.param(
            None,
            octo_job("Offline"),
            {"state": State.CONNECTING, "message": "Printer not connected to OctoPrint (serial closed)"},
            id="409-offline",
        ),
        pytest.param(
            None,
            octo_job("Offline after error", error="Too many consecutive timeouts, printer still connected?"),
            {"state": State.ERROR, "message": "Too many consecutive timeouts, printer still connected?"},
            id="409-offline-after-error",
        ),
        pytest.param(
            None,
            octo_job("Error"),
            {"state": State.ERROR, "message": "Error"},
            id="409-error-without-text",
        ),
        pytest.param(
            None,
            octo_job("Detecting serial connection"),
            {"state": State.CONNECTING, "message": "OctoPrint is connecting (Detecting serial connection)"},
            id="409-connecting",
        ),
    ],
)
def test_octoprint_state_mapping(printer: dict | None, job: dict, expected: dict[str, Any]) -> None:
    status = octoprint.parse_status(printer, job)
    assert isinstance(status, PrinterStatus)
    for field, value in expected.items():
        assert getattr(status, field) == value, field


def test_octoprint_temperatures() -> None:
    status = octoprint.parse_status(octo_printer(tool=214.93, bed=59.8), octo_job())
    assert status.hotend_actual == 214.9
    assert status.hotend_target == 0.0
    assert status.bed_actual == 59.8
    assert status.bed_target is None  # OctoPrint sends target: null


@pytest.mark.parametrize(
    ("printer", "job", "expected"),
    [
        pytest.param(
            octo_printer(tool="hot", bed=float("nan")),
            octo_job(),
            {"hotend_actual": None, "bed_actual": None, "state": State.IDLE},
            id="temps-not-numbers",
        ),
        pytest.param(
            octo_printer(tool=-300, bed=9999),
            octo_job(),
            {"hotend_actual": None, "bed_actual": None},
            id="temps-absurd",
        ),
        pytest.param(
            octo_printer("Printing", "operational", "printing"),
            octo_job("Printing", path="a.gcode", completion="50", print_time="10", left=-5),
            {"state": State.PRINTING, "progress": None, "elapsed": None, "remaining": None},
            id="progress-strings-and-negative",
        ),
        pytest.param(
            octo_printer("Printing", "operational", "printing"),
            octo_job("Printing", path="a.gcode", completion=150.0),
            {"progress": 100.0},
            id="completion-above-100",
        ),
        pytest.param(
            {"state": {"text": "Printing", "flags": "yes"}, "temperature": []},
            octo_job("Printing"),
            {"state": State.PRINTING, "hotend_actual": None},
            id="flags-not-an-object-falls-back-to-text",
        ),
        pytest.param(
            {"state": {"text": "Paused"}},
            octo_job("Paused"),
            {"state": State.PAUSED},
            id="no-flags-text-paused",
        ),
        pytest.param(
            {"state": {"flags": {"printing": "true"}, "text": "Operational"}},
            octo_job(),
            {"state": State.IDLE},
            id="string-flag-is-not-true",
        ),
        pytest.param(
            {},
            {"job": None, "progress": None, "state": None},
            {"state": State.CONNECTING, "message": "OctoPrint reported no printer state", "file": ""},
            id="empty-replies",
        ),
        pytest.param(
            {"state": {"text": "Levitating"}},
            octo_job("Levitating"),
            {"state": State.CONNECTING, "message": "Levitating"},
            id="unknown-text",
        ),
    ],
)
def test_octoprint_garbage_reads_as_unknown(printer: dict, job: dict, expected: dict[str, Any]) -> None:
    status = octoprint.parse_status(printer, job)
    for field, value in expected.items():
        assert getattr(status, field) == value, field


@pytest.mark.parametrize(
    ("printer", "job"),
    [(octo_printer(), None), (octo_printer(), []), ([], octo_job()), ("ok", octo_job())],
    ids=["job-null", "job-list", "printer-list", "printer-string"],
)
def test_octoprint_wrong_envelope_is_driver_error(printer: object, job: object) -> None:
    with pytest.raises(DriverError, match="unexpected reply"):
        octoprint.parse_status(printer, job)
