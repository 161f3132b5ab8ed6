"""3MF print files (`.gcode.3mf` from Bambu Studio and OrcaSlicer, PrusaSlicer's sliced plate):
a zip whose `Metadata/plate_<n>.gcode` members are what printers print.

Nothing is extracted whole: each member is read as a stream with a byte cap, and a plate's G-code
only for its head and tail. An archive that is unsafe or unprintable raises `ArchiveRefused`,
whose message is the upload's answer.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from xml.parsers import expat

from jobs.metadata.fields import Filament, GcodeMetadata, Plate, Thumbnail, _valid
from jobs.metadata.text import parse_text
from jobs.metadata.thumbnails import checked_thumbnail, image_size

logger = logging.getLogger(__name__)

# A zip bomb declares (or hides) far more bytes than it holds. Real G-code deflates 3-10x;
# the limits leave room for a 2 GB upload of many plates and refuse what no slicer writes.
MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 16 * 1024**3  # declared uncompressed, all members together
MAX_RATIO = 100  # uncompressed/compressed, for members big enough for it to matter
RATIO_FROM_BYTES = 1024 * 1024
MAX_PLATES = 200
# Caps on the members read whole; a bigger one is skipped, not trusted.
XML_MAX_BYTES = 4 * 1024 * 1024
SETTINGS_MAX_BYTES = 8 * 1024 * 1024
IMAGE_MAX_BYTES = 8 * 1024 * 1024
CHUNK = 256 * 1024

PLATE_GCODE = re.compile(r"Metadata/plate_(\d+)\.gcode")
_COLOUR = re.compile(r"#?([0-9A-Fa-f]{6})(?:[0-9A-Fa-f]{2})?")

# Bambu's printer_model_id (slice_info.config) -> the printer's name as its slicer profile calls
# it. Source: Bambu Studio resources/profiles/BBL/machine/*.json "model_id"; H2 codes as the
# printers report them over MQTT (ha-bambulab).
BAMBU_MODELS = {
    "BL-P001": "Bambu Lab X1 Carbon",
    "BL-P002": "Bambu Lab X1",
    "C13": "Bambu Lab X1E",
    "C11": "Bambu Lab P1P",
    "C12": "Bambu Lab P1S",
    "N7": "Bambu Lab P2S",
    "N1": "Bambu Lab A1 mini",
    "N2S": "Bambu Lab A1",
    "O1D": "Bambu Lab H2D",
    "O1E": "Bambu Lab H2D Pro",
    "O2D": "Bambu Lab H2D Pro",
    "O1S": "Bambu Lab H2S",
    "O1C": "Bambu Lab H2C",
    "O1C2": "Bambu Lab H2C",
}


class ArchiveRefused(ValueError):
    """A 3MF that can't be stored; the message says why, for the person who uploaded it."""


def plate_member(index: int) -> str:
    return f"Metadata/plate_{index}.gcode"


def read_threemf(path: str | os.PathLike[str], *, head_bytes: int, tail_bytes: int) -> GcodeMetadata:
    """A 3MF's metadata: one Plate per sliced plate; the file's totals (time, filament) are the
    sum of its plates, the rest (slicer, temperatures, nozzle, thumbnail) plate 1's."""
    with _archive(path) as archive:
        members = _checked_members(archive)
        indexes = sorted(int(m[1]) for name in members if (m := PLATE_GCODE.fullmatch(name)))
        if not indexes:
            raise ArchiveRefused(
                "a 3MF without sliced G-code (no Metadata/plate_N.gcode): slice it and export the "
                'plate\'s G-code 3MF ("Export plate sliced file").'
            )
        if len(indexes) > MAX_PLATES:
            raise ArchiveRefused(f"more than {MAX_PLATES} plates; nothing was stored.")
        info = _parse_config_plates(
            _read_small(archive, members.get("Metadata/slice_info.config"), XML_MAX_BYTES)
        )
        names = _parse_config_plates(
            _read_small(archive, members.get("Metadata/model_settings.config"), XML_MAX_BYTES)
        )
        project = _project_settings(
            _read_small(archive, members.get("Metadata/project_settings.config"), SETTINGS_MAX_BYTES)
        )
        plates: list[Plate] = []
        metas: list[GcodeMetadata] = []
        for index in indexes:
            meta = _plate_gcode(archive, members[plate_member(index)], head_bytes, tail_bytes)
            metas.append(meta)
            image = _read_small(archive, members.get(f"Metadata/plate_{index}.png"), IMAGE_MAX_BYTES)
            plates.append(
                _plate(index, meta, info.get(index), names.get(index), _png(image) if image else None)
            )
    first = metas[0]
    model, nozzle = _printer_model(info, project, first), _nozzle(info, project, first)
    return _file_metadata(metas, plates, model, nozzle)


# -- the archive ---------------------------------------------------------------------------------


@contextmanager
def _archive(path: str | os.PathLike[str]) -> Iterator[zipfile.ZipFile]:
    """The open zip; every way a zip can be unreadable becomes one message."""
    try:
        with zipfile.ZipFile(path) as archive:
            yield archive
    except ArchiveRefused:
        raise
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        logger.info("Unreadable 3MF %s: %s", path, exc)
        raise ArchiveRefused(
            "not a readable 3MF: the file is not a zip archive, or it is truncated or corrupt; "
            "nothing was stored."
        ) from exc
    except (NotImplementedError, RuntimeError) as exc:  # an unknown compression, an encrypted member
        raise ArchiveRefused(f"a 3MF this farm can't read ({exc}); nothing was stored.") from exc


def _checked_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """name -> member, after refusing unsafe names and zip bombs (by the declared sizes; the reads
    are capped too, since declarations can lie)."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ArchiveRefused(f"a 3MF with more than {MAX_MEMBERS} members; nothing was stored.")
    total = 0
    for info in infos:
        if _unsafe_name(info.filename):
            raise ArchiveRefused(
                f"a 3MF member has an unsafe name ({info.filename[:80]!r}); nothing was stored."
            )
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FROM_BYTES and ratio > MAX_RATIO:
            raise ArchiveRefused(
                f"a 3MF member ({info.filename[:80]}) expands {ratio:.0f} times: refused as a zip bomb; "
                "nothing was stored."
            )
    if total > MAX_TOTAL_BYTES:
        raise ArchiveRefused(
            f"a 3MF that expands to {total / 1024**3:.0f} GB: refused as a zip bomb; nothing was stored."
        )
    return {info.filename: info for info in infos if not info.is_dir()}


def _unsafe_name(name: str) -> bool:
    """A name that would leave the folder it is extracted to, wherever it is extracted."""
    parts = name.split("/")
    return (
        "\\" in name
        or name.startswith("/")
        or ".." in parts
        or re.match(r"[A-Za-z]:", name) is not None
        or not name.isprintable()
    )


def _read_small(archive: zipfile.ZipFile, info: zipfile.ZipInfo | None, cap: int) -> bytes:
    """A member read whole, or b"" when absent or bigger than `cap` (declared or actual)."""
    if info is None or info.file_size > cap:
        return b""
    with archive.open(info) as stream:
        data = stream.read(cap + 1)
    return data if len(data) <= cap else b""


CONFIG_END = b"; CONFIG_BLOCK_END"


def _plate_gcode(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, head_bytes: int, tail_bytes: int
) -> GcodeMetadata:
    """The plate's G-code metadata from its head and its last `tail_bytes` (+1, as parse_text wants),
    decompressed as a stream: memory stays at head + tail whatever the plate's size."""
    with archive.open(info) as stream:
        head = stream.read(head_bytes)
        if len(head) == head_bytes and CONFIG_END in head:
            # Bambu Studio and OrcaSlicer write their whole header and config first: the tail
            # (reached only by inflating the whole plate) has nothing more to say. The plate's
            # CRC is still checked when it is taken out for a printer (extract_plate).
            return parse_text(head, b"\n")
        window = bytearray()
        rest = 0
        while chunk := stream.read(CHUNK):
            rest += len(chunk)
            if len(head) + rest > info.file_size:  # zipfile stops at the declared size; in case
                raise ArchiveRefused("a 3MF member is longer than it declares; nothing was stored.")
            window += chunk
            del window[: max(0, len(window) - tail_bytes - 1)]
    if rest <= tail_bytes:
        return parse_text(head + bytes(window), b"")
    return parse_text(head, bytes(window))


def extract_plate(path: str | os.PathLike[str], index: int, target: str | os.PathLike[str]) -> None:
    """Write one plate's G-code to `target`, decompressed a chunk at a time (for printers that
    take G-code, not the 3MF)."""
    with _archive(path) as archive:
        info = _checked_members(archive).get(plate_member(index))
        if info is None:
            raise ArchiveRefused(f"the 3MF has no plate {index}")
        with archive.open(info) as stream, open(target, "wb") as out:
            shutil.copyfileobj(stream, out, CHUNK)


# -- the configs ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _ConfigPlate:
    """A `<plate>` of slice_info.config or model_settings.config."""

    depth: int
    values: dict[str, str] = field(default_factory=dict)  # its <metadata key= value=/> children
    filaments: list[dict[str, str]] = field(default_factory=list)  # its <filament .../> children


class _NoDoctype(Exception):
    pass


def _parse_config_plates(data: bytes) -> dict[int, _ConfigPlate]:
    """plate index -> its metadata, from Bambu's XML configs; {} when absent or unreadable.

    expat without a DOCTYPE: no DTD means no entities, so nothing to expand (billion laughs) or
    fetch; the encoding is forced, so a declared UTF-16 can't hide a DOCTYPE from that check.
    """
    if not data:
        return {}
    plates: list[_ConfigPlate] = []
    depth = 0
    current: list[_ConfigPlate] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        if tag == "plate":
            current.append(_ConfigPlate(depth))
            plates.append(current[-1])
        elif current and depth == current[-1].depth + 1:
            if tag == "metadata":
                current[-1].values.setdefault(attrs.get("key", ""), attrs.get("value", ""))
            elif tag == "filament":
                current[-1].filaments.append(attrs)
        depth += 1

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        if tag == "plate" and current and current[-1].depth == depth:
            current.pop()

    def doctype(*args: object) -> None:
        raise _NoDoctype

    parser = expat.ParserCreate(encoding="utf-8")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(data, True)
    except (expat.ExpatError, _NoDoctype, ValueError) as exc:
        logger.info("Ignoring an unreadable 3MF config: %r", exc)
        return {}
    found = {}
    for plate in plates:
        index = _int(plate.values.get("index") or plate.values.get("plater_id"))
        if index is not None:
            found.setdefault(index, plate)
    return found


def _project_settings(data: bytes) -> dict[str, object]:
    """Bambu/Orca's project_settings.config: the full slicer config, as JSON."""
    if not data:
        return {}
    try:
        settings = json.loads(data)
    except ValueError:
        return {}
    return settings if isinstance(settings, dict) else {}


# -- values --------------------------------------------------------------------------------------


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _float(text: object) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _checked(field_name: str, value: object) -> object:
    return value if _valid(field_name, value) else None


def _first(value: object) -> object:
    """Settings per extruder come as a list, or a "0.4,0.4" string (H2D's two nozzles)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value.split(",")[0].split(";")[0] if isinstance(value, str) else value


def _filament(attrs: dict[str, str]) -> Filament | None:
    slot = _int(attrs.get("id"))
    if slot is None or not 0 < slot <= 64:
        return None
    kind = attrs.get("type", "").strip()
    colour = _COLOUR.fullmatch(attrs.get("color", "").strip())
    metres = _checked("filament_mm", _float(attrs.get("used_m")))
    return Filament(
        slot=slot,
        type=kind if _valid("filament_type", kind) else "",
        colour=f"#{colour[1].upper()}" if colour else "",
        grams=_checked("filament_g", _float(attrs.get("used_g"))),  # type: ignore[arg-type]
        mm=round(metres * 1000, 2) if isinstance(metres, float) else None,
    )


def _png(data: bytes) -> Thumbnail | None:
    size = image_size("png", data)
    return checked_thumbnail("png", *size, data) if size else None


def _plate(
    index: int,
    meta: GcodeMetadata,
    info: _ConfigPlate | None,
    settings: _ConfigPlate | None,
    image: Thumbnail | None,
) -> Plate:
    """A plate: slice_info's figures where it has them, its G-code header's otherwise."""
    values = info.values if info else {}
    seconds = _checked("estimated_seconds", _float(values.get("prediction")))
    grams = _checked("filament_g", _float(values.get("weight")))
    filaments = tuple(f for a in (info.filaments if info else ()) if (f := _filament(a))) or meta.filaments
    name = (settings.values.get("plater_name", "") if settings else "").strip()
    return Plate(
        index=index,
        name=name[:120] if name.isprintable() else "",
        estimated_seconds=round(seconds) if isinstance(seconds, float) else meta.estimated_seconds,
        filament_g=grams if isinstance(grams, float) else meta.filament_g,  # type: ignore[arg-type]
        object_height=meta.object_height,
        filaments=filaments,
        thumbnail=image or meta.best_thumbnail(),
    )


def _printer_model(info: dict[int, _ConfigPlate], project: dict[str, object], meta: GcodeMetadata) -> str:
    """Bambu's model code mapped to its name, else the project's or the G-code's printer_model."""
    for plate in info.values():
        if name := BAMBU_MODELS.get(plate.values.get("printer_model_id", "").strip()):
            return name
    named = project.get("printer_model")
    if isinstance(named, str) and named.strip() and named.isprintable():
        return named.strip()[:120]
    return meta.printer_model


def _nozzle(info: dict[int, _ConfigPlate], project: dict[str, object], meta: GcodeMetadata) -> float | None:
    for source in (
        *(p.values.get("nozzle_diameters") for p in info.values()),
        project.get("nozzle_diameter"),
    ):
        value = _checked("nozzle_diameter", _float(_first(source)))
        if isinstance(value, float):
            return value
    return meta.nozzle_diameter


def _sum(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _merged_filaments(plates: list[Plate]) -> tuple[Filament, ...]:
    """The file's filament slots: each slot's use summed over the plates."""
    slots: dict[int, Filament] = {}
    for plate in plates:
        for f in plate.filaments:
            if (seen := slots.get(f.slot)) is None:
                slots[f.slot] = f
            else:
                slots[f.slot] = replace(
                    seen,
                    type=seen.type or f.type,
                    colour=seen.colour or f.colour,
                    grams=_sum([seen.grams, f.grams]),
                    mm=_sum([seen.mm, f.mm]),
                )
    return tuple(slots[slot] for slot in sorted(slots))


def _file_metadata(
    metas: list[GcodeMetadata], plates: list[Plate], printer_model: str, nozzle: float | None
) -> GcodeMetadata:
    first = metas[0]
    filaments = _merged_filaments(plates)
    seconds = _sum([p.estimated_seconds for p in plates])
    heights = [p.object_height for p in plates if p.object_height is not None]
    thumbnail = plates[0].thumbnail
    return replace(
        first,
        estimated_seconds=round(seconds) if seconds is not None else None,
        filament_g=_sum([p.filament_g for p in plates]),
        filament_mm=_sum([f.mm for f in filaments]) or _sum([m.filament_mm for m in metas]),
        filament_type=first.filament_type or next((f.type for f in filaments if f.type), ""),
        nozzle_diameter=nozzle,
        object_height=max(heights, default=None),
        printer_model=printer_model,
        filaments=filaments,
        plates=tuple(plates),
        thumbnails=(thumbnail,) if thumbnail else first.thumbnails,
    )
