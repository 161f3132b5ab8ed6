"""3MF print files built as Bambu Studio writes them (the members the farm reads, with their real
layout and header style), small enough to make in a test."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


def png(width: int = 16, height: int = 16) -> bytes:
    """A real, tiny PNG (one grey colour)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class SamplePlate:
    index: int
    name: str = ""
    seconds: int = 3723
    grams: float = 6.6
    height: float = 20.2
    # (slot, type, colour, used_m, used_g)
    filaments: list[tuple[int, str, str, float, float]] = field(
        default_factory=lambda: [(1, "PLA", "#FFFFFF", 2.18, 6.6)]
    )
    thumbnail: tuple[int, int] | None = (64, 64)
    body_lines: int = 8  # extrusion lines between header and end


def plate_gcode(plate: SamplePlate, *, nozzle: str = "0.4", model: str = "Bambu Lab P1S") -> str:
    """A plate's G-code with Bambu Studio's header, config and executable blocks."""
    hours, rest = divmod(plate.seconds, 3600)
    time = f"{hours}h {rest // 60}m {rest % 60}s"
    body = "".join(
        f"G1 X{100 + i % 50:.3f} Y{90 + i % 37:.3f} E{0.01 * i:.5f}\n" for i in range(plate.body_lines)
    )
    return (
        "; HEADER_BLOCK_START\n"
        "; BambuStudio 01.10.01.50\n"
        f"; model printing time: {time}; total estimated time: {time}\n"
        "; total layer number: 101\n"
        f"; total filament length [mm] : {plate.filaments[0][3] * 1000:.2f}\n"
        f"; total filament weight [g] : {plate.grams:.2f}\n"
        "; filament_density: 1.26\n"
        "; filament_diameter: 1.75\n"
        f"; max_z_height: {plate.height:.2f}\n"
        "; HEADER_BLOCK_END\n\n"
        "; CONFIG_BLOCK_START\n"
        "; filament_colour = #FFFFFF\n"
        "; filament_type = PLA\n"
        "; initial_layer_print_height = 0.2\n"
        "; layer_height = 0.2\n"
        f"; nozzle_diameter = {nozzle}\n"
        "; nozzle_temperature_initial_layer = 220\n"
        "; hot_plate_temp_initial_layer = 55\n"
        f"; printer_model = {model}\n"
        "; CONFIG_BLOCK_END\n\n"
        "; EXECUTABLE_BLOCK_START\n"
        "M140 S55\nM190 S55\nM109 S220\nG90\nM83\n"
        "; CHANGE_LAYER\n; Z_HEIGHT: 0.2\nG1 Z0.2 F720\n"
        f"{body}"
        "M140 S0\nM104 S0\n"
        "; EXECUTABLE_BLOCK_END\n"
    )


def slice_info(plates: Iterable[SamplePlate], *, model_id: str = "C12", nozzle: str = "0.4") -> str:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<config>\n  <header>\n'
        '    <header_item key="X-BBL-Client-Type" value="slicer"/>\n'
        '    <header_item key="X-BBL-Client-Version" value="01.10.01.50"/>\n  </header>\n'
    ]
    for plate in plates:
        parts.append(
            "  <plate>\n"
            f'    <metadata key="index" value="{plate.index}"/>\n'
            f'    <metadata key="printer_model_id" value="{model_id}"/>\n'
            f'    <metadata key="nozzle_diameters" value="{nozzle}"/>\n'
            '    <metadata key="timelapse_type" value="0"/>\n'
            f'    <metadata key="prediction" value="{plate.seconds}"/>\n'
            f'    <metadata key="weight" value="{plate.grams:.2f}"/>\n'
            '    <metadata key="outside" value="false"/>\n'
            f'    <object identify_id="{100 + plate.index}" name="part{plate.index}.stl" skipped="false" />\n'
        )
        for slot, kind, colour, metres, grams in plate.filaments:
            parts.append(
                f'    <filament id="{slot}" tray_info_idx="GFA00" type="{kind}" color="{colour}" '
                f'used_m="{metres}" used_g="{grams}" />\n'
            )
        parts.append("  </plate>\n")
    parts.append("</config>\n")
    return "".join(parts)


def model_settings(plates: Iterable[SamplePlate]) -> str:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<config>\n  <object id="2">\n'
        '    <metadata key="name" value="part.stl"/>\n  </object>\n'
    ]
    for plate in plates:
        parts.append(
            "  <plate>\n"
            f'    <metadata key="plater_id" value="{plate.index}"/>\n'
            f'    <metadata key="plater_name" value="{plate.name}"/>\n'
            f'    <metadata key="gcode_file" value="Metadata/plate_{plate.index}.gcode"/>\n'
            "    <model_instance>\n"
            '      <metadata key="object_id" value="2"/>\n'
            "    </model_instance>\n"
            "  </plate>\n"
        )
    parts.append("</config>\n")
    return "".join(parts)


MODEL_STUB = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<model unit="millimeter" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">\n'
    ' <metadata name="Application">BambuStudio-01.10.01.50</metadata>\n'
    " <resources/>\n <build/>\n</model>\n"
)
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\n'
    ' <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\n'
    ' <Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>\n'
    ' <Default Extension="png" ContentType="image/png"/>\n'
    ' <Default Extension="gcode" ContentType="text/x.gcode"/>\n'
    "</Types>\n"
)


def write_threemf(
    path: Path,
    plates: list[SamplePlate] | None = None,
    *,
    model_id: str = "C12",
    nozzle: str = "0.4",
    extra: dict[str, bytes] | None = None,
    with_gcode: bool = True,
) -> Path:
    """A Bambu-style `.gcode.3mf` with these plates (default: one) at `path`."""
    plates = plates if plates is not None else [SamplePlate(1)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("3D/3dmodel.model", MODEL_STUB)
        archive.writestr("Metadata/slice_info.config", slice_info(plates, model_id=model_id, nozzle=nozzle))
        archive.writestr("Metadata/model_settings.config", model_settings(plates))
        for plate in plates:
            if with_gcode:
                archive.writestr(f"Metadata/plate_{plate.index}.gcode", plate_gcode(plate, nozzle=nozzle))
            if plate.thumbnail:
                archive.writestr(f"Metadata/plate_{plate.index}.png", png(*plate.thumbnail))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def two_plates(path: Path) -> Path:
    return write_threemf(
        path,
        [
            SamplePlate(
                1,
                "Brackets",
                seconds=3600,
                grams=10.0,
                height=12.0,
                filaments=[(1, "PLA", "#FF0000", 3.3, 10.0)],
                thumbnail=(64, 64),
            ),
            SamplePlate(
                2,
                "Lids",
                seconds=1800,
                grams=5.5,
                height=30.0,
                filaments=[(1, "PLA", "#FF0000", 1.0, 3.0), (2, "PETG", "#00FF00FF", 0.8, 2.5)],
                thumbnail=(32, 32),
            ),
        ],
    )


def big_plate(path: Path, *, megabytes: int, config_first: bool = True) -> Path:
    """One plate whose G-code is `megabytes` MB of varied moves (deflates like real G-code), written
    a chunk at a time. `config_first=False`: a header without Bambu's config block, so a reader
    must inflate the whole plate for its tail."""
    chunk = "".join(
        f"G1 X{i % 997 * 0.137:.3f} Y{i % 883 * 0.211:.3f} E{i * 0.00731:.5f}\n" for i in range(30_000)
    )
    block = chunk.encode()[: 1024 * 1024]
    block = block[: block.rfind(b"\n") + 1]
    plate = SamplePlate(1)
    header = plate_gcode(plate).encode()
    if not config_first:
        header = header.replace(b"; CONFIG_BLOCK_END", b"; config block left open")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("Metadata/slice_info.config", slice_info([plate]))
        with archive.open("Metadata/plate_1.gcode", "w", force_zip64=True) as out:
            out.write(header)
            written = len(header)
            while written < megabytes * 1024 * 1024:
                out.write(block)
                written += len(block)
            out.write(b"; EXECUTABLE_BLOCK_END\n; max_layer_z = 42.0\n")
    return path


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()
