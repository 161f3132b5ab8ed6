"""Klipper's printer objects as Moonraker's /printer/objects/query returns them, built lazily."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from printers.simulator.printer import FILAMENT_PER_SECOND, PAUSED, PRINTING, READY, STARTUP, SimPrinter


def webhooks_state(printer: SimPrinter) -> tuple[str, str]:
    if printer.link == READY:
        return "ready", "Printer is ready"
    if printer.link == STARTUP:
        return "startup", printer.link_message or "Printer is restarting"
    return "shutdown", printer.link_message


def printer_objects(printer: SimPrinter, now: float) -> dict[str, Callable[[], dict[str, Any]]]:
    """Lazy builders of Klipper's printer objects (only requested ones are computed)."""

    def webhooks() -> dict[str, Any]:
        state, message = webhooks_state(printer)
        return {"state": state, "state_message": message}

    def print_stats() -> dict[str, Any]:
        duration = printer.klipper_duration(printer.print_duration(now))
        return {
            "filename": printer.job_file,
            "total_duration": round(printer.total_duration(now), 3),
            "print_duration": round(duration, 3),
            "filament_used": round(duration * FILAMENT_PER_SECOND, 2),
            "state": printer.job_state,
            "message": printer.job_message,
            "info": {"total_layer": None, "current_layer": None},
        }

    def virtual_sdcard() -> dict[str, Any]:
        progress = printer.progress(now) if printer.job_file else 0.0
        return {
            "file_path": str(printer.file_path(printer.job_file)) if printer.busy else None,
            "progress": round(progress, 4),
            "is_active": printer.job_state == PRINTING,
            "file_position": int(printer.job_size * progress),
            "file_size": printer.job_size,
        }

    def display_status() -> dict[str, Any]:
        progress = printer.progress(now) if printer.job_file else 0.0
        return {"progress": round(progress, 4), "message": None}

    def extruder() -> dict[str, Any]:
        heater = printer.extruder
        return {
            "temperature": heater.temperature(now),
            "target": heater.target,
            "power": heater.power(now),
            "can_extrude": heater.temperature(now) >= 170.0,
            "pressure_advance": 0.04,
            "smooth_time": 0.04,
        }

    def heater_bed() -> dict[str, Any]:
        heater = printer.bed
        return {"temperature": heater.temperature(now), "target": heater.target, "power": heater.power(now)}

    def pause_resume() -> dict[str, Any]:
        return {"is_paused": printer.job_state == PAUSED}

    def idle_timeout() -> dict[str, Any]:
        state = "Printing" if printer.job_state == PRINTING else "Ready" if printer.busy else "Idle"
        return {"state": state, "printing_time": round(printer.print_duration(now), 3)}

    def toolhead() -> dict[str, Any]:
        return {
            "homed_axes": "xyz" if printer.busy else "",
            "position": [0.0, 0.0, 0.0, 0.0],
            "print_time": round(now, 3),
            "estimated_print_time": round(now, 3),
            "max_velocity": 300.0,
            "max_accel": 3000.0,
        }

    return {
        "webhooks": webhooks,
        "print_stats": print_stats,
        "virtual_sdcard": virtual_sdcard,
        "display_status": display_status,
        "extruder": extruder,
        "heater_bed": heater_bed,
        "pause_resume": pause_resume,
        "idle_timeout": idle_timeout,
        "toolhead": toolhead,
    }


OBJECT_NAMES = (
    "webhooks",
    "print_stats",
    "virtual_sdcard",
    "display_status",
    "extruder",
    "heater_bed",
    "pause_resume",
    "idle_timeout",
    "toolhead",
)
