"""What a file's metadata is: the record, the sanity limits each field must pass, and the
pick of the first valid value from a slicer's rules."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


def _valid(field: str, value: object) -> bool:
    if field == "filament_type":
        return (
            isinstance(value, str) and 0 < len(value) <= 40 and value.isprintable() and "\ufffd" not in value
        )
    # Zero means "unknown" or "off" in every slicer (Bambu writes 0.00 g without a density).
    return isinstance(value, int | float) and math.isfinite(value) and 0 < value <= _LIMITS[field]


Getter = Callable[[Mapping[str, str]], object]
Rules = tuple[tuple[str, Getter], ...]


def build(
    rules: Rules,
    values: Mapping[str, str],
    fallbacks: Mapping[str, float | None],
    slicer: str,
    version: str,
    thumbnails: list[Thumbnail],
) -> GcodeMetadata:
    """The first valid value for each field, from the rules in order, then the fallbacks."""
    fields: dict[str, Any] = {}
    for field, get in rules:
        if field not in fields and _valid(field, value := get(values)):
            fields[field] = value
    for field, value in fallbacks.items():
        if field not in fields and _valid(field, value):
            fields[field] = value
    if "estimated_seconds" in fields:
        fields["estimated_seconds"] = round(fields["estimated_seconds"])
    return GcodeMetadata(slicer, version, thumbnails=tuple(thumbnails), **fields)
