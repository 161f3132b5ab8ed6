"""A card's job line names the job's filament (issue 12 item 5): material, colour swatch and
grams per slot, and the printer's own thumbnail where the job's file has none."""

from __future__ import annotations

import dataclasses
import re

import pytest
from django.urls import reverse

from jobs.models import GcodeFile, Job
from jobs.tests.factories import make_file
from printers.cards import render_card
from printers.presenters import card_for
from printers.state import State
from printers.tests.factories import PrinterFactory, set_status
from printers.thumbnails import thumbnail_key

pytestmark = pytest.mark.django_db


def printing_job(file: GcodeFile, **status):
    printer = set_status(
        PrinterFactory(), State.PRINTING, progress=10.0, file="x.gcode", remaining=600, **status
    )
    job = Job.objects.create(file=file, printer=printer, printer_name=printer.name, state=Job.State.PRINTING)
    return printer, job


def filaments_of(html: str) -> list[str]:
    """Each filament's words on the job line: "PETG 12.5 g"."""
    assert 'data-testid="filaments"' in html, html
    found = re.findall(r'data-testid="filament">(.*?)</span>(?=<span class="filament"|</span>)', html, re.S)
    return [re.sub(r"<title>.*?</title>|<[^>]+>", "", f).strip() for f in found]


def test_job_line_shows_each_slots_material_colour_and_grams():
    file = make_file("two-colour.gcode")
    GcodeFile.objects.filter(pk=file.pk).update(
        filaments=[
            {"slot": 1, "type": "PETG", "colour": "#000000", "grams": 12.5, "mm": 4000},
            {"slot": 2, "type": "PLA", "colour": "#F5DC28", "grams": 3},
            {"slot": 3, "type": "", "colour": "", "grams": None},  # named, never used
            {"slot": 4, "type": "PLA", "colour": "red; background:url(x)", "grams": 1},  # not a colour
        ]
    )
    printer, _ = printing_job(file)
    card = card_for(printer)
    shown = [(f.type, f.colour, f.grams) for f in card.job.filaments]
    assert shown == [("PETG", "#000000", "12.5 g"), ("PLA", "#F5DC28", "3 g"), ("PLA", "", "1 g")]
    assert card.job.filaments[0].title == "slot 1: PETG black, 12.5 g"

    html = render_card(card)
    assert filaments_of(html) == ["PETG 12.5 g", "PLA 3 g", "PLA 1 g"]
    assert 'fill="#000000"' in html and 'fill="#F5DC28"' in html and "background" not in html
    assert 'title="slot 2: PLA yellow, 3 g"' in html


def test_an_older_file_shows_its_one_material_and_total():
    printer, _ = printing_job(make_file("plain.gcode", material="PETG"))
    html = render_card(card_for(printer))
    assert filaments_of(html) == ["PETG 3.7 g"]


def test_card_cache_key_follows_the_filaments():
    file = make_file("swap.gcode")
    printer, _ = printing_job(file)
    before = card_for(printer)
    GcodeFile.objects.filter(pk=file.pk).update(
        filaments=[{"slot": 1, "type": "ASA", "colour": "#FFFFFF", "grams": 40}]
    )
    after = card_for(printer)
    assert after != before and hash(after) != hash(before)
    assert filaments_of(render_card(after)) == ["ASA 40 g"] and "ASA" not in render_card(before)


def test_the_printers_thumbnail_stands_in_for_a_job_file_without_one():
    key = thumbnail_key("http://p", "x.gcode", 1, 2)
    printer, job = printing_job(make_file("no-image.gcode"), thumbnail=key)
    html = render_card(card_for(printer))
    assert f'<img src="{reverse("printers:thumbnail", args=[printer.pk, key])}"' in html

    with_image, _ = printing_job(make_file("image.gcode", thumbnail=(0, 160, 60)), thumbnail=key)
    card = card_for(with_image)
    html = render_card(card)
    assert card.job.thumbnail_url and f'<img src="{card.job.thumbnail_url}"' in html
    assert 'data-testid="printer-thumbnail"' not in html
    assert dataclasses.replace(card, thumbnail_url="") != card  # its URL is in the cache key too
