"""Finding a printer among hundreds: natural name order, search, sort keys, groups.

The keys are computed once per card (`card_for`) and travel with it: the server sorts and
searches by them, and the card's `data-find` / `data-sort` attributes let a pushed card tell
the page (static/js/farm.js) that what the grid shows or its order has changed, without the
page knowing the rules. So both sides agree by construction.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from printers.state import State

if TYPE_CHECKING:
    from printers.presenters import Card

SORTS = ("name", "state", "end", "attention")
GROUPS = ("tag", "location")
NO_TAG, NO_LOCATION = "(no tag)", "(no location)"

# Finishing within this much is "finishing soon": someone should be there to take it off.
SOON = dt.timedelta(minutes=15)
# Sort keys are single integers so the page can compare them: tier * TIER + end (epoch s).
TIER = 10**10

# sort=state: who needs a person first. A free printer whose bed waits to be cleared (finished,
# or idle again after the print) ranks right after errors: it blocks the next job.
STATE_RANK = {
    State.ERROR: 0,
    # 1: a bed to clear
    State.PAUSED: 2,
    State.PRINTING: 3,
    State.FINISHED: 4,
    State.IDLE: 5,
    State.CONNECTING: 6,
    State.OFFLINE: 7,
    State.MAINTENANCE: 8,
}
BED_TO_CLEAR = 1

_DIGITS = re.compile(r"([0-9]+)")


@lru_cache(maxsize=8192)  # names rarely change: the grid of 1,000 sorts in a few ms this way
def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """ "sim-2" before "sim-10", "Printer 9" before "Printer 10", case ignored.

    re.split with a group alternates text and digit runs (text first, maybe ""), so the
    parts compare element by element as str, int, str, … and never str against int; the name
    itself breaks ties ("007" and "7", "A" and "a") so the order is total.
    """
    parts = _DIGITS.split(name.casefold())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def find_text(*, name: str, tags: Iterable[str], location: str, files: Iterable[str]) -> str:
    """What a search looks in, lower-cased, one field a line (a word never spans two)."""
    fields = [name, location, *files, *tags]
    return "\n".join(f for f in fields if f).lower()


def matches(find: str, query: str) -> bool:
    """The query, as typed (spaces collapsed), is part of one field: "printer 1" finds
    "Printer 1", "Printer 10" and "Printer 11", not every printer with a 1 somewhere. farm.js
    `matches` does the same on the card's data-find."""
    return " ".join(query.lower().split()) in find


@dataclass(frozen=True, slots=True)
class SortKeys:
    """A card's keys for sort=state, end and attention (name order needs none)."""

    state: int
    end: int
    attention: int

    def __str__(self) -> str:
        return f"{self.state} {self.end} {self.attention}"


def sort_keys(*, state: State, bed_to_clear: bool, ends: dt.datetime | None, now: dt.datetime) -> SortKeys:
    """`ends`: when a printing print should end (its reading's time plus the time left),
    None when unknown or not printing."""
    blocked = bed_to_clear and state in State.FREE
    rank = BED_TO_CLEAR if blocked else STATE_RANK[state]
    end_at = int(ends.timestamp()) if ends is not None else 0
    # sort=end: the soonest end first; then printing with no estimate; the rest in sort=state order.
    if state == State.PRINTING and ends is not None:
        end = end_at
    else:
        end = TIER * (1 + (0 if state == State.PRINTING else 1 + rank))
    # sort=attention: errors, beds to clear, finishing soon (soonest first), paused, unreachable,
    # then the rest: printing by end, free, maintenance.
    if state == State.ERROR:
        tier = 0
    elif blocked:
        tier = 1
    elif state == State.PRINTING and ends is not None and ends - now <= SOON:
        tier = 2
    elif state == State.PAUSED:
        tier = 3
    elif state in State.UNREACHABLE:
        tier = 4
    elif state == State.PRINTING:
        tier = 5
    elif state == State.MAINTENANCE:
        tier = 7
    else:
        tier = 6
    within = (end_at if ends is not None else TIER - 1) if tier in (2, 5) else 0  # soonest first
    attention = tier * TIER + within
    return SortKeys(state=rank, end=end, attention=attention)


def print_end(
    *, state: State, remaining: int | None, last_seen: dt.datetime | None, progress: float | None
) -> dt.datetime | None:
    """When a printing print should end, to the minute (so the order holds while the
    estimate does); None while paused (its end moves on as it waits) or unknown."""
    if state != State.PRINTING or remaining is None or last_seen is None:
        return None
    if remaining == 0 and (progress or 0) < 100:
        return None  # "0 s left" part-way through is a missing estimate
    end = last_seen + dt.timedelta(seconds=remaining + 30)
    return end.replace(second=0, microsecond=0)


# -- the grid: filtered, sorted, grouped ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Section:
    """One group of the grid; the whole grid is one section with no label."""

    label: str
    key: str  # what farm.js checks a card's tags/location against ("" for the no-* group)
    cards: tuple[Card, ...]


def _ordered(cards: Iterable[Card], sort: str) -> list[Card]:
    by_name = sorted(cards, key=lambda c: (c.rank, natural_key(c.name)))
    if sort == "name" or sort not in SORTS:
        return by_name
    return sorted(by_name, key=lambda c: getattr(c.sort_keys, sort))  # stable: names break ties


def arrange(cards: Sequence[Card], *, query: str = "", sort: str = "name", group: str = "") -> list[Section]:
    """The cards that match `query`, in `sort` order, in sections per tag or location.

    A printer with several tags appears under each: a tag's section shows what the tag's filter
    shows (sections sum to more than the farm then). The copies share the card's id, and htmx
    swaps every element with a pushed card's id, so each copy stays live.
    """
    shown = [c for c in cards if matches(c.find, query)] if query.strip() else list(cards)
    shown = _ordered(shown, sort)
    if group not in GROUPS:
        return [Section(label="", key="", cards=tuple(shown))]
    groups: dict[str, list[Card]] = {}
    for card in shown:
        for key in (card.tags or ("",)) if group == "tag" else (card.location,):
            groups.setdefault(key, []).append(card)
    empty = NO_TAG if group == "tag" else NO_LOCATION
    keys = sorted((k for k in groups if k), key=natural_key)
    sections = [Section(label=k, key=k, cards=tuple(groups[k])) for k in keys]
    if "" in groups:
        sections.append(Section(label=empty, key="", cards=tuple(groups[""])))
    return sections
