"""Slicer metadata (time, filament, temperatures, thumbnails) read from G-code and binary G-code."""

from __future__ import annotations

import binascii
import math
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

HEAD_BYTES = 1024 * 1024  # slicer thumbnails can be several hundred KB of base64
TAIL_BYTES = 256 * 1024  # PrusaSlicer's config block alone is 40-60 KB


@dataclass(frozen=True, slots=True)
class Thumbnail:
    width: int
    height: int
    format: str  # "png", "jpg" or "qoi" as found in the file
    data: bytes  # decoded image bytes


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
    thumbnails: tuple[Thumbnail, ...] = ()

    def best_thumbnail(self) -> Thumbnail | None:
        """The largest thumbnail; at equal size PNG/JPG beat QOI, which browsers can't show."""
        return max(self.thumbnails, key=lambda t: (t.width * t.height, t.format != "qoi"), default=None)


def read_metadata(path: str | os.PathLike[str]) -> GcodeMetadata:
    """Read a text or binary G-code file's metadata; only its head and tail are read."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= HEAD_BYTES + TAIL_BYTES:
            head, tail = f.read(), b""
        else:
            head = f.read(HEAD_BYTES)
            # One byte more than the tail, so parse_text can tell a whole first line from a cut one.
            f.seek(size - TAIL_BYTES - 1)
            tail = f.read(TAIL_BYTES + 1)
    if head.startswith(_BGCODE_MAGIC):
        return _parse_bgcode(head)
    return parse_text(head, tail)


def parse_text(head: bytes, tail: bytes) -> GcodeMetadata:
    """Parse text G-code given its start and, for a file too big to read whole, its end.

    A non-empty tail means the file was cut between the two: the head's last line and the tail's
    first line (up to its first newline) may be partial and are dropped.
    """
    if tail:
        head = head[: head.rfind(b"\n") + 1]
        newline = tail.find(b"\n")
        tail = tail[newline + 1 :] if newline >= 0 else b""
    scan = _TextScan()
    scan.feed(head.decode("utf-8", "replace").lstrip("\ufeff"), commands=True)
    scan.feed(tail.decode("utf-8", "replace"), commands=False)
    # The UltiMaker header names Cura on one line and its version on the next.
    version = scan.version or (scan.values.get("generator.version", "")[:40] if scan.slicer == "Cura" else "")
    fallbacks = {"first_layer_hotend": scan.hotend, "first_layer_bed": scan.bed}
    rules = _DIALECTS.get(scan.slicer, ())
    return _build(rules, scan.values, fallbacks, scan.slicer, version, scan.thumbnails)


# --- values: converters from the slicers' text, and the sanity limits every field must pass

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


# --- per-slicer tables: for each field, the places to look, best first

Getter = Callable[[Mapping[str, str]], object]
Rules = tuple[tuple[str, Getter], ...]


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


_PRUSA: Rules = (
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
_DIALECTS: dict[str, Rules] = {
    "PrusaSlicer": _PRUSA,
    "SuperSlicer": _PRUSA,
    "OrcaSlicer": _ORCA,
    "BambuStudio": _ORCA,
    "Cura": _CURA,
    "Simplify3D": _SIMPLIFY3D,
}


def _build(
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


# --- thumbnails, shared by text and binary G-code

_IMAGE_MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff", "qoi": b"qoif"}
# Slicers write a few hundred pixels a side; a decoder allocates what the image header claims.
MAX_THUMBNAIL_SIDE = 8192
MAX_THUMBNAIL_PIXELS = 4096 * 4096
# JPEG frame headers (SOF0-15) carry the size; C4, C8 and CC are other segments.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def thumbnail_size_ok(width: int, height: int) -> bool:
    """Small enough to decode on a Raspberry Pi and to send to a browser."""
    sides_ok = 0 < width <= MAX_THUMBNAIL_SIDE and 0 < height <= MAX_THUMBNAIL_SIDE
    return sides_ok and width * height <= MAX_THUMBNAIL_PIXELS


def _thumbnail(fmt: str, width: int, height: int, data: bytes) -> Thumbnail | None:
    if not (thumbnail_size_ok(width, height) and data.startswith(_IMAGE_MAGIC[fmt])):
        return None
    # The block's begin line can say 300x300 while the image header says 13000x13000.
    size = image_size(fmt, data)
    if size is None or not thumbnail_size_ok(*size):
        return None
    return Thumbnail(width, height, fmt, data)


def image_size(fmt: str, data: bytes) -> tuple[int, int] | None:
    """(width, height) as the image's own header declares it; None if there is no readable header."""
    if fmt == "png":
        return struct.unpack_from(">II", data, 16) if data[12:16] == b"IHDR" and len(data) >= 24 else None
    if fmt == "qoi":
        return struct.unpack_from(">II", data, 4) if len(data) >= 12 else None
    pos = 2  # JPEG: walk the segments after SOI up to the frame header
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
        elif marker in _JPEG_FRAMES:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        elif marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame header
            return None
        else:
            pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return None


@dataclass(slots=True)
class _Block:
    tag: str
    width: int
    height: int
    length: int  # of the base64 text, as the begin line declares it
    chunks: list[str]
    size: int = 0


# --- text G-code

_GENERATORS = (
    re.compile(r";\s*generated by (PrusaSlicer|SuperSlicer|OrcaSlicer) (\S+)"),
    re.compile(r";\s*(BambuStudio) (\S+)"),
    re.compile(r";(?:Generated with |GENERATOR\.NAME:)(Cura)_SteamEngine[ \t]*(\S*)"),
    re.compile(r";\s*G-Code generated by (Simplify3D)\(R\) Version (\S+)"),
)
_THUMB_BEGIN = re.compile(r";\s*(thumbnail|thumbnail_QOI|thumbnail_JPG) begin (\d+)x(\d+) (\d+)")
_THUMB_FORMATS = {"thumbnail": "png", "thumbnail_QOI": "qoi", "thumbnail_JPG": "jpg"}
_BASE64 = re.compile(r"[A-Za-z0-9+/=]+")
_S3D_SETTING = re.compile(r"\s+(\w+),(.*)")  # ";   layerHeight,0.2"
_TEMPERATURE = re.compile(r"M(104|109|140|190)\b[^;]*?\bS(\d+(?:\.\d+)?)")


class _TextScan:
    """One pass over the lines: comment key/values, thumbnail blocks, the first heater commands."""

    def __init__(self) -> None:
        self.slicer = ""
        self.version = ""
        self.values: dict[str, str] = {}
        self.thumbnails: list[Thumbnail] = []
        self.hotend: float | None = None
        self.bed: float | None = None
        self._block: _Block | None = None

    def feed(self, text: str, *, commands: bool) -> None:
        self._block = None  # a block left open at the end of the head never ends
        for raw in text.splitlines():
            line = raw.strip()
            if not line.startswith(";"):
                if commands and line.startswith(("M104", "M109", "M140", "M190")):
                    self._heater(line)
            elif not self._thumbnail_line(line):
                if not self.slicer:
                    self._generator(line)
                self._comment(line[1:])

    def _generator(self, line: str) -> None:
        for pattern in _GENERATORS:
            if match := pattern.match(line):
                self.slicer, self.version = match[1], match[2][:40]
                return

    def _comment(self, body: str) -> None:
        if match := _S3D_SETTING.fullmatch(body):
            self._store(match[1], match[2])
            return
        equals, colon = body.find("="), body.find(":")
        if equals >= 0 and (colon < 0 or equals < colon):
            self._store(body[:equals], body[equals + 1 :])
        elif colon >= 0:
            # Bambu puts two on a line: "; model printing time: 52m 30s; total estimated time: 1h 2m 3s"
            for pair in body.split(";"):
                key, sep, value = pair.partition(":")
                if sep:
                    self._store(key, value)

    def _store(self, key: str, value: str) -> None:
        # Keys are lower-cased: Simplify3D 5 writes "Build Time" where 4 wrote "Build time".
        self.values.setdefault(key.strip().lower(), value.strip())

    def _heater(self, line: str) -> None:
        """The first heater commands stand in when no comment gives the first-layer temperatures."""
        match = _TEMPERATURE.match(line)
        if match is None or (value := float(match[2])) <= 0:
            return
        if match[1] in ("104", "109"):
            self.hotend = self.hotend or value
        else:
            self.bed = self.bed or value

    def _thumbnail_line(self, line: str) -> bool:
        """Feed a line to the thumbnail block it belongs to; False if it belongs to none."""
        if match := _THUMB_BEGIN.match(line):
            self._block = _Block(match[1], int(match[2]), int(match[3]), int(match[4]), [])
            return True
        block = self._block
        if block is None:
            return False
        text = line[1:].strip()
        if text == f"{block.tag} end":
            self._block = None
            self._finish(block)
            return True
        if not _BASE64.fullmatch(text) or block.size + len(text) > block.length:
            self._block = None  # a cut or corrupt block: give up on it, read the line normally
            return False
        block.chunks.append(text)
        block.size += len(text)
        return True

    def _finish(self, block: _Block) -> None:
        encoded = "".join(block.chunks)
        try:
            data = binascii.a2b_base64(encoded, strict_mode=True)
        except binascii.Error:
            return
        # Strict mode still lets a stray "=" through; only canonical base64 encodes back the same.
        if block.size != block.length or binascii.b2a_base64(data, newline=False).decode() != encoded:
            return
        if thumbnail := _thumbnail(_THUMB_FORMATS[block.tag], block.width, block.height, data):
            self.thumbnails.append(thumbnail)


# --- binary G-code (libbgcode): metadata and thumbnail blocks precede the G-code blocks

_BGCODE_MAGIC = b"GCDE"
_BLOCK_GCODE, _BLOCK_THUMBNAIL = 1, 5
_BGCODE_FORMATS = {0: "png", 1: "jpg", 2: "qoi"}
_MAX_BLOCK = 16 * 1024 * 1024


def _parse_bgcode(data: bytes) -> GcodeMetadata:
    if len(data) < 10:
        return GcodeMetadata()
    (checksum_type,) = struct.unpack_from("<H", data, 8)
    if checksum_type > 1:  # 0 none, 1 CRC32
        return GcodeMetadata()
    values: dict[str, str] = {}
    thumbnails: list[Thumbnail] = []
    for block_type, params, payload in _bgcode_blocks(data, crc_size=4 * checksum_type):
        if block_type == _BLOCK_THUMBNAIL:
            fmt, width, height = struct.unpack("<HHH", params)
            if fmt in _BGCODE_FORMATS and (
                thumbnail := _thumbnail(_BGCODE_FORMATS[fmt], width, height, payload)
            ):
                thumbnails.append(thumbnail)
        elif params == b"\x00\x00":  # INI encoding: "key=value" lines
            for line in payload.decode("utf-8", "replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values.setdefault(key.strip().lower(), value.strip())
    producer, _, version = values.get("producer", "").partition(" ")  # "PrusaSlicer 2.7.1"
    if producer not in _DIALECTS:
        producer = version = ""
    # The metadata keys are libbgcode's, i.e. PrusaSlicer's, whoever produced the file.
    return _build(_PRUSA, values, {}, producer, version.strip()[:40], thumbnails)


def _bgcode_blocks(data: bytes, *, crc_size: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(type, parameters, uncompressed payload) of each readable block before the G-code."""
    pos = 10
    while pos + 8 <= len(data):
        block_type, compression, size = struct.unpack_from("<HHI", data, pos)
        header = 8 if compression == 0 else 12
        if block_type == _BLOCK_GCODE or block_type > 5 or compression > 3 or pos + header > len(data):
            return
        stored = size if compression == 0 else struct.unpack_from("<I", data, pos + 8)[0]
        params_end = pos + header + (6 if block_type == _BLOCK_THUMBNAIL else 2)
        end = params_end + stored + crc_size
        if end > len(data):
            return  # runs past the head: what follows is G-code anyway
        # The CRC32 covers header, parameters and data; a damaged block is skipped, not trusted.
        crc = int.from_bytes(data[end - crc_size : end], "little")
        if not crc_size or zlib.crc32(data[pos : end - crc_size]) == crc:
            payload = _inflate(data[params_end : end - crc_size], compression, size)
            if payload is not None:
                yield block_type, data[pos + header : params_end], payload
        pos = end


def _inflate(stored: bytes, compression: int, size: int) -> bytes | None:
    if compression == 0:
        return stored
    if compression != 1 or size > _MAX_BLOCK:  # heatshrink (2, 3) is only worth it for G-code blocks
        return None
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(stored, size)
    except zlib.error:
        return None
    return data if len(data) == size and inflater.eof else None
