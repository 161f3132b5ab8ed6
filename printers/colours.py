"""Filament colours: the one check before a colour is drawn, how close two colours are, and a
colour's name in words ("black", "PETG black"), for the library, the card and the queue."""

from __future__ import annotations

import math
import re
from functools import lru_cache

# The only colour a page draws: anything else (a name, CSS) is dropped, not escaped.
# Bambu writes #RRGGBBAA in 3MFs and RRGGBBAA (no "#") in its AMS reports; drivers add the "#".
_COLOUR = re.compile(r"#([0-9A-Fa-f]{6})(?:[0-9A-Fa-f]{2})?")

# Two colours closer than this (see `colour_distance`) are the same filament colour: a spool of
# another brand or batch ("#C12E1F" Bambu red, "#DE4343" scarlet) still fits; navy for cobalt
# blue, dark grey for black do not.
SAME_COLOUR = 100.0

# Names by nearest colour (a name may have several); a colour far from all is shown as its hex.
_NAMED = (
    ("black", (0, 0, 0)),
    ("dark grey", (70, 70, 70)),
    ("grey", (128, 128, 128)),
    ("light grey", (195, 195, 195)),
    ("white", (255, 255, 255)),
    ("red", (200, 30, 30)),
    ("orange", (255, 120, 20)),
    ("yellow", (245, 220, 40)),
    ("green", (0, 160, 60)),
    ("green", (40, 240, 40)),  # the slicers' bright default greens
    ("teal", (0, 140, 140)),
    ("cyan", (0, 200, 230)),
    ("light blue", (100, 180, 230)),
    ("blue", (20, 70, 200)),
    ("blue", (0, 0, 255)),
    ("dark blue", (15, 35, 130)),
    ("purple", (115, 60, 175)),
    ("magenta", (230, 0, 140)),
    ("magenta", (255, 0, 255)),
    ("pink", (245, 120, 160)),
    ("beige", (215, 200, 160)),
    ("brown", (120, 70, 30)),
)
NAMED_WITHIN = 150.0


def safe_colour(value: object) -> str:
    """'#RRGGBB' for a hex colour (alpha dropped), '' for anything else."""
    match = _COLOUR.fullmatch(value.strip()) if isinstance(value, str) else None
    return f"#{match.group(1).upper()}" if match else ""


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    # "Redmean" weighted RGB: much closer to how far apart colours look than plain RGB, for a
    # few multiplications (0 for equal colours, about 765 from black to white).
    mean = (a[0] + b[0]) / 2
    dr, dg, db = a[0] - b[0], a[1] - b[1], a[2] - b[2]
    return math.sqrt((2 + mean / 256) * dr * dr + 4 * dg * dg + (2 + (255 - mean) / 256) * db * db)


def colour_distance(a: str, b: str) -> float:
    """How far apart two '#RRGGBB' colours look (see SAME_COLOUR)."""
    return _distance(_rgb(a), _rgb(b))


def same_colour(a: str, b: str) -> bool:
    return colour_distance(a, b) < SAME_COLOUR


@lru_cache(maxsize=1024)
def colour_name(colour: str) -> str:
    """'black' for '#000000' and anything near it; the hex itself when no name is near; '' for
    no colour."""
    colour = safe_colour(colour)
    if not colour:
        return ""
    rgb = _rgb(colour)
    distance, name = min((_distance(rgb, ref), name) for name, ref in _NAMED)
    return name if distance < NAMED_WITHIN else colour
