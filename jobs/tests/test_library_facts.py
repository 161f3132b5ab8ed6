"""What a farm needs to choose a printer, the same on the list, the file page, the queue form
and the API: materials with their colours, grams, time, nozzle, printer model, plates."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from jobs.models import GcodeFile, Job
from jobs.presenters import file_facts
from jobs.tests.factories import make_file
from jobs.tests.threemf_samples import two_plates
from printers.colours import safe_colour

pytestmark = pytest.mark.django_db

JUNK = "red;background:url(x)"


FILAMENTS = [
    {"slot": 1, "type": "PLA", "colour": "#FF8000", "grams": 20.0, "mm": 6700.0},
    {"slot": 3, "type": "PETG", "colour": "#00ae42ff", "grams": 3.45, "mm": 1100.0},
]
PLATES = [
    {
        "index": 1,
        "name": "Brackets",
        "estimated_seconds": 2520,
        "filament_g": 16.0,
        "object_height": 12.5,
        "filaments": [{"slot": 1, "type": "PLA", "colour": "#FF8000", "grams": 16.0, "mm": 5360.0}],
        "thumbnail": True,
    },
    {
        "index": 2,
        "name": "Lids",
        "estimated_seconds": 1200,
        "filament_g": 7.45,
        "object_height": 3.0,
        "filaments": [
            {"slot": 1, "type": "PLA", "colour": "#FF8000", "grams": 4.0, "mm": 1340.0},
            {"slot": 3, "type": "PETG", "colour": "#00AE42", "grams": 3.45, "mm": 1100.0},
        ],
        "thumbnail": False,
    },
]


def three_mf(**changes) -> GcodeFile:
    """A library entry with what a two-plate Bambu Studio 3MF carries (written as the library
    stores it: the archive itself is the 3MF reader's to test)."""
    file = make_file("tray.gcode", thumbnail=(200, 80, 0))
    fields = {
        "folder": "customers/acme",
        "printer_model": "Bambu Lab X1 Carbon",
        "estimated_seconds": 3720,
        "filament_g": 23.45,
        "nozzle_diameter": 0.4,
        "filaments": FILAMENTS,
        "plates": PLATES,
    } | changes
    GcodeFile.objects.filter(pk=file.pk).update(**fields)
    file.refresh_from_db()
    return file


def older_file(name: str = "old.gcode", **changes) -> GcodeFile:
    """A row stored before filament slots were read: `filaments` empty, the material in
    filament_type/_g/_mm only."""
    file = make_file(name, material="PETG", seconds=600)
    GcodeFile.objects.filter(pk=file.pk).update(filaments=[], **changes)
    file.refresh_from_db()
    return file


def row_of(page: bytes, name: str) -> str:
    rows = page.decode().split('data-testid="file-row"')[1:]
    return next(row.split("</tr>")[0] for row in rows if f">{name}</a>" in row)


def part(page: bytes, testid: str, end: str) -> str:
    """The element marked `testid`, up to `end` (the tag that closes it)."""
    html = page.decode()
    start = html.index(f'data-testid="{testid}"')
    return html[start : html.index(end, start)]


def swatches(html: str) -> list[str]:
    return re.findall(r'<rect [^>]*fill="([^"]*)"', html)


# -- the one reading of a file -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "drawn"),
    [
        ("#FF8000", "#FF8000"),
        ("#00ae42", "#00AE42"),
        ("#00AE42FF", "#00AE42"),  # Bambu's alpha
        (JUNK, ""),
        ('#FF8000" onload="x', ""),
        ("#FF8000;background:url(x)", ""),
        ("#12345", ""),
        ("rgb(1,2,3)", ""),
        ("", ""),
        (None, ""),
        (16744448, ""),
    ],
)
def test_only_a_hex_colour_is_ever_drawn(value, drawn):
    assert safe_colour(value) == drawn


def test_a_files_facts_come_from_its_slots_and_plates():
    facts = file_facts(three_mf())
    assert [(f.slot, f.type, f.colour, f.grams) for f in facts.filaments] == [
        (1, "PLA", "#FF8000", 20.0),
        (3, "PETG", "#00AE42", 3.45),
    ]
    assert facts.materials == ["PLA", "PETG"]
    assert (facts.grams, facts.estimated_seconds, facts.nozzle) == (23.45, 3720, 0.4)
    assert (facts.printer_model, facts.folder) == ("Bambu Lab X1 Carbon", "customers/acme")
    assert [(p.index, p.name, bool(p.thumbnail_url)) for p in facts.plates] == [
        (1, "Brackets", True),
        (2, "Lids", False),
    ]


def test_an_older_file_falls_back_to_its_single_material_and_totals():
    # Read before slots were stored: filaments is empty, filament_type/_g/_mm hold it all.
    file = older_file()
    facts = file_facts(file)
    assert [(f.slot, f.type, f.colour, f.grams, f.mm) for f in facts.filaments] == [
        (1, "PETG", "", 3.7, 1234.5)
    ]
    assert facts.grams == 3.7 and facts.plates == ()


def test_an_older_multi_extruder_file_lists_each_material_once():
    # PrusaSlicer writes one type per extruder, used or not: "PLA;PLA;PETG;PLA".
    file = older_file(filament_type="PLA;PLA;PETG;PLA")
    facts = file_facts(file)
    assert [(f.type, f.grams) for f in facts.filaments] == [("PLA", None), ("PETG", None)]
    assert facts.grams == 3.7  # the file's total still stands


def test_junk_in_the_stored_slots_is_dropped_not_shown():
    file = three_mf(
        filaments=[
            {"slot": 1, "type": "PLA\x1b[31m", "colour": JUNK, "grams": "12", "mm": "1e9"},
            "not a slot",
            {"slot": True, "type": "PETG", "colour": "#00AE42", "grams": -3},
        ],
        plates=[{"index": "1"}, {"index": -1}, {"index": True}, {"index": 2, "name": 5, "thumbnail": "yes"}],
    )
    facts = file_facts(file)
    assert [(f.slot, f.type, f.colour, f.grams, f.mm) for f in facts.filaments] == [
        (1, "", "", None, None),
        (3, "PETG", "#00AE42", None, None),  # no usable slot number: its place in the list
    ]
    assert [(p.index, p.name, p.thumbnail_url) for p in facts.plates] == [(2, "", "")]


# -- the library list ----------------------------------------------------------------------------


def test_the_list_shows_materials_colours_grams_time_nozzle_model_plates_and_folder(web):
    file = three_mf()
    row = row_of(web.get(reverse("jobs:library")).content, "tray.gcode")
    assert swatches(row) == ["#FF8000", "#00AE42"]
    for shown in ("PLA", "PETG", "23.5 g", "1 h 02 min", "0.40 mm", "Bambu Lab X1 Carbon", "customers/acme/"):
        assert shown in row, shown
    assert re.search(r'class="num">2</td>', row)  # plates
    assert f'src="{reverse("jobs:thumbnail", args=[file.pk])}"' in row


def test_the_list_shows_an_older_file_by_its_material(web):
    older_file()
    row = row_of(web.get(reverse("jobs:library")).content, "old.gcode")
    assert "PETG" in row and "3.7 g" in row and "10 min" in row and "0.40 mm" in row
    assert swatches(row) == [] and "—" in row  # no colour, no model, no plates


def test_junk_colour_never_reaches_a_page(web):
    file = three_mf(filaments=[{"slot": 1, "type": "PLA", "colour": JUNK, "grams": 5.0, "mm": None}])
    for url in (reverse("jobs:library"), reverse("jobs:file", args=[file.pk])):
        page = web.get(url).content.decode()
        assert "url(x)" not in page and "background:" not in page
        assert "PLA" in page


# -- the file page and its queue form ------------------------------------------------------------


def test_the_file_page_shows_the_facts_and_each_plate(web):
    file = three_mf()
    page = web.get(reverse("jobs:file", args=[file.pk])).content
    facts = part(page, "file-facts", "</section>")
    for shown in ("customers/acme", "Bambu Lab X1 Carbon", "0.40 mm", "23.5 g", "1 h 02 min"):
        assert shown in facts, shown
    assert swatches(part(page, "filament-slots", "</table>")) == ["#FF8000", "#00AE42"]

    plates = part(page, "plate-table", "</table>")
    rows = plates.split('data-testid="plate-row"')[1:]
    assert len(rows) == 2
    assert "Brackets" in rows[0] and "42 min" in rows[0] and "16.0 g" in rows[0]
    assert swatches(rows[0]) == ["#FF8000"] and "12.50 mm" in rows[0]
    assert "Lids" in rows[1] and "20 min" in rows[1] and swatches(rows[1]) == ["#FF8000", "#00AE42"]
    # The plate with an image shows its own; the other none.
    assert f'src="{reverse("jobs:plate_thumbnail", args=[file.pk, 1])}"' in rows[0] and "<img" not in rows[1]


def test_a_plain_gcode_file_page_has_no_plates_and_no_plate_choice(web):
    file = make_file("plain.gcode", material="PLA")
    page = web.get(reverse("jobs:file", args=[file.pk])).content.decode()
    assert 'data-testid="plate-table"' not in page and 'name="plates"' not in page
    assert "The file was sliced for PLA." in page


def test_the_queue_form_shows_the_facts_and_offers_every_plate_ticked(web):
    file = three_mf()
    page = web.get(reverse("jobs:file", args=[file.pk])).content
    summary = part(page, "queue-facts", "</p>")
    for shown in ("Bambu Lab X1 Carbon", "0.40 mm nozzle", "23.5 g", "1 h 02 min", "2 plates"):
        assert shown in summary, shown
    assert swatches(summary) == ["#FF8000", "#00AE42"]
    plates = part(page, "queue-plates", 'class="grid-2"')
    boxes = re.findall(r'<input type="checkbox" name="plates" value="(\d)"[^>]*>', plates)
    assert boxes == ["1", "2"]
    assert plates.count("checked") == 2
    assert "Brackets" in plates and "Lids" in plates
    assert "The file was sliced for PLA, PETG." in page.decode()


def test_queueing_no_plate_is_refused_with_the_form_again(web):
    file = three_mf()
    response = web.post(
        reverse("jobs:queue_add", args=[file.pk]), {"action": "print", "quantity": 1, "priority": 0}
    )
    assert response.status_code == 400
    assert b"Tick at least one plate." in response.content
    assert b'data-testid="file-facts"' in response.content  # the page again, facts and all
    assert not Job.objects.exists()


def test_a_single_plate_file_offers_no_plate_choice(web):
    file = three_mf(plates=PLATES[:1])
    page = web.get(reverse("jobs:file", args=[file.pk])).content.decode()
    assert 'name="plates"' not in page and 'data-testid="plate-table"' in page
    web.post(reverse("jobs:queue_add", args=[file.pk]), {"action": "print", "quantity": 1, "priority": 0})
    assert list(Job.objects.values_list("plate", flat=True)) == [1]


def test_the_plates_ticked_are_queued_one_job_each(web):
    file = three_mf()
    response = web.post(
        reverse("jobs:queue_add", args=[file.pk]),
        {"action": "print", "quantity": 1, "priority": 0, "plates": ["2"]},
    )
    assert response.status_code == 302, response.content
    assert [(j.file_id, j.plate) for j in Job.objects.all()] == [(file.pk, 2)]
    assert "· plate 2</td>" in web.get(reverse("jobs:file", args=[file.pk])).content.decode()

    web.post(
        reverse("jobs:queue_add", args=[file.pk]),
        {"action": "print", "quantity": 1, "priority": 0, "plates": ["1", "2"]},
    )
    assert sorted(Job.objects.values_list("plate", flat=True)) == [1, 2, 2]


def test_a_plate_the_file_does_not_have_is_refused(web):
    file = three_mf()
    response = web.post(
        reverse("jobs:queue_add", args=[file.pk]),
        {"action": "print", "quantity": 1, "priority": 0, "plates": ["7"]},
    )
    assert response.status_code == 400 and not Job.objects.exists()


# -- the API -------------------------------------------------------------------------------------


def test_the_api_documents_folder_model_slots_and_plates(web):
    components = web.get("/api/v1/openapi.json").json()["components"]["schemas"]
    file = components["FileOut"]["properties"]
    assert {"folder", "printer_model", "filaments", "plates"} <= set(file)
    assert file["filaments"]["items"] == {"$ref": "#/components/schemas/FilamentOut"}
    assert file["plates"]["items"] == {"$ref": "#/components/schemas/PlateOut"}
    assert file["filaments"]["description"] and file["plates"]["description"]
    assert set(components["FilamentOut"]["properties"]) == {"slot", "type", "colour", "grams", "mm"}
    assert components["FilamentOut"]["properties"]["colour"]["description"]
    assert set(components["PlateOut"]["properties"]) == {
        "index",
        "name",
        "estimated_seconds",
        "filament_g",
        "object_height",
        "filaments",
        "thumbnail_url",
    }


def test_the_api_gives_the_facts_the_pages_show(web):
    file = three_mf(
        filaments=[
            {"slot": 1, "type": "PLA", "colour": "#FF8000", "grams": 20.0, "mm": 6700.0},
            {"slot": 2, "type": "PETG", "colour": JUNK, "grams": 3.45, "mm": None},
        ]
    )
    body = web.get(f"/api/v1/files/{file.pk}").json()
    assert body["folder"] == "customers/acme"
    assert body["printer_model"] == "Bambu Lab X1 Carbon"
    assert body["filaments"] == [
        {"slot": 1, "type": "PLA", "colour": "#FF8000", "grams": 20.0, "mm": 6700.0},
        {"slot": 2, "type": "PETG", "colour": "", "grams": 3.45, "mm": None},
    ]
    first, second = body["plates"]
    assert first == {
        "index": 1,
        "name": "Brackets",
        "estimated_seconds": 2520,
        "filament_g": 16.0,
        "object_height": 12.5,
        "filaments": [{"slot": 1, "type": "PLA", "colour": "#FF8000", "grams": 16.0, "mm": 5360.0}],
        "thumbnail_url": first["thumbnail_url"],
    }
    assert first["thumbnail_url"] == reverse("jobs:plate_thumbnail", args=[file.pk, 1])
    assert second["thumbnail_url"] is None
    listed = web.get("/api/v1/files").json()["items"]
    assert [item["filaments"] for item in listed] == [body["filaments"]]


def test_the_api_gives_an_older_file_its_material_as_a_slot(web):
    file = older_file()
    body = web.get(f"/api/v1/files/{file.pk}").json()
    assert body["filaments"] == [{"slot": 1, "type": "PETG", "colour": "", "grams": 3.7, "mm": 1234.5}]
    assert (body["plates"], body["folder"], body["printer_model"]) == ([], "", "")


# -- a real 3MF, uploaded ------------------------------------------------------------------------


def test_an_uploaded_two_plate_3mf_shows_its_colours_and_plates(web, tmp_path):
    data = two_plates(tmp_path / "tray.gcode.3mf").read_bytes()
    response = web.post(reverse("jobs:upload"), {"file": SimpleUploadedFile("tray.gcode.3mf", data)})
    assert response.status_code == 302
    file = GcodeFile.objects.get(name="tray.gcode.3mf")
    row = row_of(web.get(reverse("jobs:library")).content, "tray.gcode.3mf")
    assert swatches(row) == ["#FF0000", "#00FF00"] and "PLA" in row and "PETG" in row
    page = web.get(reverse("jobs:file", args=[file.pk])).content
    rows = part(page, "plate-table", "</table>").split('data-testid="plate-row"')[1:]
    assert ["Brackets" in rows[0], "Lids" in rows[1]] == [True, True]
    assert swatches(rows[1]) == ["#FF0000", "#00FF00"]
    # Each plate shows its own image, and it is served.
    images = [re.search(r'<img src="([^"]+)"', row)[1] for row in rows]
    assert images == [reverse("jobs:plate_thumbnail", args=[file.pk, n]) for n in (1, 2)]
    assert all(web.get(url)["Content-Type"] == "image/png" for url in images)
    assert re.findall(r'name="plates" value="(\d)"', part(page, "queue-plates", 'class="grid-2"')) == [
        "1",
        "2",
    ]
