"""Cards that tell the whole story (issue 12 item 5): the clock time a print ends, the printer's
own interface one click away, and the card cache that keys on both."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from printers.cards import render_card
from printers.formatting import format_end
from printers.presenters import card_for
from printers.state import State
from printers.tests.factories import PrinterFactory, UserFactory, set_status
from printers.web_ui import web_ui
from printfarm.accounts.models import Role

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- the end clock ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "shown"),
    [
        ("2026-03-02 22:00", "22:00"),  # now
        ("2026-03-02 23:59", "23:59"),
        ("2026-03-03 00:00", "tomorrow 00:00"),  # across midnight
        ("2026-03-03 02:10", "tomorrow 02:10"),
        ("2026-03-05 02:10", "Thu 02:10"),  # within the week: the day's name
        ("2026-03-08 21:59", "Sun 21:59"),
        ("2026-03-09 22:00", "9 Mar 22:00"),  # a week on
        ("2026-03-12 08:05", "12 Mar 08:05"),  # further: the date
    ],
)
def test_end_clock_in_utc(settings, end, shown):
    settings.TIME_ZONE = "UTC"
    assert format_end(at(end), at("2026-03-02 22:00")) == shown


def test_end_clock_is_in_the_servers_time_zone(settings):
    """Tokyo is UTC+9: 14:00 UTC is 23:00 there, so a print ending 90 minutes later ends
    tomorrow, at 00:30 (and in New York, UTC-5, today at 10:30)."""
    now, end = at("2026-03-02 14:00"), at("2026-03-02 15:30")
    settings.TIME_ZONE = "Asia/Tokyo"
    assert format_end(end, now) == "tomorrow 00:30"
    settings.TIME_ZONE = "America/New_York"
    assert format_end(end, now) == "10:30"


def _printing(printer, *, remaining: int | None, last_seen: dt.datetime, state: State = State.PRINTING):
    printer = set_status(printer, state, progress=40.0, file="part.gcode", elapsed=600, remaining=remaining)
    printer.status.last_seen = last_seen  # the reading's time, as the poller stamped it
    return printer


@pytest.mark.django_db
def test_card_shows_when_the_print_ends(settings):
    settings.TIME_ZONE = "UTC"
    now = at("2026-03-02 22:00")
    printer = _printing(PrinterFactory(), remaining=3 * 3600 + 600, last_seen=now - dt.timedelta(seconds=20))
    card = card_for(printer, now=now)
    assert card.time_left == "3 h 10 min left"
    assert card.ends == "ends tomorrow 01:10"
    assert dt.datetime.fromisoformat(card.ends_iso) == at("2026-03-03 01:10")

    html = render_card(card)
    line = re.search(r'data-testid="progress-line">(.*?)</div>', html, re.S).group(1)
    text = re.sub(r"<[^>]+>", "", line)
    assert text.endswith("3 h 10 min left · ends tomorrow 01:10"), text
    assert '<time datetime="2026-03-03T01:10:00+00:00">ends tomorrow 01:10</time>' in html


@pytest.mark.django_db
def test_no_end_clock_while_paused_or_unknown():
    now = timezone.now()
    paused = card_for(_printing(PrinterFactory(), remaining=600, last_seen=now, state=State.PAUSED), now=now)
    unknown = card_for(_printing(PrinterFactory(), remaining=None, last_seen=now), now=now)
    for card in (paused, unknown):
        assert card.ends == "" and 'data-testid="ends"' not in render_card(card)


@pytest.mark.django_db
def test_card_cache_key_follows_the_end_clock_and_the_link(settings):
    """The cache keys on the Card: a later end (the estimate grew) is a new card, and so is
    a moved printer's link; the same reading is the same cached HTML."""
    settings.TIME_ZONE = "UTC"
    now = at("2026-03-02 12:00")
    printer = _printing(PrinterFactory(), remaining=600, last_seen=now)
    first = card_for(printer, now=now)
    assert render_card(first) is render_card(card_for(printer, now=now))  # a cache hit

    later = card_for(_printing(printer, remaining=1800, last_seen=now), now=now)
    assert later != first and later.ends == "ends 12:30" and first.ends == "ends 12:10"
    assert "ends 12:30" in render_card(later) and "ends 12:30" not in render_card(first)

    moved = dataclasses.replace(first, web_ui_url="http://10.0.0.9/")
    assert 'href="http://10.0.0.9/"' in render_card(moved) and 'href="http://10.0.0.9/"' not in render_card(
        first
    )


# -- the printer's own interface ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "base_url", "label", "url"),
    [
        # Mainsail/Fluidd: the host's web server, not Moonraker's API port
        ("moonraker", "http://10.0.0.7:7125", "Mainsail/Fluidd", "http://10.0.0.7/"),
        ("moonraker", "https://klipper.lan:7125/", "Mainsail/Fluidd", "https://klipper.lan/"),
        ("moonraker", "http://[fd00::7]:7125", "Mainsail/Fluidd", "http://[fd00::7]/"),
        ("octoprint", "http://octopi.local", "OctoPrint", "http://octopi.local/"),
        ("octoprint", "http://10.0.0.8:5000/octo/", "OctoPrint", "http://10.0.0.8:5000/octo/"),
        ("prusalink", "http://10.0.0.9", "PrusaLink", "http://10.0.0.9/"),
        # an old row with credentials in its address: never in a link
        ("octoprint", "http://pi:secret@10.0.0.8:5000", "OctoPrint", "http://10.0.0.8:5000/"),
        ("moonraker", "http://user:pw@10.0.0.7:7125?x=1#y", "Mainsail/Fluidd", "http://10.0.0.7/"),
    ],
)
def test_web_ui_per_protocol(protocol, base_url, label, url):
    found = web_ui(protocol, base_url)
    assert found is not None and (found.label, found.url) == (label, url)


@pytest.mark.parametrize(
    ("protocol", "base_url"),
    [
        ("bambu", "mqtts://10.0.0.5:8883"),
        ("bambu", "http://10.0.0.5"),
        ("moonraker", "ftp://x"),
        ("octoprint", ""),
    ],
)
def test_no_web_ui_where_there_is_none(protocol, base_url):
    assert web_ui(protocol, base_url) is None


@pytest.mark.django_db
def test_card_and_printer_page_link_to_the_printers_interface_for_every_role(client):
    printer = set_status(PrinterFactory(base_url="http://pi:pw@10.0.0.7:7125"), State.IDLE)
    bambu = set_status(PrinterFactory(protocol="bambu", serial="01P00A000000009"), State.IDLE)
    client.force_login(UserFactory(role=Role.VIEWER))

    page = client.get(reverse("printers:dashboard")).content.decode()
    card = re.search(rf'<article id="printer-card-{printer.pk}".*?</article>', page, re.S).group(0)
    link = re.search(r'<a class="card-ui"[^>]*>', card).group(0)
    assert 'href="http://10.0.0.7/"' in link
    assert 'target="_blank"' in link and 'rel="noopener noreferrer"' in link
    assert 'title="Open Mainsail/Fluidd (new tab)"' in link
    assert "pw" not in card
    bambu_card = re.search(rf'<article id="printer-card-{bambu.pk}".*?</article>', page, re.S).group(0)
    assert 'data-testid="web-ui"' not in bambu_card

    detail = client.get(reverse("printers:detail", args=[printer.pk])).content.decode()
    opener = re.search(r'<a [^>]*data-testid="open-web-ui"[^>]*>([^<]*)</a>', detail)
    assert opener is not None and "Open Mainsail/Fluidd" in opener.group(1)
    assert 'href="http://10.0.0.7/"' in opener.group(0) and 'rel="noopener noreferrer"' in opener.group(0)


@pytest.mark.django_db
def test_a_tile_is_rendered_once_while_only_what_it_does_not_show_changes(settings):
    """The wall's tile caches on the card without the fields it does not show (NOT_ON_TILE):
    "printing for 12 min" ticking on finds the tile already rendered. The tile rendered from
    the whole card is the same HTML, so no blanked field is one the tile shows."""
    from django.template.loader import get_template

    from printers.cards import NOT_ON_TILE, TILE_TEMPLATE
    from printers.presenters import CardTray

    settings.TIME_ZONE = "UTC"
    now = at("2026-03-02 12:00")
    printer = _printing(PrinterFactory(), remaining=600, last_seen=now)
    card = card_for(printer, now=now)
    later = card_for(printer, now=now + dt.timedelta(minutes=2))
    assert later.since_text != card.since_text  # the dashboard's card changed…
    assert render_card(later, wall=True) is render_card(card, wall=True)  # …the tile did not

    full = dataclasses.replace(
        card,
        time_left="1 min left",
        printed="printed 3 min",
        last_seen_text="last seen 11:59",
        layers="layer 3 of 9",
        thumbnail_url="/thumbnail",
        web_ui_label="Mainsail",
        web_ui_url="http://10.0.0.9/",
        trays=(CardTray("AMS 1 slot 1", "PLA", "#000000", "black", "80%", True, "AMS 1 slot 1: PLA black"),),
    )
    shown_here = {name for name, blank in NOT_ON_TILE.items() if getattr(full, name) != blank}
    assert shown_here == set(NOT_ON_TILE)  # every blanked field is set here
    direct = get_template(TILE_TEMPLATE).render({"card": full})
    assert direct == render_card(full, wall=True)
