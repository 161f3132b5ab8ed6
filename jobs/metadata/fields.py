"""What a file's metadata is: the record, the sanity limits each field must pass, and the
pick of the first valid value from a slicer's rules."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Thumbnail:
    width: int
    height: int
    format: str  # "png", "jpg" or "qoi" as found in the file
    data: bytes  # decoded image bytes


@dataclass(frozen=True, slots=True)
class Filament:
    """One filament slot a print uses (an extruder, or an AMS slot in a 3MF)."""

    slot: int  # 1-based, as the slicer numbers them
    type: str = ""  # "PLA", "PETG", ...
    colour: str = ""  # "#RRGGBB"
    grams: float | None = None
    mm: float | None = None


@dataclass(frozen=True, slots=True)
class Plate:
    """One plate of a 3MF print file (Metadata/plate_<index>.gcode): one job each."""

    index: int  # 1-based, as in the member names
    name: str = ""
    estimated_seconds: int | None = None
    filament_g: float | None = None
    object_height: float | None = None
    filaments: tuple[Filament, ...] = ()
    thumbnail: Thumbnail | None = None


@dataclass(frozen=True, slots=True)
class GcodeMetadata:
    slicer: str = ""
    slicer_version: str = ""
    estimated_seconds: int | None = None
    filament_mm: float | None = None
    filament_g: float | None = None
    filament_type: str = ""
    layer_height: float | None = None
    nozzle_diameter: float | None = None
    first_layer_hotend: float | None = None
    first_layer_bed: float | None = None
    object_height: float | None = None
    printer_model: str = ""  # the printer it was sliced for, as the slicer names it
    filaments: tuple[Filament, ...] = ()
    plates: tuple[Plate, ...] = ()  # a 3MF's; empty for plain G-code
    thumbnails: tuple[Thumbnail, ...] = ()

    def best_thumbnail(self) -> Thumbnail | None:
        """The largest thumbnail; at equal size PNG/JPG beat QOI, which browsers can't show."""
        return max(self.thumbnails, key=lambda t: (t.width * t.height, t.format != "qoi"), default=None)


# The sanity limits every field must pass: past them a value is a misread, not a print.
_LIMITS = {
    "estimated_seconds": 365 * 24 * 3600,
    "filament_mm": 10_000_000.0,  # 10 km
    "filament_g": 100_000.0,
    "layer_height": 5.0,
    "nozzle_diameter": 5.0,
    "first_layer_hotend": 600.0,
    "first_layer_bed": 600.0,
    "object_height": 10_000.0,
}


_TEXT_LIMITS = {"filament_type": 40, "printer_model": 80}

# Floats are rounded to a thousandth (a micron, a milligram): past what any slicer prints, so
# 1.23456 m reads 1234.56 mm, not 1234.5600000000002, and 0.075 mm layers stay 0.075.
_DECIMALS = 3


def valid(field: str, value: object) -> bool:
    """Whether `value` can be the field's: a GcodeMetadata field's, or a Filament's under the
    matching name ("filament_type", "filament_g", "filament_mm")."""
    if field in _TEXT_LIMITS:
        text = value if isinstance(value, str) else ""
        return 0 < len(text) <= _TEXT_LIMITS[field] and text.isprintable() and "\ufffd" not in text
    # Zero means "unknown" or "off" in every slicer (Bambu writes 0.00 g without a density).
    return isinstance(value, int | float) and math.isfinite(value) and 0 < value <= _LIMITS[field]


_valid = valid  # the name jobs.metadata.threemf imports


def _rounded(value: Any) -> Any:
    return round(value, _DECIMALS) if isinstance(value, float) else value


Getter = Callable[[Mapping[str, str]], object]
Rules = tuple[tuple[str, Getter], ...]


def build(
    rules: Rules,
    values: Mapping[str, str],
    fallbacks: Mapping[str, float | None],
    slicer: str,
    version: str,
    thumbnails: list[Thumbnail],
    *,
    filaments: tuple[Filament, ...] = (),
) -> GcodeMetadata:
    """The first valid value for each field, from the rules in order, then the fallbacks."""
    fields: dict[str, Any] = {}
    for field, get in rules:
        if field not in fields and valid(field, value := get(values)):
            fields[field] = value
    for field, value in fallbacks.items():
        if field not in fields and valid(field, value):
            fields[field] = value
    fields = {field: _rounded(value) for field, value in fields.items()}
    if "estimated_seconds" in fields:
        fields["estimated_seconds"] = round(fields["estimated_seconds"])
    slots = tuple(replace(f, grams=_rounded(f.grams), mm=_rounded(f.mm)) for f in filaments)
    return GcodeMetadata(slicer, version, filaments=slots, thumbnails=tuple(thumbnails), **fields)
