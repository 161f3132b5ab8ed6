"""3MF print files: metadata read from inside the archive, streamed; unsafe or unprintable
archives refused on every upload path with nothing kept."""

from __future__ import annotations

import tracemalloc
import zipfile

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from jobs import library
from jobs.metadata import ArchiveRefused, read_metadata
from jobs.metadata.fields import Filament
from jobs.models import GcodeFile
from jobs.tests.threemf_samples import (
    SamplePlate,
    big_plate,
    plate_gcode,
    png,
    two_plates,
    write_threemf,
    zip_bytes,
)
from printers.tests.factories import UserFactory
from printfarm.accounts.models import AuditEntry, Role
from printfarm.accounts.tokens import token_create
from printfarm.testing import web_server

# -- metadata --------------------------------------------------------------------------------


def test_bambu_3mf_metadata_comes_from_slice_info_and_the_plate_header(tmp_path):
    meta = read_metadata(write_threemf(tmp_path / "cube.gcode.3mf", model_id="C12", nozzle="0.4"))

    assert (meta.slicer, meta.slicer_version) == ("BambuStudio", "01.10.01.50")
    assert meta.printer_model == "Bambu Lab P1S"
    assert meta.nozzle_diameter == 0.4
    assert meta.estimated_seconds == 3723
    assert meta.filament_g == 6.6
    assert meta.filaments == (Filament(slot=1, type="PLA", colour="#FFFFFF", grams=6.6, mm=2180.0),)
    assert (meta.layer_height, meta.first_layer_hotend, meta.object_height) == (0.2, 220.0, 20.2)
    (plate,) = meta.plates
    assert (plate.index, plate.estimated_seconds, plate.filament_g) == (1, 3723, 6.6)
    assert plate.thumbnail is not None and (plate.thumbnail.width, plate.thumbnail.format) == (64, "png")
    assert meta.thumbnails == (plate.thumbnail,)


def test_two_plates_give_two_plates_and_the_files_totals(tmp_path):
    meta = read_metadata(two_plates(tmp_path / "set.gcode.3mf"))

    first, second = meta.plates
    assert (first.index, first.name, first.estimated_seconds, first.filament_g) == (1, "Brackets", 3600, 10.0)
    assert (second.index, second.name, second.estimated_seconds, second.filament_g) == (2, "Lids", 1800, 5.5)
    assert second.filaments[1] == Filament(slot=2, type="PETG", colour="#00FF00", grams=2.5, mm=800.0)
    assert (second.object_height, second.thumbnail.width) == (30.0, 32)
    # The file: times and filament summed over its plates, per slot; its thumbnail is plate 1's.
    assert (meta.estimated_seconds, meta.filament_g, meta.filament_mm) == (5400, 15.5, 5100.0)
    assert [(f.slot, f.type, f.grams) for f in meta.filaments] == [(1, "PLA", 13.0), (2, "PETG", 2.5)]
    assert meta.object_height == 30.0
    assert meta.thumbnails[0].width == 64


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("BL-P001", "Bambu Lab X1 Carbon"),
        ("C11", "Bambu Lab P1P"),
        ("N2S", "Bambu Lab A1"),
        ("O1D", "Bambu Lab H2D"),
    ],
)
def test_bambu_model_codes_are_named(tmp_path, model_id, name):
    assert read_metadata(write_threemf(tmp_path / "a.gcode.3mf", model_id=model_id)).printer_model == name


def test_an_unknown_model_code_falls_back_to_the_project_settings(tmp_path):
    settings = b'{"printer_model": "Bambu Lab X9", "nozzle_diameter": ["0.6"]}'
    path = write_threemf(
        tmp_path / "a.gcode.3mf",
        model_id="Z99",
        nozzle="",
        extra={"Metadata/project_settings.config": settings},
    )
    meta = read_metadata(path)
    assert (meta.printer_model, meta.nozzle_diameter) == ("Bambu Lab X9", 0.6)


def test_a_3mf_with_only_plate_gcode_reads_the_gcode_header(tmp_path):
    path = tmp_path / "bare.3mf"
    path.write_bytes(zip_bytes({"Metadata/plate_1.gcode": plate_gcode(SamplePlate(1, seconds=600)).encode()}))
    meta = read_metadata(path)
    assert (meta.slicer, meta.estimated_seconds, meta.filament_g) == ("BambuStudio", 600, 6.6)
    assert meta.plates[0].estimated_seconds == 600
    # Without slice_info: the model, nozzle and filament slots as the G-code's config says.
    assert (meta.printer_model, meta.nozzle_diameter) == ("Bambu Lab P1S", 0.4)
    assert meta.filaments == (Filament(slot=1, type="PLA", colour="#FFFFFF"),)


def test_a_doctype_in_slice_info_is_not_expanded(tmp_path):
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE config [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<config><plate><metadata key="index" value="1"/><metadata key="printer_model_id" value="&b;"/>'
        b'<metadata key="weight" value="9.9"/><filament id="2" type="&b;" used_g="9.9"/></plate></config>'
    )
    path = tmp_path / "a.gcode.3mf"
    path.write_bytes(
        zip_bytes(
            {
                "Metadata/plate_1.gcode": plate_gcode(SamplePlate(1)).encode(),
                "Metadata/slice_info.config": laughs,
            }
        )
    )
    meta = read_metadata(path)
    # The config ignored (it would give 9.9 g and slot 2); the G-code read.
    assert meta.plates[0].filament_g == 6.6
    assert meta.plates[0].filaments == (Filament(slot=1, type="PLA", colour="#FFFFFF"),)
    assert meta.printer_model == "Bambu Lab P1S"


@pytest.mark.parametrize("config_first", [True, False], ids=["bambu-config-first", "tail-read"])
def test_a_200_mb_plate_reads_in_bounded_memory(tmp_path, config_first):
    # Bambu's config block ends in the head: the tail isn't needed. Without it the whole plate is
    # inflated, a chunk at a time, for its tail.
    path = big_plate(tmp_path / "big.gcode.3mf", megabytes=200, config_first=config_first)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("Metadata/plate_1.gcode").file_size > 200 * 1024 * 1024

    tracemalloc.start()
    try:
        meta = read_metadata(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 24 * 1024 * 1024  # head (1 MB) + tail (256 KB) and their parsing, not the plate
    assert meta.slicer == "BambuStudio" and meta.plates[0].estimated_seconds == 3723
    assert meta.object_height == 20.2  # from the head (the tail's max_layer_z comes after it)


# -- refusals --------------------------------------------------------------------------------


def _gcode() -> bytes:
    return plate_gcode(SamplePlate(1)).encode()


def _bomb() -> bytes:
    return zip_bytes({"Metadata/plate_1.gcode": _gcode(), "3D/padding.model": b"\0" * (64 * 1024 * 1024)})


def _truncated(tmp_path) -> bytes:
    data = write_threemf(tmp_path / "whole.gcode.3mf").read_bytes()
    return data[: len(data) // 2]


BAD = {
    "not a zip": (lambda tmp: b"; just G-code\nG28\n", "not a readable 3MF"),
    "truncated": (_truncated, "not a readable 3MF"),
    "zip bomb": (lambda tmp: _bomb(), "refused as a zip bomb"),
    "traversal": (
        lambda tmp: zip_bytes({"Metadata/plate_1.gcode": _gcode(), "../../etc/evil": b"x"}),
        "unsafe name ('../../etc/evil')",
    ),
    "absolute": (
        lambda tmp: zip_bytes({"Metadata/plate_1.gcode": _gcode(), "/tmp/evil": b"x"}),
        "unsafe name",
    ),
    "backslash": (
        lambda tmp: zip_bytes({"Metadata/plate_1.gcode": _gcode(), "..\\evil.gcode": b"x"}),
        "unsafe name",
    ),
    "no gcode": (
        lambda tmp: zip_bytes({"3D/3dmodel.model": b"<model/>", "Metadata/plate_1.png": png()}),
        "a 3MF without sliced G-code",
    ),
}


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_3mf_is_refused_with_its_reason(tmp_path, kind):
    make, message = BAD[kind]
    path = tmp_path / "bad.gcode.3mf"
    path.write_bytes(make(tmp_path))
    with pytest.raises(ArchiveRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_metadata(path)


def test_a_member_lying_about_its_size_is_refused(tmp_path):
    path = write_threemf(tmp_path / "lie.gcode.3mf")
    data = bytearray(path.read_bytes())
    # plate_1.gcode's central directory entry declares 10 bytes: zipfile stops there, and the
    # CRC of what it read fails.
    name = b"Metadata/plate_1.gcode"
    entry = data.find(b"PK\x01\x02")
    while data[entry + 46 : entry + 46 + len(name)] != name:
        entry = data.find(b"PK\x01\x02", entry + 4)
    data[entry + 24 : entry + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveRefused, match="not a readable 3MF"):
        read_metadata(path)


# -- every upload path -------------------------------------------------------------------------

PATHS = ("web", "api", "slicer")


@pytest.fixture
def send(db, files_dir):
    """send(path, name, data) -> (status, error lines) for one file posted through `path`."""
    operator = UserFactory(role=Role.OPERATOR)
    web = Client()
    web.force_login(operator)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token_create(operator, 'api').secret}")
    slicer = Client(HTTP_X_API_KEY=token_create(operator, "slicer").secret)

    def post(path: str, name: str, data: bytes):
        form = {"file": SimpleUploadedFile(name, data)}
        if path == "web":
            response = web.post(reverse("jobs:upload"), form, headers={"Accept": "application/json"})
        elif path == "api":
            response = api.post("/api/v1/files", form)
        else:
            response = slicer.post("/api/files/local", form)
        body = response.json()
        errors = ([body["error"]] if "error" in body else []) if path == "slicer" else body["errors"]
        return response.status_code, errors

    return post


def nothing_on_disk(files_dir) -> bool:
    return not [p for p in files_dir.rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_3mf_is_refused_on_every_upload_path_and_nothing_kept(send, files_dir, tmp_path, kind):
    make, message = BAD[kind]
    data = make(tmp_path)
    for path in PATHS:
        status, errors = send(path, "part.gcode.3mf", data)
        assert status == 400, path
        assert len(errors) == 1 and errors[0].startswith("part.gcode.3mf: ") and message in errors[0], path
    assert not GcodeFile.objects.exists() and not AuditEntry.objects.exists()
    assert nothing_on_disk(files_dir)


@pytest.mark.parametrize("path", PATHS)
def test_a_3mf_is_stored_with_its_plates_and_their_thumbnails(send, files_dir, tmp_path, path):
    data = two_plates(tmp_path / "set.gcode.3mf").read_bytes()
    status, errors = send(path, "set.gcode.3mf", data)
    assert (status, errors) == (201, [])

    file = GcodeFile.objects.get()
    assert file.name == "set.gcode.3mf" and library.stored_path(file).read_bytes() == data
    assert file.printer_model == "Bambu Lab P1S" and file.nozzle_diameter == 0.4
    assert [(p["index"], p["name"], p["estimated_seconds"], p["thumbnail"]) for p in file.plates] == [
        (1, "Brackets", 3600, True),
        (2, "Lids", 1800, True),
    ]
    assert file.filaments[1] == {"slot": 2, "type": "PETG", "colour": "#00FF00", "grams": 2.5, "mm": 800.0}
    assert library.thumbnail_path(file).read_bytes() == png(64, 64)
    assert (files_dir / library.plate_thumbnail_name(file, 2)).read_bytes() == png(32, 32)


def test_plate_thumbnails_survive_the_cleanup_and_go_with_the_file(send, files_dir, tmp_path):
    send("api", "set.gcode.3mf", two_plates(tmp_path / "set.gcode.3mf").read_bytes())
    file = GcodeFile.objects.get()
    plate_thumb = files_dir / library.plate_thumbnail_name(file, 2)

    assert library.clean(min_age=0).removed == []
    assert plate_thumb.exists()
    library.delete(file)
    assert nothing_on_disk(files_dir)


def test_a_plate_thumbnail_is_served(send, files_dir, tmp_path):
    send("api", "set.gcode.3mf", two_plates(tmp_path / "set.gcode.3mf").read_bytes())
    file = GcodeFile.objects.get()
    client = Client()
    client.force_login(UserFactory(role=Role.VIEWER))
    response = client.get(reverse("jobs:plate_thumbnail", args=[file.pk, 2]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content == png(32, 32)
    assert client.get(reverse("jobs:plate_thumbnail", args=[file.pk, 3])).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_orca_sends_3mfs_over_http_a_bomb_is_refused_a_good_one_stored(files_dir, tmp_path):
    key = token_create(UserFactory(role=Role.OPERATOR), "OrcaSlicer").secret
    good = two_plates(tmp_path / "set.gcode.3mf").read_bytes()
    with web_server() as url, httpx.Client(base_url=url, headers={"X-Api-Key": key}) as http:
        # As OrcaSlicer's OctoPrint host sends it: the file part, then print=false.
        bomb = http.post(
            "/api/files/local",
            files={"file": ("bomb.gcode.3mf", _bomb(), "application/octet-stream")},
            data={"print": "false"},
        )
        assert bomb.status_code == 400
        assert bomb.json()["error"].startswith("bomb.gcode.3mf: ") and "zip bomb" in bomb.json()["error"]
        assert nothing_on_disk(files_dir) and not GcodeFile.objects.exists()

        stored = http.post(
            "/api/files/local",
            files={"file": ("set.gcode.3mf", good, "application/octet-stream")},
            data={"print": "false"},
        )
    assert stored.status_code == 201
    assert [p["index"] for p in GcodeFile.objects.get().plates] == [1, 2]
