"""Metadata of real slicer output (samples/real, made by scripts/make_slicer_corpus.sh) and of
header-only samples of slicers that cannot be installed here (see samples/README.md).

Every expected value was read off the file by hand; the comment beside it says where it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.metadata import HEAD_BYTES, TAIL_BYTES, Filament, parse_text, read_metadata

SAMPLES = Path(__file__).parent / "samples"
REAL = SAMPLES / "real"

# A 10 mm cube at 0.3 mm layers in every real sample: the top layer is printed at Z 9.9.
CORPUS = {
    "prusaslicer-2.5.0.gcode": {
        "slicer": "PrusaSlicer",
        "slicer_version": "2.5.0",
        "estimated_seconds": 151,  # "; estimated printing time (normal mode) = 2m 31s"
        "filament_mm": 82.44,
        "filament_g": 0.25,
        "filament_type": "PLA",
        "layer_height": 0.3,
        "nozzle_diameter": 0.4,
        "first_layer_hotend": 215,
        "first_layer_bed": 60,
        "object_height": 9.9,  # 2.5 writes no max_layer_z: the last ";Z:9.9" layer's moves
        "printer_model": "MK3S",
        "filaments": (Filament(1, "PLA", "#FF8000", 0.25, 82.44),),
    },
    "slic3r-1.3.0.gcode": {
        "slicer": "Slic3r",
        "slicer_version": "1.3.0",
        "estimated_seconds": None,  # Slic3r 1.x writes no estimate
        "filament_mm": 81.6,  # "; filament used = 81.6mm (0.2cm3)"
        "filament_g": 0.2,  # "; filament used = 0.2g", the same key again
        "filament_type": "",  # 1.3.0 has no filament_type setting
        "layer_height": 0.3,
        "nozzle_diameter": 0.4,
        "first_layer_hotend": 215,
        "first_layer_bed": 60,
        "object_height": 9.9,  # "G1 Z9.900 F7800.000", then the top layer
        "printer_model": "",
        "filaments": (Filament(1, "", "#FF8000", 0.2, 81.6),),
    },
    "curaengine-4.13.0-marlin.gcode": {
        "slicer": "Cura",
        "slicer_version": "4.13.0",
        "estimated_seconds": 210,  # the last ";TIME_ELAPSED:210.217159", not the placeholder ";TIME:6666"
        # Not the placeholder ";Filament used: 0m": E fed, the start G-code's 3 mm prime included:
        # 3 (G1 F200 E3) + 251.81913 (the furthest E after the last G92 E0) + 0 (the end G-code's G92 E1)
        "filament_mm": 254.819,
        "filament_g": None,
        "filament_type": "",
        "layer_height": 0.3,  # ";Layer height: 0.3" is a setting, written right even from the CLI
        "nozzle_diameter": None,
        "first_layer_hotend": 215,  # M104/M109 S215
        "first_layer_bed": 60,  # M140/M190 S60
        "object_height": 9.9,  # not the placeholder ";MAXZ:-2.14748e+06"
        "printer_model": "",
        "filaments": (),
    },
    "curaengine-4.13.0-griffin.gcode": {
        "slicer": "Cura",
        "slicer_version": "4.13.0",  # ";GENERATOR.VERSION:4.13.0"
        "estimated_seconds": 215,  # the last ";TIME_ELAPSED:215.477578": the CLI writes no PRINT.TIME
        "filament_mm": 94.949,  # the furthest E after the only G92 E0 (94.94869): no VOLUME_USED either
        "filament_g": None,
        "filament_type": "",
        "layer_height": None,
        "nozzle_diameter": 0.4,  # ";EXTRUDER_TRAIN.0.NOZZLE.DIAMETER:0.4"
        "first_layer_hotend": 215,  # ";EXTRUDER_TRAIN.0.INITIAL_TEMPERATURE:215"
        "first_layer_bed": 60,  # ";BUILD_PLATE.INITIAL_TEMPERATURE:60"
        "object_height": 9.9,  # not the CLI's stand-in box ";PRINT.SIZE.MAX.Z:0.01"
        "printer_model": "Ultimaker S5",  # ";TARGET_MACHINE.NAME:Ultimaker S5"
        "filaments": (),
    },
}

HEADER_ONLY = {
    "simplify3d-5.gcode": {
        "slicer": "Simplify3D",
        "slicer_version": "5.1.2",
        "estimated_seconds": 3720,  # ";   Build Time: 1 hours 2 minutes"
        "filament_mm": 1234.5,  # ";   Material Length: 1234.5 mm (1.23 m)"
        "filament_g": 3.7,
        "filament_type": "PLA",
        "layer_height": 0.2,
        "nozzle_diameter": 0.4,
        "first_layer_hotend": 215,  # the extruder block's first setpoint "0|215", not the bed's "0|60"
        "first_layer_bed": 60,
        "object_height": 0.2,  # the sample's one layer: Simplify3D writes no height
        "printer_model": "",
        "filaments": (Filament(1, "PLA", "", 3.7, 1234.5),),
    },
    "ideamaker-4.4.gcode": {
        "slicer": "ideaMaker",
        "slicer_version": "4.4.1.6192",
        "estimated_seconds": 3722,  # ";Print Time: 3722"
        "filament_mm": 1234.5,  # ";Material#1 Used: 1234.5"
        "filament_g": 3.682,  # π/4 · 1.75² mm² · 1234.5 mm · 1.24 g/cm³
        "filament_type": "PLA",
        "layer_height": None,
        "nozzle_diameter": 0.4,  # ";Dimension: 305.000 305.000 300.000 0.400 0.400"
        "first_layer_hotend": 210,  # M109 T0 S210
        "first_layer_bed": 60,
        "object_height": 10.0,  # ";Bounding Box: … 0.000 10.000", zmax last
        "printer_model": "RAISE3D Pro2 Plus",
        "filaments": (Filament(1, "PLA", "", 3.682, 1234.5),),
    },
    "kisslicer-1.1.gcode": {
        "slicer": "KISSlicer",
        "slicer_version": "1.1.0.5",  # "; version 1.1.0.5", the line after "; KISSlicer - FREE"
        "estimated_seconds": 150,  # "; Estimated Build Time:   2.50 minutes"
        "filament_mm": 1.191,  # 1.1 writes no length: the E the sample's two layers feed, 2 · 0.5956
        "filament_g": None,
        "filament_type": "",
        "layer_height": 0.25,  # "; layer_thickness_mm = 0.25"
        "nozzle_diameter": None,
        "first_layer_hotend": 200,  # "; first_layer_C = 200", not the prefix's M104 S210
        "first_layer_bed": 60,  # "; bed_C = 60"
        "object_height": 1.25,  # the highest layer laying filament: Z1.25 (Z1.5 is the lift after it)
        "printer_model": "",
        "filaments": (),
    },
    "cura-5.6-ultimaker-1.75.gcode": {
        "slicer": "Cura",
        "slicer_version": "5.6.0",
        "estimated_seconds": 5025,
        # 2950 mm³ of the 1.75 mm filament the settings block names, not of the 2.85 UltiMaker default
        "filament_mm": 1226.467,
        "filament_g": None,
        "filament_type": "",
        "layer_height": None,
        "nozzle_diameter": 0.4,
        "first_layer_hotend": 210,
        "first_layer_bed": 60,
        "object_height": 10.2,
        "printer_model": "Creality Ender-3 S1",
        "filaments": (Filament(1, "", "", None, 1226.467),),
    },
}


def check(metadata: object, expected: dict[str, object]) -> None:
    for field, value in expected.items():
        assert getattr(metadata, field) == value, field


@pytest.mark.parametrize("name", CORPUS)
def test_real_slicer_output_gives_what_the_file_says(name: str) -> None:
    metadata = read_metadata(REAL / name)
    check(metadata, CORPUS[name])
    assert metadata.thumbnails == ()  # the command lines render none


@pytest.mark.parametrize("name", HEADER_ONLY)
def test_header_only_sample_gives_what_the_file_says(name: str) -> None:
    check(read_metadata(SAMPLES / name), HEADER_ONLY[name])


@pytest.mark.parametrize("name", CORPUS)
def test_real_samples_stay_small(name: str) -> None:
    assert (REAL / name).stat().st_size < 64_000


@pytest.mark.parametrize("name", CORPUS)
def test_placeholder_values_are_never_reported(name: str) -> None:
    metadata = read_metadata(REAL / name)
    assert metadata.estimated_seconds != 6666
    assert metadata.object_height not in (0.01, -2147480.0)


def test_cura_filament_in_metres_comes_out_in_round_millimetres() -> None:
    text = ";FLAVOR:Marlin\n;TIME:100\n;Filament used: 1.23456m\n;Generated with Cura_SteamEngine 5.7.1\n"
    assert parse_text(text.encode(), b"").filament_mm == 1234.56


def test_every_float_field_is_rounded_in_one_place() -> None:
    text = (
        "; generated by PrusaSlicer 2.7.1 on 2024-01-01\n"
        "; filament used [mm] = 0.1, 0.2\n; filament used [g] = 0.1, 0.2\n; max_layer_z = 10.30000001\n"
    )
    metadata = parse_text(text.encode(), b"")
    assert (metadata.filament_mm, metadata.filament_g, metadata.object_height) == (0.3, 0.3, 10.3)


def big_file(tmp_path: Path, head: bytes, layers: bytes, tail: bytes) -> Path:
    """head, then `layers` repeated past the head, then tail; the file is bigger than head + tail."""
    body = layers * ((HEAD_BYTES + TAIL_BYTES) // len(layers) + 1)
    path = tmp_path / "big.gcode"
    path.write_bytes(head + body + tail)
    assert path.stat().st_size > HEAD_BYTES + TAIL_BYTES
    return path


def test_object_height_of_a_big_prusaslicer_2_5_file_comes_from_the_tail(tmp_path: Path) -> None:
    real = (REAL / "prusaslicer-2.5.0.gcode").read_bytes()
    top = real.index(b";Z:9.9\n")
    end = real.index(b"; filament used [mm]")
    head, tail = real[: real.index(b";LAYER_CHANGE")], real[top:]
    path = big_file(tmp_path, head, b";LAYER_CHANGE\n;Z:0.6\nG1 Z.6\nG1 X1 Y1 E1\n", tail)
    metadata = read_metadata(path)
    assert (metadata.object_height, metadata.estimated_seconds) == (9.9, 151)
    assert end > top  # the top layer and the footer are both in the tail read


def test_big_cura_cli_file_takes_time_from_the_tail_and_claims_no_filament(tmp_path: Path) -> None:
    real = (REAL / "curaengine-4.13.0-marlin.gcode").read_bytes()
    head = real[: real.index(b";LAYER:1\n")]
    tail = real[real.index(b";LAYER:31\n") :]
    metadata = read_metadata(big_file(tmp_path, head, b"G1 X1 Y1 E1\n", tail))
    assert (metadata.estimated_seconds, metadata.object_height) == (210, 9.9)
    assert metadata.filament_mm is None  # the E fed in the middle was never read


def test_end_gcode_lift_and_travel_are_not_the_object_height() -> None:
    text = (
        "; generated by Slic3r 1.3.0 on 2024-01-01 at 10:00:00\nG90\nM82\nG92 E0\n"
        "G1 Z0.3\nG1 X10 Y10 E1\nG1 Z5.3\nG1 X20 Y20 E2\n"
        "G1 E1.5\nG1 Z5.7\nG1 X0 Y0\nG1 X1 Y1 E1.5\n"  # retract, hop, travel, a wipe that lays nothing
        "G91\nG1 Z10 E-2\nG90\nG1 X0 Y200\nG28\n"  # the end G-code: relative lift, park, home
    )
    metadata = parse_text(text.encode(), b"")
    assert metadata.object_height == 5.3


def test_volumetric_e_gives_no_filament_length() -> None:
    marlin = ";FLAVOR:Marlin(Volumetric)\n;Generated with Cura_SteamEngine 5.6.0\nG1 Z0.2\nG1 X5 Y5 E10\n"
    assert parse_text(marlin.encode(), b"").filament_mm is None
    m200 = "; generated by Slic3r 1.3.0 on 2024\nM200 D1.75\nG1 Z0.2\nG1 X5 Y5 E10\n"
    assert parse_text(m200.encode(), b"").filament_mm is None


def test_filament_slots_of_a_multi_extruder_prusaslicer_file() -> None:
    text = (
        "; generated by PrusaSlicer 2.7.1 on 2024-01-01\n"
        "; filament used [mm] = 1000.00, 0.00, 234.50\n; filament used [g] = 3.00, 0.00, 0.70\n"
        "; filament_type = PETG;PLA;PLA\n; filament_colour = #ff8000;#FFFFFF;#000000\n"
        '; printer_model = MK4\n; filament_settings_id = "Prusament PETG";"Generic PLA";"Generic PLA"\n'
    )
    metadata = parse_text(text.encode(), b"")
    assert metadata.filaments == (  # slot 2 feeds nothing: not a material the print needs
        Filament(1, "PETG", "#FF8000", 3.0, 1000.0),
        Filament(3, "PLA", "#000000", 0.7, 234.5),
    )
    assert (metadata.filament_type, metadata.filament_g, metadata.printer_model) == ("PETG", 3.7, "MK4")


def test_orca_printer_model_and_colours_with_alpha() -> None:
    text = (
        "; HEADER_BLOCK_START\n; generated by OrcaSlicer 2.2.0 on 2024-10-01 at 09:00:00\n"
        "; filament used [mm] = 1234.50\n; filament used [g] = 3.70\n"
        "; filament_type = PLA\n; filament_colour = #00AE42FF\n; printer_model = Bambu Lab P1S\n"
    )
    metadata = parse_text(text.encode(), b"")
    assert metadata.printer_model == "Bambu Lab P1S"
    assert metadata.filaments == (Filament(1, "PLA", "#00AE42", 3.7, 1234.5),)


def test_cura_filament_of_each_extruder_is_a_slot() -> None:
    text = (
        ";FLAVOR:Marlin\n;TIME:100\n;Filament used: 1.5m, 0m, 0.25m\n;Generated with Cura_SteamEngine 5.7\n"
    )
    assert parse_text(text.encode(), b"").filaments == (Filament(1, mm=1500.0), Filament(3, mm=250.0))


def test_garbage_colour_and_model_are_ignored() -> None:
    text = (
        "; generated by PrusaSlicer 2.7.1 on 2024-01-01\n; filament used [mm] = 10\n"
        "; filament_colour = orange\n; printer_model = " + "M" * 200 + "\n"
    )
    metadata = parse_text(text.encode(), b"")
    assert metadata.filaments == (Filament(1, mm=10.0),)
    assert metadata.printer_model == ""
