"""Finding a printer on the dashboard: search, sort, groups, density, kept in every link."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from jobs.models import Job
from jobs.tests.factories import make_file
from printers.models import Printer
from printers.services import printer_bed_set
from printers.state import State
from printers.tests.factories import PrinterFactory, set_status

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
URL = "/"


def text(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def names(body: str) -> list[str]:
    """Card (or wall tile) names in page order (a card in two groups counts twice)."""
    return re.findall(r'class="card-name" href="[^"]*"[^>]*>([^<]*)<', body)


def groups(body: str) -> list[tuple[str, list[str]]]:
    sections = re.findall(r'<h2 class="card-group-head">(.*?) <span.*?</h2>(.*?)</section>', body, re.S)
    return [(unescape(label), names(html)) for label, html in sections]


def shown(web, **query) -> list[str]:
    return names(text(web.get(URL, query, **HX)))


@pytest.fixture
def farm(db):
    """Five printers whose names sort wrongly as text, in every situation a sort cares about."""
    p10 = set_status(
        PrinterFactory(name="Printer 10", tags=["lab-a", "petg"], location="Rack 2"),
        State.PRINTING,
        progress=50.0,
        remaining=3 * 3600,
        file="Bracket_v3.gcode",
    )
    p9 = set_status(
        PrinterFactory(name="Printer 9", tags=["lab-a"], location="Rack 10"),
        State.PRINTING,
        progress=90.0,
        remaining=5 * 60,
        file="gear.gcode",
    )
    p2 = set_status(PrinterFactory(name="Printer 2", location="Rack 2"), State.ERROR, message="Heater fault")
    p1 = set_status(PrinterFactory(name="Printer 1", tags=["lab-b"]), State.FINISHED)
    printer_bed_set(p1.pk, clear=False)
    p11 = set_status(PrinterFactory(name="Printer 11", tags=["lab-b"]), State.PAUSED, progress=10.0)
    return {p.name: p for p in (p1, p2, p9, p10, p11)}


def test_names_in_natural_order_by_default(web, farm):
    assert shown(web) == ["Printer 1", "Printer 2", "Printer 9", "Printer 10", "Printer 11"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("printer 1", ["Printer 1", "Printer 10", "Printer 11"]),  # name, any case
        ("PETG", ["Printer 10"]),  # a tag
        ("rack 10", ["Printer 9"]),  # the location
        ("bracket", ["Printer 10"]),  # the file it prints
        ("  printer   2 ", ["Printer 2"]),  # spaces as typed don't matter
        ("printer 11 lab-b", []),  # the words as typed, within one field
        ("nothing-like-this", []),
    ],
)
def test_search_by_each_field(web, farm, query, expected):
    assert shown(web, q=query) == expected


def test_search_finds_the_active_jobs_file(web, farm):
    idle = set_status(PrinterFactory(name="Printer 20"), State.IDLE)
    file = make_file("Phone_stand.gcode")
    Job.objects.create(file=file, printer=idle, printer_name=idle.name, state="assigned")
    assert shown(web, q="phone_STAND") == ["Printer 20"]


def test_search_without_matches_says_so_and_offers_a_way_back(web, farm):
    body = text(web.get(URL, {"q": "zebra"}))
    assert "No printers match “zebra”." in body
    assert "No printers match “zebra”." in text(web.get(URL, {"q": "zebra", "group": "tag"}))
    assert 'value="zebra"' in body  # the box keeps what was searched, without JS too
    assert "data-every-printer" not in body


def test_sort_by_state_puts_who_needs_a_person_first(web, farm):
    # error, a bed to clear, paused, printing (names break ties)
    assert shown(web, sort="state") == ["Printer 2", "Printer 1", "Printer 11", "Printer 9", "Printer 10"]


def test_sort_by_end_time_soonest_first(web, farm):
    # printing by end (5 min before 3 h), then the rest by state
    assert shown(web, sort="end") == ["Printer 9", "Printer 10", "Printer 2", "Printer 1", "Printer 11"]


def test_sort_by_attention(web, farm):
    # error, bed to clear, finishing soon, paused, then printing
    assert shown(web, sort="attention") == ["Printer 2", "Printer 1", "Printer 9", "Printer 11", "Printer 10"]


def test_group_by_tag_lists_a_printer_under_each_of_its_tags(web, farm):
    body = text(web.get(URL, {"group": "tag"}, **HX))
    assert groups(body) == [
        ("lab-a", ["Printer 9", "Printer 10"]),
        ("lab-b", ["Printer 1", "Printer 11"]),
        ("petg", ["Printer 10"]),
        ("(no tag)", ["Printer 2"]),
    ]
    assert '<div class="cards" data-group-key="">' in body  # farm.js: the no-tag group


def test_group_by_location_in_natural_order_with_no_location_last(web, farm):
    body = text(web.get(URL, {"group": "location", "sort": "state"}, **HX))
    assert groups(body) == [
        ("Rack 2", ["Printer 2", "Printer 10"]),
        ("Rack 10", ["Printer 9"]),
        ("(no location)", ["Printer 1", "Printer 11"]),
    ]


def test_search_sort_and_group_combine_with_the_filters(web, farm):
    query = {"state": "printing", "tag": "lab-a", "q": "printer", "sort": "end", "group": "location"}
    body = text(web.get(URL, query))
    assert groups(body) == [("Rack 2", ["Printer 10"]), ("Rack 10", ["Printer 9"])]


def test_bad_values_are_ignored(web, farm):
    body = text(web.get(URL, {"sort": "price", "group": "colour", "density": "huge", "view": "tv"}, **HX))
    assert names(body) == ["Printer 1", "Printer 2", "Printer 9", "Printer 10", "Printer 11"]
    assert "card-group" not in body
    assert "density-compact" not in body


def test_compact_density_is_a_class_on_the_grid(web, farm):
    body = text(web.get(URL, {"density": "compact"}, **HX))
    assert re.search(r'<section id="printer-grid" class="farm density-compact"', body)
    assert re.search(r'<a href="/\?density=compact"[^>]*aria-current="true">Compact</a>', body)


def links(body: str) -> list[str]:
    """The grid's plain links to the dashboard (not the menu's). The state counts' hx-get
    leaves the rest to #filter-context (so a pushed copy of the counts links right too)."""
    grid = body[body.index('<section id="printer-grid"') :]
    return [unescape(h) for h in re.findall(r'href="(/\?[^"]*)"', grid)]


def test_every_link_keeps_the_choices(web, farm):
    chosen = {"q": "printer", "sort": "attention", "group": "tag", "density": "compact", "tag": "lab-a"}
    body = text(web.get(URL, {**chosen, "state": "printing"}))
    dashboard_links = links(body)
    assert dashboard_links
    for link in dashboard_links:
        query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
        changed = {k for k in chosen if query.get(k) != chosen[k]}
        # A link changes at most the one choice it is about.
        assert len(changed) <= 1, (link, changed)
    # The state counts: a plain href with everything, and the context htmx includes.
    assert "/?state=idle&tag=lab-a&q=printer&sort=attention&group=tag&density=compact" in dashboard_links
    context = re.search(r'<span id="filter-context" hidden>(.*?)</span>', body).group(1)
    assert dict(re.findall(r'name="(\w+)" value="([^"]*)"', context)) == chosen
    # The view switch keeps them too; the search form carries the rest as hidden fields.
    assert "/?state=printing&tag=lab-a&view=wall&q=printer&group=tag&density=compact" in (dashboard_links)
    form = re.search(r'<form class="find-bar".*?</form>', body, re.S).group(0)
    assert dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', form)) == {
        "state": "printing",
        "tag": "lab-a",
        "density": "compact",
    }
    assert '<option value="attention" selected>' in form
    assert '<option value="tag" selected>' in form


def test_url_round_trip(web, farm):
    """What a link says is what the page then shows: follow the Wall link and come back."""
    body = text(web.get(URL, {"q": "lab-a", "sort": "end", "density": "compact"}))
    wall = next(link for link in links(body) if "view=wall" in link)
    wall_body = text(web.get(wall))
    assert names(wall_body) == ["Printer 9", "Printer 10"]
    assert 'data-q="lab-a" data-sort="end"' in wall_body
    back = next(link for link in links(wall_body) if not re.search(r"view=|state=|tag=", link))
    assert text(web.get(back)).count('id="farm-search"') == 1
    assert names(text(web.get(back))) == ["Printer 9", "Printer 10"]


def test_cards_carry_their_keys_for_live_pushes(web, farm):
    body = text(web.get(URL, **HX))
    p10 = farm["Printer 10"]
    opening = rf'<article id="printer-card-{p10.pk}"[^>]*>\s*<span class="card-keys"[^>]*>'
    card = re.search(opening, body).group(0)
    assert 'data-find="printer 10\nrack 2\nbracket_v3.gcode\nlab-a\npetg"' in card
    assert 'data-tags="lab-a,petg"' in card
    assert 'data-location="Rack 2"' in card
    state, end, attention = map(int, re.search(r'data-sort="(\d+) (\d+) (\d+)"', card).groups())
    assert state == 3
    assert abs(end - (timezone.now() + dt.timedelta(hours=3)).timestamp()) < 120


def test_an_empty_farm_grouped_says_there_are_no_printers_yet(web):
    assert "No printers yet." in text(web.get(URL, {"group": "location"}))


def test_narrowed_grid_is_not_every_printer(web, farm):
    assert "data-every-printer" in text(web.get(URL, {"sort": "state"}, **HX))
    assert "data-every-printer" not in text(web.get(URL, {"q": "printer"}, **HX))


def test_api_lists_printers_in_natural_order(web, farm):
    from printfarm.api.snapshot import snapshot

    snapshot.invalidate()
    response = web.get("/api/v1/printers")
    assert response.status_code == 200, response.content
    assert [p["name"] for p in response.json()["items"]] == [
        "Printer 1",
        "Printer 2",
        "Printer 9",
        "Printer 10",
        "Printer 11",
    ]
    assert Printer.objects.count() == 5
