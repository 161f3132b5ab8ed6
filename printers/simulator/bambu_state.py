"""What a simulated Bambu printer reports: its `print` push_status object built from the shared
SimPrinter state machine, its AMS, and the codes its firmware uses.

Field names, types and shapes follow what X1/P1/A1 firmware sends (OpenBambuAPI mqtt.md, the
push_status example; ha-bambulab pybambu/models.py for `ams`, `vt_tray`, `hms`, `fun`). Numbers
that firmware sends as strings are strings here too (`gcode_file_prepare_percent`, fan speeds,
AMS ids and humidity, `tray_now`), so a client that forgets to coerce fails here first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from printers.simulator.printer import CANCELLED, COMPLETE, ERROR, PAUSED, PRINTING, SimPrinter

PREPARE_SECONDS = 60.0  # simulated seconds from project_file to the first layer
PREPARE_FILE_SHARE = 0.25  # of PREPARE: "downloading"/unzipping the file (gcode_file_prepare_percent)

# stg_cur sub-stages (ha-bambulab const.py CURRENT_STAGE_IDS)
STAGE_IDLE = -1  # X1 firmware sends -1 idle, P1 255
STAGE_PRINTING = 0
STAGE_BED_LEVELLING = 1
STAGE_HEATBED_PREHEATING = 2
STAGE_FILAMENT_RUNOUT = 6
STAGE_HEATING_HOTEND = 7
STAGE_PAUSED_BY_USER = 16

FUN_BASE = 0x3EC18FFF9CFF  # a real X1C's `fun` with the signature bit cleared
FUN_SIGNATURE_REQUIRED = 0x20000000  # set: LAN-only + Developer Mode is off (2025+ firmware)

# Codes chosen by the simulator in the firmware's shapes (print_error int; HMS attr/code ints
# whose hex reads AAAA_BBBB_CCCC_DDDD); the real values for these cases are not documented.
PRINT_ERROR_FILE_MISSING = 0x0500_C010  # 83935248: file on the SD card not found / unreadable
PRINT_ERROR_PLATE_MISSING = 0x0500_C011
HMS_FILE_MISSING = (0x0500_0300, 0x0002_0010)
# A print halted by a fault (SimPrinter's ERROR: the nozzle stopped heating). Bambu reports a
# failure as a code and an HMS entry, never as text; a user's stop has print_error 0.
PRINT_ERROR_HALTED = 0x0300_8002
HMS_NOZZLE_HEATER = (0x0300_0200, 0x0001_0002)  # "nozzle temperature abnormal, heater open circuit"
HMS_VERIFICATION_FAILED = (0x0500_0400, 0x0001_0012)  # "MQTT command verification failed"
HMS_FILAMENT_RUNOUT = (0x0700_2000, 0x0002_0001)  # AMS A slot 1 filament has run out
ERR_VERIFICATION_FAILED = 84033543  # 0x05024007, the err_code rejected commands carry

AMBIENT_CHAMBER = 24.0


@dataclass(slots=True)
class TraySpec:
    """One AMS slot (or the external spool) as the farm's control API sets it."""

    type: str = ""  # "" = empty slot
    colour: str = ""  # "RRGGBBAA"
    remain: int = -1  # percent; -1 unknown (a non-Bambu spool)

    def as_dict(self, tray_id: int) -> dict[str, Any]:
        if not self.type:
            return {"id": str(tray_id)}  # firmware sends only the id for an empty slot
        return {
            "id": str(tray_id),
            "tray_type": self.type,
            "tray_sub_brands": f"{self.type} Basic",
            "tray_color": self.colour,
            "tray_info_idx": TRAY_INFO_IDX.get(self.type, "GFL99"),
            "tray_weight": "1000",
            "tray_diameter": "1.75",
            "nozzle_temp_min": "190" if self.type == "PLA" else "220",
            "nozzle_temp_max": "230" if self.type == "PLA" else "260",
            "remain": self.remain,
        }


TRAY_INFO_IDX = {"PLA": "GFA00", "PETG": "GFG00", "ABS": "GFB00", "TPU": "GFU01"}
BLACK, WHITE = "000000FF", "FFFFFFFF"


def default_trays(index: int) -> list[TraySpec]:
    """One AMS unit of four slots: PLA black, PLA white, PETG black, empty; rotated by printer
    index so a farm does not read all the same."""
    trays = [TraySpec("PLA", BLACK, 80), TraySpec("PLA", WHITE, 55), TraySpec("PETG", BLACK, 30), TraySpec()]
    shift = index % 4
    return trays[shift:] + trays[:shift]


@dataclass(slots=True)
class BambuJob:
    """What the firmware knows about the current or last print beyond SimPrinter's clock."""

    subtask_name: str = ""
    gcode_file: str = ""
    task_id: str = "0"
    total_layers: int = 0
    plate_seconds: float = 0.0
    prepare_seconds: float = PREPARE_SECONDS
    ams_mapping: list[int] = field(default_factory=list)
    print_error: int = 0  # a start that failed (file or plate missing) without a print
    pause_stage: int = STAGE_PAUSED_BY_USER


def gcode_state(printer: SimPrinter, job: BambuJob, now: float) -> str:
    state = printer.job_state
    if state == PRINTING:
        return "PREPARE" if printer.print_duration(now) < job.prepare_seconds else "RUNNING"
    if state == PAUSED:
        return "PAUSE"
    if state == COMPLETE:
        return "FINISH"
    if state in (CANCELLED, ERROR) or job.print_error:
        return "FAILED"  # a user's stop too, told apart by print_error 0
    return "IDLE"


def print_error(printer: SimPrinter, job: BambuJob) -> int:
    """The failed start's code, else the code of a print halted by a fault; 0 for a user stop."""
    if job.print_error:
        return job.print_error
    return PRINT_ERROR_HALTED if printer.job_state == ERROR else 0


def _stage(printer: SimPrinter, job: BambuJob, now: float, state: str, *, x1: bool) -> int:
    if state == "PAUSE":
        return job.pause_stage
    if state == "PREPARE":
        share = printer.print_duration(now) / job.prepare_seconds
        if share < 0.4:
            return STAGE_HEATBED_PREHEATING
        return STAGE_HEATING_HOTEND if share < 0.7 else STAGE_BED_LEVELLING
    if state == "RUNNING":
        return STAGE_PRINTING
    return STAGE_IDLE if x1 else 255


def print_status(
    printer: SimPrinter,
    job: BambuJob,
    now: float,
    *,
    x1: bool,
    trays: list[TraySpec],
    external: TraySpec,
    light_on: bool,
    dev_mode: bool,
    hms: list[tuple[int, int]],
    wifi: int,
) -> dict[str, Any]:
    """The full `print` object of a push_status report (without command/msg/sequence_id)."""
    state = gcode_state(printer, job, now)
    printed = printer.print_duration(now)
    plate_done = max(0.0, printed - job.prepare_seconds)
    fraction = min(1.0, plate_done / job.plate_seconds) if job.plate_seconds > 0 else 0.0
    if state == "FINISH":
        fraction = 1.0
    remaining = max(0.0, job.plate_seconds - plate_done) if state in ("PREPARE", "RUNNING", "PAUSE") else 0.0
    prepare = (
        min(100, int(printed / (job.prepare_seconds * PREPARE_FILE_SHARE) * 100)) if printer.job_file else 0
    )
    layer = 0
    if state in ("RUNNING", "PAUSE", "FINISH", "FAILED") and job.total_layers and printer.job_file:
        layer = max(1, min(job.total_layers, math.ceil(fraction * job.total_layers))) if plate_done > 0 else 0
    bed = printer.bed.temperature(now)
    tray_now = _tray_now(job, state)
    error = print_error(printer, job)
    status: dict[str, Any] = {
        "gcode_state": state,
        "stg_cur": _stage(printer, job, now, state, x1=x1),
        "mc_print_stage": "2" if state in ("PREPARE", "RUNNING", "PAUSE") else "1",
        "mc_percent": int(fraction * 100) if printer.job_file else 0,
        "mc_remaining_time": math.ceil(remaining / 60),
        "layer_num": layer,
        "total_layer_num": job.total_layers if printer.job_file else 0,
        "gcode_file": job.gcode_file,
        "gcode_file_prepare_percent": str(prepare),
        "subtask_name": job.subtask_name,
        "task_id": job.task_id,
        "subtask_id": job.task_id,
        "project_id": "0",
        "profile_id": "0",
        "print_type": "local" if printer.job_file else "idle",
        "nozzle_temper": printer.extruder.temperature(now),
        "nozzle_target_temper": round(printer.extruder.target, 1),
        "bed_temper": bed,
        "bed_target_temper": round(printer.bed.target, 1),
        "print_error": error,
        "mc_print_error_code": str(error),
        "hms": [{"attr": attr, "code": code} for attr, code in hms],
        "fun": f"{FUN_BASE | (0 if dev_mode else FUN_SIGNATURE_REQUIRED):X}",
        "spd_lvl": 2,
        "spd_mag": 100,
        "cooling_fan_speed": "15" if state == "RUNNING" else "0",
        "heatbreak_fan_speed": "15" if printer.extruder.target else "0",
        "big_fan1_speed": "0",
        "big_fan2_speed": "0",
        "wifi_signal": f"-{wifi}dBm",
        "sdcard": True,
        "home_flag": 0,
        "lights_report": [
            {"node": "chamber_light", "mode": "on" if light_on else "off"},
            {"node": "work_light", "mode": "off"},
        ],
        "ams": {
            "ams": [
                {
                    "id": "0",
                    "humidity": "4",
                    "temp": "24.5",
                    "tray": [tray.as_dict(slot) for slot, tray in enumerate(trays)],
                }
            ],
            "ams_exist_bits": "1",
            "tray_exist_bits": f"{sum(1 << i for i, t in enumerate(trays) if t.type):x}",
            "tray_now": tray_now,
            "tray_tar": tray_now,
            "version": 4,
        },
        "vt_tray": external.as_dict(254),
        "ipcam": {"ipcam_dev": "1", "ipcam_record": "enable", "timelapse": "disable"},
    }
    if x1:  # P1 and A1 have no chamber sensor and do not send the key
        status["chamber_temper"] = round(AMBIENT_CHAMBER + max(0.0, bed - AMBIENT_CHAMBER) * 0.2, 1)
    return status


def _tray_now(job: BambuJob, state: str) -> str:
    """The loaded tray while printing: the first mapped one; "255" none (firmware's value)."""
    if state in ("RUNNING", "PAUSE") and job.ams_mapping:
        first = next((t for t in job.ams_mapping if isinstance(t, int) and t >= 0), None)
        if first is not None:
            return str(first)
    return "255"
