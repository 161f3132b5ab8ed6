"""Bambu Lab reports turned into a PrinterStatus: the merged `print` object, its stages, its
error and HMS codes, and the AMS trays (printer-protocols.md §4.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from printers.state import EXTERNAL_TRAY, PrinterStatus, State, Tray, clean_percent, clean_seconds, clean_temp

# `stg_cur`: what the printer is doing inside RUNNING / PAUSE (ha-bambulab const.py,
# bambulabs_api states_info.py; X1/P1/A1 firmware 01.0x). 0 is plain printing, 255/-1 idle.
STAGES: dict[int, str] = {
    1: "Auto bed levelling",
    2: "Heating the bed",
    3: "Sweeping XY mech mode",
    4: "Changing filament",
    5: "Paused (M400)",
    6: "Paused: filament ran out",
    7: "Heating the hotend",
    8: "Calibrating extrusion",
    9: "Scanning the bed surface",
    10: "Inspecting the first layer",
    11: "Identifying the build plate",
    12: "Calibrating the micro lidar",
    13: "Homing the toolhead",
    14: "Cleaning the nozzle tip",
    15: "Checking the extruder temperature",
    16: "Paused by the user",
    17: "Paused: the front cover fell off",
    18: "Calibrating the micro lidar",
    19: "Calibrating extrusion flow",
    20: "Paused: nozzle temperature malfunction",
    21: "Paused: bed temperature malfunction",
    22: "Unloading filament",
    23: "Paused: skipped step",
    24: "Loading filament",
    25: "Calibrating motor noise",
    26: "Paused: AMS lost",
    27: "Paused: heat break fan too slow",
    28: "Paused: chamber temperature control error",
    29: "Cooling the chamber",
    30: "Paused by G-code",
    31: "Motor noise showoff",
    32: "Paused: filament covering the nozzle",
    33: "Paused: cutter error",
    34: "Paused: first layer defects",
    35: "Paused: nozzle clog",
}

# `print_error` values an operator meets most (Bambu Lab wiki, ha-bambulab), as "AAAA_BBBB"
# of the 32-bit code. Others are shown by code.
PRINT_ERRORS: dict[str, str] = {
    "0300_400C": "Print cancelled",
    "0500_400E": "Print cancelled",
    "0300_4000": "Printing stopped because homing the Z axis failed",
    "0300_8014": "The nozzle is covered with filament or the build plate is installed wrongly",
    "0300_800A": "A filament pile-up was detected by the AI print monitoring",
    "0500_4002": "The printer can't read that file path or name",
    "0500_C010": "The SD card could not be read or written",
    "07FF_8011": "The external spool ran out of filament; load new filament",
    "0700_8011": "AMS filament ran out; load new filament",
    "0C00_8001": "First layer defects were detected",
}
CANCELLED = frozenset({"0300_400C", "0500_400E"})

# First byte of an HMS `attr`: the module that raised it (Bambu Lab wiki, HMS codes).
HMS_MODULES: dict[int, str] = {
    0x03: "Motion controller",
    0x05: "Mainboard",
    0x07: "AMS",
    0x08: "Toolhead",
    0x0C: "Camera",
    0x10: "Heatbed",
    0x12: "AMS",
}
# Second 16 bits of an HMS `code`: its severity.
HMS_SEVERITY = {1: "fatal", 2: "serious", 3: "warning", 4: "notice"}
IDLE_STAGES = frozenset({-1, 255})


def merge(into: dict[str, Any], delta: Mapping[str, Any]) -> None:
    """Apply a P1/A1 delta report (only changed keys) onto the merged `print` object."""
    for key, value in delta.items():
        current = into.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merge(current, value)
        else:
            into[key] = value


def _int(value: object) -> int | None:
    """Bambu sends many numbers as strings ("4", "255"); bools are not numbers here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _count(value: object) -> int | None:
    number = _int(value)
    return number if number is not None and 0 <= number < 1_000_000 else None


def hms_code(attr: int, code: int) -> str:
    return f"{attr >> 16:04X}_{attr & 0xFFFF:04X}_{code >> 16:04X}_{code & 0xFFFF:04X}"


def hms_text(entry: object) -> str:
    """One `hms` list entry ({attr, code}) in words: module, severity and code."""
    if not isinstance(entry, Mapping):
        return ""
    attr, code = _int(entry.get("attr")), _int(entry.get("code"))
    if attr is None or code is None or not 0 <= attr < 2**32 or not 0 <= code < 2**32:
        return ""
    module = HMS_MODULES.get(attr >> 24, "Printer")
    if module == "AMS":
        module = f"AMS {((attr >> 16) & 0xFF) + 1}"
    severity = HMS_SEVERITY.get(code >> 16, "")
    kind = f"{severity} alert" if severity else "alert"
    # No link: the operator reads the detail on the printer's screen or the Bambu wiki.
    return f"{module} {kind} HMS {hms_code(attr, code)} (details on the printer's screen)"


def print_error_text(value: object) -> str:
    code = _int(value)
    if not code or not 0 < code < 2**32:
        return ""
    key = f"{code >> 16:04X}_{code & 0xFFFF:04X}"
    return PRINT_ERRORS.get(key, f"Printer error {key} (details on the printer's screen)")


def _colour(value: object) -> str:
    """RRGGBBAA (Bambu) -> #RRGGBB."""
    if not isinstance(value, str) or len(value) < 6:
        return ""
    hex_part = value[:6]
    try:
        int(hex_part, 16)
    except ValueError:
        return ""
    return f"#{hex_part.upper()}"


def _tray(raw: Mapping[str, Any], tray_id: int, active: int | None) -> Tray:
    remain = _int(raw.get("remain"))
    return Tray(
        id=tray_id,
        type=raw.get("tray_type") if isinstance(raw.get("tray_type"), str) else "",
        colour=_colour(raw.get("tray_color")),
        remaining=remain if remain is not None and 0 <= remain <= 100 else None,  # -1: unknown
        active=tray_id == active,
    )


def trays(report: Mapping[str, Any]) -> tuple[Tray, ...]:
    """The AMS trays (id = unit * 4 + slot) and the external spool, when loaded."""
    found: list[Tray] = []
    ams = report.get("ams")
    active = _int(ams.get("tray_now")) if isinstance(ams, Mapping) else None
    units = ams.get("ams") if isinstance(ams, Mapping) else None
    for unit in units if isinstance(units, list) else []:
        unit_id = _int(unit.get("id")) if isinstance(unit, Mapping) else None
        slots = unit.get("tray") if unit_id is not None and 0 <= unit_id < 64 else None
        for slot in slots if isinstance(slots, list) else []:
            slot_id = _int(slot.get("id")) if isinstance(slot, Mapping) else None
            if slot_id is not None and 0 <= slot_id < 4:
                found.append(_tray(slot, unit_id * 4 + slot_id, active))
    external = report.get("vt_tray")
    if isinstance(external, Mapping) and external.get("tray_type"):
        found.append(_tray(external, EXTERNAL_TRAY, active))
    return tuple(found)


def file_name(report: Mapping[str, Any]) -> str:
    """The printing file's name on the card. A plain G-code print reports it in `gcode_file`
    ("/sdcard/cube.gcode"); a 3MF's `gcode_file` is its plate ("/data/Metadata/plate_1.gcode"),
    so its name is the `subtask_name` it was started with (printfarm sends the file's name)."""
    gcode_file = report.get("gcode_file")
    subtask = report.get("subtask_name")
    if isinstance(gcode_file, str) and gcode_file and "Metadata/" not in gcode_file:
        for prefix in ("file://", "/mnt", "/sdcard/", "/"):
            gcode_file = gcode_file.removeprefix(prefix)
        return gcode_file
    return subtask if isinstance(subtask, str) else ""


def _state(report: Mapping[str, Any]) -> tuple[State, str]:
    gcode_state = str(report.get("gcode_state") or "").upper()
    stage = _int(report.get("stg_cur"))
    stage_text = STAGES.get(stage, "") if stage is not None else ""
    error = print_error_text(report.get("print_error"))
    if gcode_state == "IDLE":
        return State.IDLE, ""
    if gcode_state == "PREPARE":
        percent = _count(report.get("gcode_file_prepare_percent"))
        return State.PRINTING, f"Preparing ({percent} %)" if percent else "Preparing"
    if gcode_state in {"RUNNING", "SLICING"}:
        return State.PRINTING, stage_text
    if gcode_state == "PAUSE":
        return State.PAUSED, error or stage_text or "Paused"
    if gcode_state == "FINISH":
        return State.FINISHED, ""
    if gcode_state == "FAILED":
        code = _int(report.get("print_error")) or 0
        # A user's stop ends in FAILED too, with print_error 0 or "cancelled" (X1/P1 01.0x).
        if not code or f"{code >> 16:04X}_{code & 0xFFFF:04X}" in CANCELLED:
            return State.IDLE, "Print cancelled"
        return State.ERROR, error
    # INIT, OFFLINE, UNKNOWN or a value this code doesn't know: firmware not ready.
    return State.CONNECTING, f"Printer state {gcode_state}" if gcode_state else "Waiting for a full report"


def status_from_report(report: Mapping[str, Any], *, firmware: str = "") -> PrinterStatus:
    """The merged `print` object as a PrinterStatus."""
    state, message = _state(report)
    hms = report.get("hms")
    alerts = [text for text in map(hms_text, hms) if text] if isinstance(hms, list) else []
    if alerts:
        shown = "; ".join(alerts[:2]) + (f" (+{len(alerts) - 2} more)" if len(alerts) > 2 else "")
        message = f"{message}. {shown}" if message else shown
    percent = _count(report.get("mc_percent"))
    minutes = _count(report.get("mc_remaining_time"))
    running = state in State.RUNNING
    return PrinterStatus(
        state=state,
        message=message,
        hotend_actual=clean_temp(report.get("nozzle_temper")),
        hotend_target=clean_temp(report.get("nozzle_target_temper")),
        bed_actual=clean_temp(report.get("bed_temper")),
        bed_target=clean_temp(report.get("bed_target_temper")),
        chamber_actual=clean_temp(report.get("chamber_temper")),
        progress=clean_percent(percent) if running or state == State.FINISHED else None,
        remaining=clean_seconds(minutes * 60) if running and minutes is not None else None,
        file=file_name(report) if state != State.IDLE else "",
        layer=_count(report.get("layer_num")) if running else None,
        layer_count=_count(report.get("total_layer_num")) if running or state == State.FINISHED else None,
        trays=trays(report),
        light=chamber_light(report),
        firmware=firmware,
    )


def chamber_light(report: Mapping[str, Any]) -> bool | None:
    """`lights_report: [{"node": "chamber_light", "mode": "on"|"off"|"flashing"}, ...]`."""
    lights = report.get("lights_report")
    for light in lights if isinstance(lights, list) else []:
        if isinstance(light, Mapping) and light.get("node") == "chamber_light":
            mode = light.get("mode")
            return mode in {"on", "flashing"} if isinstance(mode, str) else None
    return None


def firmware_from_version(info: Mapping[str, Any]) -> str:
    """`get_version` reply -> "Bambu Lab 01.07.00.00" (the `ota` module is the firmware)."""
    modules = info.get("module")
    for module in modules if isinstance(modules, list) else []:
        if (
            isinstance(module, Mapping)
            and module.get("name") == "ota"
            and isinstance(module.get("sw_ver"), str)
        ):
            return f"Bambu Lab firmware {module['sw_ver']}"[:200]
    return ""
