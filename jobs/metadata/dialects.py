"""Each slicer's way of writing its metadata: converters from its text, and for each field the
places to look, best first."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

from jobs.metadata.fields import Getter, Rules

# --- values: converters from the slicers' text

_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_DHMS = re.compile(r"(?:(\d+)d\s*)?(?:(\d+)h\s*)?(?:(\d+)m\s*)?(?:(\d+)s)?")
_S3D_TIME = re.compile(r"(?:(\d+) hours?)?\s*(?:(\d+) minutes?)?\s*(?:(\d+) seconds?)?")


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def _first_number(text: str) -> float | None:
    return _number(re.split(r"[,;]", text, maxsplit=1)[0])


def _numbers(text: str) -> list[float] | None:
    numbers = []
    for part in text.split(","):
        if (number := _number(part)) is None:
            return None
        numbers.append(number)
    return numbers


def _number_sum(text: str) -> float | None:
    """One value per extruder, comma separated: the print uses their sum."""
    numbers = _numbers(text)
    return None if numbers is None else sum(numbers)


def _metres_sum(text: str) -> float | None:
    """Cura's "1.2m, 0.5m"; its volumetric flavour writes "mm3", which is no length."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.endswith("m") for part in parts):
        return None
    metres = _number_sum(",".join(part[:-1] for part in parts))
    return None if metres is None else metres * 1000


def _first_text(text: str) -> str:
    """PrusaSlicer and Orca list one filament per extruder, ";" separated, sometimes quoted."""
    return text.split(";", 1)[0].strip().strip('"').strip()


def _units_to_seconds(match: re.Match[str] | None, units: tuple[int, ...]) -> int | None:
    if match is None or not any(match.groups()):
        return None
    return sum(int(value) * unit for value, unit in zip(match.groups(), units, strict=True) if value)


def _duration(text: str) -> int | None:
    """PrusaSlicer/Orca's "1d 2h 3m 4s"."""
    return _units_to_seconds(_DHMS.fullmatch(text.strip()), (86400, 3600, 60, 1))


def _s3d_duration(text: str) -> int | None:
    """Simplify3D's "1 hours 2 minutes"."""
    return _units_to_seconds(_S3D_TIME.fullmatch(text.strip()), (3600, 60, 1))


def _leading(unit: str) -> Callable[[str], float | None]:
    """Simplify3D's "1234.5 mm (1.23 m)": the first quantity, which must be in `unit`."""

    def convert(text: str) -> float | None:
        parts = text.split()
        return _number(parts[0]) if parts[1:2] == [unit] else None

    return convert


# --- per-slicer tables: for each field, the places to look, best first


def _key(name: str, convert: Callable[[str], object]) -> Getter:
    return lambda values: convert(values[name]) if name in values else None


# Orca and Bambu keep the first-layer bed temperature per plate type; curr_bed_type names the plate.
_PLATE_KEYS = {
    "cool plate": "cool_plate_temp_initial_layer",
    "engineering plate": "eng_plate_temp_initial_layer",
    "high temp plate": "hot_plate_temp_initial_layer",
    "textured pei plate": "textured_plate_temp_initial_layer",
    "textured cool plate": "textured_cool_plate_temp_initial_layer",
    "supertack plate": "supertack_plate_temp_initial_layer",
    "cool plate (supertack)": "supertack_plate_temp_initial_layer",
}


def _plate_bed_temperature(values: Mapping[str, str]) -> float | None:
    key = _PLATE_KEYS.get(values.get("curr_bed_type", "").strip().lower(), "")
    return _first_number(values[key]) if key in values else None


def _first_train(suffix: str) -> Getter:
    """Cura's UltiMaker header lists only the extruders used; take the lowest-numbered one."""
    pattern = re.compile(rf"extruder_train\.(\d+)\.{re.escape(suffix)}")

    def get(values: Mapping[str, str]) -> float | None:
        trains = {int(m[1]): raw for key, raw in values.items() if (m := pattern.fullmatch(key))}
        return _number(trains[min(trains)]) if trains else None

    return get


def _griffin_filament_mm(values: Mapping[str, str]) -> float | None:
    """The UltiMaker header gives volume (mm³) only; UltiMaker printers take 2.85 mm filament."""
    volume = _number_sum(
        ",".join(raw for key, raw in values.items() if key.endswith(".material.volume_used"))
    )
    return None if volume is None else volume / (math.pi * (2.85 / 2) ** 2)


def _simplify3d_first_layer(*, bed: bool) -> Getter:
    """Each heater has temperatureSetpointCount setpoints, flattened into one list; the first is layer 1."""

    def get(values: Mapping[str, str]) -> float | None:
        is_bed = _numbers(values.get("temperatureheatedbed", ""))
        counts = _numbers(values.get("temperaturesetpointcount", ""))
        temperatures = values.get("temperaturesetpointtemperatures", "").split(",")
        if is_bed is None or counts is None or len(is_bed) != len(counts) or sum(counts) != len(temperatures):
            return None
        offset = 0
        for heater_is_bed, count in zip(is_bed, counts, strict=True):
            if bool(heater_is_bed) == bed:
                return _number(temperatures[offset])
            offset += int(count)
        return None

    return get


PRUSA: Rules = (
    ("estimated_seconds", _key("estimated printing time (normal mode)", _duration)),
    ("filament_mm", _key("filament used [mm]", _number_sum)),
    ("filament_g", _key("total filament used [g]", _number)),
    ("filament_g", _key("filament used [g]", _number_sum)),
    ("filament_type", _key("filament_type", _first_text)),
    ("layer_height", _key("layer_height", _number)),
    ("nozzle_diameter", _key("nozzle_diameter", _first_number)),
    ("first_layer_hotend", _key("first_layer_temperature", _first_number)),
    ("first_layer_bed", _key("first_layer_bed_temperature", _first_number)),
    # Printed by Prusa's end G-code (and bgcode's printer block); max_print_height is the printer's.
    ("object_height", _key("max_layer_z", _number)),
)
_ORCA: Rules = (
    ("estimated_seconds", _key("total estimated time", _duration)),  # Bambu header, prepare included
    ("estimated_seconds", _key("estimated printing time (normal mode)", _duration)),  # Orca footer
    ("estimated_seconds", _key("model printing time", _duration)),
    ("filament_mm", _key("total filament length [mm]", _number_sum)),
    ("filament_mm", _key("filament used [mm]", _number_sum)),
    ("filament_g", _key("total filament weight [g]", _number_sum)),
    ("filament_g", _key("total filament used [g]", _number)),
    ("filament_g", _key("filament used [g]", _number_sum)),
    ("filament_type", _key("filament_type", _first_text)),
    ("layer_height", _key("layer_height", _number)),
    ("nozzle_diameter", _key("nozzle_diameter", _first_number)),
    ("first_layer_hotend", _key("nozzle_temperature_initial_layer", _first_number)),
    ("first_layer_bed", _key("bed_temperature_initial_layer_single", _first_number)),
    ("first_layer_bed", _plate_bed_temperature),
    ("object_height", _key("max_z_height", _number)),
    ("object_height", _key("max_layer_z", _number)),
)
_CURA: Rules = (  # keys are lower-cased: ";PRINT.TIME:" is "print.time"
    ("estimated_seconds", _key("print.time", _number)),
    ("estimated_seconds", _key("time", _number)),
    ("filament_mm", _key("filament used", _metres_sum)),
    ("filament_mm", _griffin_filament_mm),
    ("layer_height", _key("layer height", _number)),
    ("nozzle_diameter", _first_train("nozzle.diameter")),
    ("first_layer_hotend", _first_train("initial_temperature")),
    ("first_layer_bed", _key("build_plate.initial_temperature", _number)),
    ("object_height", _key("print.size.max.z", _number)),
    ("object_height", _key("maxz", _number)),
)
_SIMPLIFY3D: Rules = (
    ("estimated_seconds", _key("build time", _s3d_duration)),
    ("filament_mm", _key("filament length", _leading("mm"))),
    ("filament_mm", _key("material length", _leading("mm"))),  # version 5 wording
    ("filament_g", _key("plastic weight", _leading("g"))),
    ("filament_g", _key("material weight", _leading("g"))),
    ("filament_type", _key("printmaterial", _first_text)),
    ("layer_height", _key("layerheight", _number)),
    ("nozzle_diameter", _key("extruderdiameter", _first_number)),
    ("first_layer_hotend", _simplify3d_first_layer(bed=False)),
    ("first_layer_bed", _simplify3d_first_layer(bed=True)),
)
DIALECTS: dict[str, Rules] = {
    "PrusaSlicer": PRUSA,
    "SuperSlicer": PRUSA,
    "OrcaSlicer": _ORCA,
    "BambuStudio": _ORCA,
    "Cura": _CURA,
    "Simplify3D": _SIMPLIFY3D,
}
