"""Rendered printer cards, cached by the view-model they show.

A card's HTML is a pure function of its frozen `Card` (plus the wall switch), so the
`Card` itself is the cache key: a printer whose reading did not change costs a dict lookup
instead of a template render. This is the precomputed snapshot DESIGN.md asks of the hot
read path: the grid of 200 printers and every websocket push share it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import lru_cache

from django.middleware.csrf import get_token
from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe

from printers.presenters import Card

CARD_TEMPLATE = "printers/dashboard.html#printer-card"
TILE_TEMPLATE = "printers/dashboard.html#wall-tile"  # the wall's: no forms, a third of the bytes
# The token differs per session, so cached cards carry a placeholder filled in per page.
_CSRF_PLACEHOLDER = "__printfarm_csrf_token__"


# What the wall's tile does not show, blanked in its cache key: a card whose "for 12 s" ticked
# on still finds its tile rendered (most of 1,000 tiles on each load of the wall).
NOT_ON_TILE = {
    "time_left": "",
    "printed": "",
    "since_iso": "",
    "since_text": "",
    "last_seen_text": "",
    "actions": (),
    "trays": (),
    "layers": "",
    "thumbnail_url": "",
    "web_ui_label": "",
    "web_ui_url": "",
}


def render_card(card: Card, *, wall: bool = False, oob: bool = False, with_csrf: bool = False) -> str:
    """`oob`: marked for htmx's out-of-band swap (a websocket push). Marked here, not in the
    template, so a pushed card and the same card in a page share one cached render."""
    html = _render_tile(dataclasses.replace(card, **NOT_ON_TILE)) if wall else _render_card(card, with_csrf)
    if not oob:
        return html
    end = html.index(">", html.index("<article "))  # the card's own tag: its attributes hold no ">"
    return f'{html[:end]} hx-swap-oob="true"{html[end:]}'


@lru_cache(maxsize=4096)
def _render_tile(card: Card) -> str:
    return get_template(TILE_TEMPLATE).render({"card": card})


@lru_cache(maxsize=4096)
def _render_card(card: Card, with_csrf: bool) -> str:
    context = {"card": card}
    if with_csrf:
        context["csrf_token"] = _CSRF_PLACEHOLDER
    return get_template(CARD_TEMPLATE).render(context)


def render_grid_cards(cards: Iterable[Card], *, request, wall: bool) -> SafeString:
    """Cards for a page: with a working CSRF field each, so the forms post without JS too."""
    html = "".join(render_card(card, wall=wall, with_csrf=not wall) for card in cards)
    return mark_safe(html.replace(_CSRF_PLACEHOLDER, get_token(request)))
