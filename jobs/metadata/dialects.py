"""Each slicer's way of writing its metadata: converters from its text, and for each field the
places to look, best first."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jobs.metadata.fields import Filament, Getter, Rules, valid

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
    return _texts(text)[0]


def _texts(text: str) -> list[str]:
    return [part.strip().strip('"').strip() for part in text.split(";")]


def _text(text: str) -> str:
    return text.strip()


def _float(text: str) -> float | None:
    """Any float, signed or in exponent form (CuraEngine's "-2.14748e+06"): for comparisons only."""
    try:
        return float(text)
    except ValueError:
        return None


def _last_number(text: str) -> float | None:
    return _number(text.split()[-1]) if text.split() else None


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


_CURA_DIAMETER = re.compile(r"material_diameter = (\d+(?:\.\d+)?)")


def _cura_filament_area(values: Mapping[str, str]) -> float:
    """mm² of the filament: the diameter Cura's settings block (";SETTING_3") names when the profile
    sets one, else the 2.85 mm every UltiMaker printer takes."""
    match = _CURA_DIAMETER.search(values.get("setting_3", ""))
    diameter = float(match[1]) if match and 0 < float(match[1]) < 5 else 2.85
    return math.pi * (diameter / 2) ** 2


def _griffin_volumes(values: Mapping[str, str]) -> dict[int, float]:
    """mm³ per extruder train, from the UltiMaker header."""
    pattern = re.compile(r"extruder_train\.(\d+)\.material\.volume_used")
    volumes = {}
    for key, raw in values.items():
        if (match := pattern.fullmatch(key)) and (volume := _number(raw)) is not None:
            volumes[int(match[1])] = volume
    return volumes


def _griffin_filament_mm(values: Mapping[str, str]) -> float | None:
    """The UltiMaker header gives volume (mm³) only."""
    volumes = _griffin_volumes(values)
    return sum(volumes.values()) / _cura_filament_area(values) if volumes else None


def _cura_placeholder(values: Mapping[str, str]) -> bool:
    """From the command line CuraEngine writes its header before slicing: ";TIME:6666",
    ";Filament used: 0m" and a bounding box never grown (min > max); its UltiMaker header has no
    time and a stand-in 0-0.01 mm box instead. None of these values is the print's."""
    low, high = _float(values.get("minx", "")), _float(values.get("maxx", ""))
    if low is not None and high is not None and low > high:
        return True
    box = [values.get(f"print.size.{end}.{axis}") for end in ("min", "max") for axis in "xyz"]
    return box == ["0", "0", "0", "0.01", "0.01", "0.01"]


def _unless_cura_placeholder(get: Getter) -> Getter:
    return lambda values: None if _cura_placeholder(values) else get(values)


def _simplify3d_5_first_layer(heater: str) -> Getter:
    """Version 5 writes a block per heater; its setpoints are "layer|temperature", layer 1's first."""

    def get(values: Mapping[str, str]) -> float | None:
        types = values.get("temperaturetype", "").split("\n")
        setpoints = values.get("temperaturesetpoints", "").split("\n")
        if len(types) != len(setpoints):
            return None
        for kind, points in zip(types, setpoints, strict=True):
            if kind.strip().lower() == heater:
                return _number(points.split(",")[0].partition("|")[2])
        return None

    return get


def _ideamaker_dimension(values: Mapping[str, str]) -> float | None:
    """ ";Dimension: 305.000 305.000 300.000 0.400 0.400": the bed, then each extruder's nozzle."""
    parts = values.get("dimension", "").split()
    return _number(parts[3]) if len(parts) > 3 else None


def _sum_of(slots: Callable[[Mapping[str, str]], tuple[Filament, ...]], unit: str) -> Getter:
    def get(values: Mapping[str, str]) -> float | None:
        amounts = [getattr(slot, unit) for slot in slots(values) if getattr(slot, unit) is not None]
        return sum(amounts) if amounts else None

    return get


def _minutes(text: str) -> float | None:
    """KISSlicer's "2.50 minutes"."""
    parts = text.split()
    number = _number(parts[0]) if parts[1:2] == ["minutes"] else None
    return None if number is None else number * 60


def _slic3r_amounts(values: Mapping[str, str], unit: str) -> list[float]:
    """Slic3r 1.x writes "; filament used = 81.6mm (0.2cm3)" and "; filament used = 0.2g" per extruder."""
    pattern = re.compile(rf"(\d+(?:\.\d+)?){unit}\b.*")
    lines = values.get("filament used@all", "").split("\n")
    return [float(match[1]) for line in lines if (match := pattern.fullmatch(line.strip()))]


# --- filament slots: what each extruder or AMS slot holds and feeds


def _colour(text: str) -> str:
    """ "#RRGGBB", upper case; Orca and Bambu may add an alpha byte."""
    text = text.strip().upper()
    return text[:7] if re.fullmatch(r"#[0-9A-F]{6}(?:[0-9A-F]{2})?", text) else ""


def _at(items: Sequence[Any], index: int) -> Any:
    return items[index] if index < len(items) else None


def _slots(
    *,
    types: Sequence[str] = (),
    colours: Sequence[str] = (),
    grams: Sequence[float | None] = (),
    mm: Sequence[float | None] = (),
) -> tuple[Filament, ...]:
    """One Filament per slot. When the file says how much each slot feeds, a slot feeding nothing
    is no material the print needs and is left out; a slot about which nothing valid is known too."""
    fed_known = any(valid("filament_g", g) for g in grams) or any(valid("filament_mm", m) for m in mm)
    slots = []
    for index in range(max(len(types), len(colours), len(grams), len(mm))):
        kind, colour = _at(types, index) or "", _colour(_at(colours, index) or "")
        slot_g, slot_mm = _at(grams, index), _at(mm, index)
        slot_g = slot_g if valid("filament_g", slot_g) else None
        slot_mm = slot_mm if valid("filament_mm", slot_mm) else None
        kind = kind if valid("filament_type", kind) else ""
        if fed_known and slot_g is None and slot_mm is None:
            continue
        if kind or colour or slot_g or slot_mm:
            slots.append(Filament(index + 1, kind, colour, slot_g, slot_mm))
    return tuple(slots)


def _list(values: Mapping[str, str], key: str, split: Callable[[str], list[Any]]) -> list[Any]:
    return split(values[key]) if key in values else []


def _numbers_or_none(text: str) -> list[float | None]:
    return [_number(part) for part in text.split(",")]


def _prusa_slots(values: Mapping[str, str]) -> tuple[Filament, ...]:
    return _slots(
        types=_list(values, "filament_type", _texts),
        colours=_list(values, "filament_colour", _texts),
        grams=_list(values, "filament used [g]", _numbers_or_none),
        mm=_list(values, "filament used [mm]", _numbers_or_none),
    )


def _slic3r_slots(values: Mapping[str, str]) -> tuple[Filament, ...]:
    mm, grams = _slic3r_amounts(values, "mm"), _slic3r_amounts(values, "g")
    return _slots(
        types=_list(values, "filament_type", _texts),
        colours=_list(values, "filament_colour", _texts),
        grams=grams if len(grams) == len(mm) else [],  # no weight without a density: nothing to pair
        mm=mm,
    )


def _cura_slots(values: Mapping[str, str]) -> tuple[Filament, ...]:
    if _cura_placeholder(values):
        return ()
    if volumes := _griffin_volumes(values):
        area = _cura_filament_area(values)
        return _slots(mm=[volumes[i] / area if i in volumes else None for i in range(max(volumes) + 1)])
    metres = [part.strip() for part in values.get("filament used", "").split(",")]
    return _slots(mm=[_metres_sum(part) for part in metres if part])


def _simplify3d_slots(values: Mapping[str, str]) -> tuple[Filament, ...]:
    """Simplify3D gives totals only: the print's one material as slot 1."""

    def total(field: str) -> float | None:
        found = (get(values) for name, get in _SIMPLIFY3D_TOTALS if name == field)
        return next((amount for amount in found if isinstance(amount, float)), None)

    return _slots(
        types=[_first_text(values.get("printmaterial", ""))],
        grams=[total("filament_g")],
        mm=[total("filament_mm")],
    )


def _ideamaker_slots(values: Mapping[str, str]) -> tuple[Filament, ...]:
    """ ";Material#1 Used: 1234.5" mm per extruder; grams from the diameter and density it names."""
    used = {int(m[1]): values[key] for key in values if (m := re.fullmatch(r"material#(\d+) used", key))}
    if not used:
        return ()
    types, grams, mm = [], [], []
    for slot in range(1, max(used) + 1):
        length = _number(used.get(slot, ""))
        diameter = _number(values.get(f"filament diameter #{slot}", ""))
        density = _number(values.get(f"filament density #{slot}", ""))
        types.append(values.get(f"filament type #{slot}", ""))
        mm.append(length)
        weight = None
        if length is not None and diameter is not None and density is not None:
            weight = math.pi * (diameter / 2) ** 2 * length * density / 1000  # mm³ · g/cm³
        grams.append(weight)
    return _slots(types=types, grams=grams, mm=mm)


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
    ("printer_model", _key("printer_model", _text)),
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
    ("printer_model", _key("printer_model", _text)),
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
    ("printer_model", _key("target_machine.name", _text)),
    ("estimated_seconds", _unless_cura_placeholder(_key("print.time", _number))),
    ("estimated_seconds", _unless_cura_placeholder(_key("time", _number))),
    # Written after each layer, the last is the whole print's (the end G-code aside).
    ("estimated_seconds", _key("time_elapsed@last", _number)),
    ("filament_mm", _unless_cura_placeholder(_key("filament used", _metres_sum))),
    ("filament_mm", _griffin_filament_mm),
    ("layer_height", _key("layer height", _number)),
    ("nozzle_diameter", _first_train("nozzle.diameter")),
    ("first_layer_hotend", _first_train("initial_temperature")),
    ("first_layer_bed", _key("build_plate.initial_temperature", _number)),
    ("object_height", _unless_cura_placeholder(_key("print.size.max.z", _number))),
    ("object_height", _unless_cura_placeholder(_key("maxz", _number))),
)
_SIMPLIFY3D_TOTALS: Rules = (
    ("filament_mm", _key("filament length", _leading("mm"))),
    ("filament_mm", _key("material length", _leading("mm"))),  # version 5 wording
    ("filament_g", _key("plastic weight", _leading("g"))),
    ("filament_g", _key("material weight", _leading("g"))),
)
_SIMPLIFY3D: Rules = (
    ("estimated_seconds", _key("build time", _s3d_duration)),
    *_SIMPLIFY3D_TOTALS,
    ("filament_type", _key("printmaterial", _first_text)),
    ("layer_height", _key("layerheight", _number)),
    ("nozzle_diameter", _key("extruderdiameter", _first_number)),
    ("nozzle_diameter", _key("nozzlediameter", _first_number)),
    ("first_layer_hotend", _simplify3d_first_layer(bed=False)),
    ("first_layer_bed", _simplify3d_first_layer(bed=True)),
    ("first_layer_hotend", _simplify3d_5_first_layer("extruder")),
    ("first_layer_bed", _simplify3d_5_first_layer("platform")),
)
_SLIC3R: Rules = (
    ("filament_mm", lambda values: sum(_slic3r_amounts(values, "mm")) or None),
    ("filament_g", lambda values: sum(_slic3r_amounts(values, "g")) or None),
    # The C++ 1.3.1-dev builds' wording.
    (
        "filament_mm",
        _key("filament_length_m", lambda text: None if (m := _number(text)) is None else m * 1000),
    ),
    ("filament_g", _key("filament mass_g", _number)),
    *PRUSA,  # the config block's keys are PrusaSlicer's, which started as a Slic3r fork
)
_IDEAMAKER: Rules = (
    ("printer_model", _key("printer type", _text)),
    ("estimated_seconds", _key("print time", _number)),
    ("filament_mm", _sum_of(_ideamaker_slots, "mm")),
    ("filament_g", _sum_of(_ideamaker_slots, "grams")),
    ("filament_type", _key("filament type #1", _text)),
    ("nozzle_diameter", _ideamaker_dimension),
    ("object_height", _key("bounding box", _last_number)),  # "xmin xmax ymin ymax zmin zmax"
)
_KISSLICER: Rules = (
    ("estimated_seconds", _key("estimated build time", _minutes)),
    ("estimated_seconds", _key("calculated-during-export build time", _minutes)),
    ("layer_height", _key("layer_thickness_mm", _number)),
    ("layer_height", _key("max_layer_thickness_mm", _number)),
    ("first_layer_hotend", _key("first_layer_c", _number)),
    ("first_layer_bed", _key("bed_c", _number)),
)
DIALECTS: dict[str, Rules] = {
    "PrusaSlicer": PRUSA,
    "SuperSlicer": PRUSA,
    "OrcaSlicer": _ORCA,
    "BambuStudio": _ORCA,
    "Cura": _CURA,
    "Simplify3D": _SIMPLIFY3D,
    "Slic3r": _SLIC3R,
    "Slic3r Prusa Edition": _SLIC3R,
    "ideaMaker": _IDEAMAKER,
    "KISSlicer": _KISSLICER,
}
Slots = Callable[[Mapping[str, str]], tuple[Filament, ...]]
FILAMENTS: dict[str, Slots] = {
    "PrusaSlicer": _prusa_slots,
    "SuperSlicer": _prusa_slots,
    "OrcaSlicer": _prusa_slots,
    "BambuStudio": _prusa_slots,
    "Cura": _cura_slots,
    "Simplify3D": _simplify3d_slots,
    "Slic3r": _slic3r_slots,
    "Slic3r Prusa Edition": _slic3r_slots,
    "ideaMaker": _ideamaker_slots,
}
