"""printers.finding and DashboardFilters without a database: natural order, search, keys, groups."""

from __future__ import annotations

import datetime as dt

import pytest

from printers.finding import (
    NO_LOCATION,
    NO_TAG,
    TIER,
    arrange,
    find_text,
    matches,
    natural_key,
    print_end,
    sort_keys,
)
from printers.presenters import Card, DashboardFilters
from printers.state import State

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def test_natural_key_counts_numbers():
    names = ["sim-10", "sim-2", "Printer 10", "printer 9", "11", "3", "1", "sim-1", "Sim-3"]
    assert sorted(names, key=natural_key) == [
        "1",
        "3",
        "11",
        "printer 9",
        "Printer 10",
        "sim-1",
        "sim-2",
        "Sim-3",
        "sim-10",
    ]


def test_natural_key_is_total_and_mixes_text_and_numbers_safely():
    names = ["a1", "A1", "a01", "a", "1a", "", "x2y10", "x2y9", "x10", "é2"]
    backwards = names[::-1]
    assert sorted(names, key=natural_key) == sorted(backwards, key=natural_key)  # a total order
    assert sorted(names, key=natural_key)[:2] == ["", "1a"]
    assert natural_key("A1") != natural_key("a1")  # ties broken by the name itself
    assert sorted(["x2y10", "x2y9"], key=natural_key) == ["x2y9", "x2y10"]


def test_search_is_the_phrase_within_one_field():
    find = find_text(name="Printer 10", tags=["lab-a"], location="Rack 2", files=["Bracket.gcode", ""])
    assert find == "printer 10\nrack 2\nbracket.gcode\nlab-a"
    assert matches(find, "PRINTER  1")
    assert matches(find, "bracket")
    assert matches(find, "")
    assert not matches(find, "printer 10 rack")  # across two fields
    assert not matches(find, "lab-b")


@pytest.mark.parametrize(
    ("state", "bed_to_clear", "rank"),
    [
        (State.ERROR, False, 0),
        (State.FINISHED, True, 1),
        (State.IDLE, True, 1),  # idle again, the part still on the bed
        (State.PAUSED, False, 2),
        (State.PRINTING, False, 3),
        (State.FINISHED, False, 4),
        (State.IDLE, False, 5),
        (State.OFFLINE, True, 7),  # nobody can start a job there anyway
        (State.MAINTENANCE, False, 8),
    ],
)
def test_state_rank_puts_who_needs_a_person_first(state, bed_to_clear, rank):
    assert sort_keys(state=state, bed_to_clear=bed_to_clear, ends=None, now=NOW).state == rank


def test_end_and_attention_keys():
    soon = sort_keys(state=State.PRINTING, bed_to_clear=False, ends=NOW + dt.timedelta(minutes=10), now=NOW)
    later = sort_keys(state=State.PRINTING, bed_to_clear=False, ends=NOW + dt.timedelta(hours=2), now=NOW)
    unknown = sort_keys(state=State.PRINTING, bed_to_clear=False, ends=None, now=NOW)
    paused = sort_keys(state=State.PAUSED, bed_to_clear=False, ends=None, now=NOW)
    error = sort_keys(state=State.ERROR, bed_to_clear=False, ends=None, now=NOW)
    bed = sort_keys(state=State.FINISHED, bed_to_clear=True, ends=None, now=NOW)
    idle = sort_keys(state=State.IDLE, bed_to_clear=False, ends=None, now=NOW)
    offline = sort_keys(state=State.OFFLINE, bed_to_clear=False, ends=None, now=NOW)
    assert soon.end < later.end < unknown.end < error.end < paused.end < idle.end
    assert error.attention < bed.attention < soon.attention < paused.attention < offline.attention
    assert offline.attention < later.attention < unknown.attention < idle.attention
    assert soon.end == int((NOW + dt.timedelta(minutes=10)).timestamp()) < TIER
    assert str(soon) == f"{soon.state} {soon.end} {soon.attention}"  # the card's data-sort


def test_print_end_is_to_the_minute_and_only_while_printing():
    seen = NOW + dt.timedelta(seconds=12)
    end = print_end(state=State.PRINTING, remaining=600, last_seen=seen, progress=50.0)
    assert end == NOW + dt.timedelta(minutes=10)
    assert print_end(state=State.PAUSED, remaining=600, last_seen=seen, progress=50.0) is None
    assert print_end(state=State.PRINTING, remaining=None, last_seen=seen, progress=50.0) is None
    assert print_end(state=State.PRINTING, remaining=0, last_seen=seen, progress=61.0) is None


def card(name: str, *, tags=(), location="", state=State.IDLE, ends=None, bed=False) -> Card:
    return Card(
        pk=abs(hash(name)) % 10_000,
        name=name,
        url="",
        state=state.value,
        state_label=state.label,
        hotend="",
        bed="",
        hotend_compact="",
        bed_compact="",
        progress=None,
        progress_text="",
        time_left="",
        printed="",
        file="",
        message="",
        since_iso="",
        since_text="",
        last_seen_text="",
        tags=tuple(tags),
        location=location,
        find=find_text(name=name, tags=tags, location=location, files=()),
        sort_keys=sort_keys(state=state, bed_to_clear=bed, ends=ends, now=NOW),
    )


def labels(sections) -> list[tuple[str, list[str]]]:
    return [(s.label, [c.name for c in s.cards]) for s in sections]


def test_arrange_sorts_searches_and_groups():
    cards = [
        card("p10", tags=["b", "a"], location="Shelf 10"),
        card("p2", tags=["a"], location="Shelf 2", state=State.ERROR),
        card("p1"),
        card("p3", tags=["b"], location="Shelf 2", state=State.PRINTING, ends=NOW + dt.timedelta(minutes=5)),
    ]
    assert labels(arrange(cards)) == [("", ["p1", "p2", "p3", "p10"])]
    assert labels(arrange(cards, sort="state")) == [("", ["p2", "p3", "p1", "p10"])]  # p1, p10 idle: names
    assert labels(arrange(cards, sort="end")) == [("", ["p3", "p2", "p1", "p10"])]
    assert labels(arrange(cards, query="shelf 2")) == [("", ["p2", "p3"])]
    assert labels(arrange(cards, group="tag")) == [
        ("a", ["p2", "p10"]),
        ("b", ["p3", "p10"]),
        (NO_TAG, ["p1"]),
    ]
    assert labels(arrange(cards, group="location", sort="attention")) == [
        ("Shelf 2", ["p2", "p3"]),
        ("Shelf 10", ["p10"]),
        (NO_LOCATION, ["p1"]),
    ]
    assert arrange(cards, group="tag")[-1].key == ""
    assert labels(arrange(cards, query="nothing", group="tag")) == []
    assert labels(arrange(cards, sort="bogus", group="bogus")) == [("", ["p1", "p2", "p3", "p10"])]


def test_filters_parse_and_ignore_bad_values():
    f = DashboardFilters.from_query(
        {"q": "  Ben   chy ", "sort": "end", "group": "location", "density": "compact", "state": "printing"}
    )
    assert (f.q, f.sort, f.group, f.density, f.state) == ("Ben chy", "end", "location", "compact", "printing")
    bad = DashboardFilters.from_query(
        {
            "q": "x" * 500,
            "sort": "price",
            "group": "colour",
            "density": "huge",
            "state": "on fire",
            "view": "tv",
        }
    )
    assert (bad.sort, bad.group, bad.density, bad.state, bad.view) == ("name", "", "comfortable", "", "cards")
    assert len(bad.q) == 100
    assert DashboardFilters.from_query({}) == DashboardFilters()


def test_filters_href_leaves_defaults_out_and_keeps_the_rest():
    assert DashboardFilters().href() == "/"
    assert DashboardFilters().keep == ""
    f = DashboardFilters(state="idle", tag="lab-a", q="sim 2", sort="end", group="tag", density="compact")
    assert f.href() == "/?state=idle&tag=lab-a&q=sim+2&sort=end&group=tag&density=compact"
    assert f.href(sort="name", density="comfortable") == "/?state=idle&tag=lab-a&q=sim+2&group=tag"
    assert f.keep == "tag=lab-a&q=sim+2&sort=end&group=tag&density=compact"  # all but the state
    assert f.kept == [
        ("tag", "lab-a"),
        ("q", "sim 2"),
        ("sort", "end"),
        ("group", "tag"),
        ("density", "compact"),
    ]
    assert [(link.label, link.active) for link in f.density_links()] == [
        ("Comfortable", False),
        ("Compact", True),
    ]
    assert f.narrowed and not DashboardFilters(sort="end").narrowed


def test_the_wall_orders_by_attention_unless_told_otherwise():
    wall = DashboardFilters.from_query({"view": "wall"})
    assert wall.sort == "attention" and wall.href() == "/?view=wall"
    # The Wall link from a plain dashboard leaves the order to the wall ...
    assert DashboardFilters.from_query({}).href(view="wall") == "/?view=wall"
    # ... an order chosen on purpose is kept, and leaving the wall drops its own default.
    assert DashboardFilters.from_query({"sort": "end"}).href(view="wall") == "/?view=wall&sort=end"
    assert wall.href(view="cards") == "/"
    assert DashboardFilters.from_query({"view": "wall", "sort": "name"}).href() == "/?view=wall&sort=name"
