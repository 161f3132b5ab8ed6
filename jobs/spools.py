"""Which loaded tray feeds each filament slot of a job: the one rule the queue's reason, the
dispatcher's choice and the print's `ams_mapping` all come from."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from printers.colours import colour_distance, colour_name, same_colour
from printers.state import EXTERNAL_TRAY, Tray

UNUSED = -1  # a slot the print does not use (Bambu's ams_mapping value)


class Slot(NamedTuple):
    """One filament slot a job prints with, as the sliced file names it."""

    number: int  # 1-based, as the slicer numbers them
    type: str = ""  # "PLA", "PETG-CF"; "" takes any loaded filament
    colour: str = ""  # "#RRGGBB"; "" takes any colour


def material_family(kind: str) -> str:
    """What a material is for matching: its first word, case and a trailing "+" aside.

    "PLA Basic", "PLA Matte", "PLA Silk" and "PLA+" are all PLA: a finish or a brand's name
    for the same material, printed with the same settings. "PLA-CF" and "PETG-CF" are other
    materials (fibre-filled: they need a hardened nozzle), as Bambu's AMS reports them.
    """
    words = kind.casefold().split()
    return words[0].rstrip("+") if words else ""


def same_material(a: str, b: str) -> bool:
    return bool(family := material_family(a)) and family == material_family(b)


def feeds(tray: Tray, slot: Slot) -> bool:
    """Can this tray feed this slot? An empty tray feeds nothing; a tray whose colour is not
    known doesn't feed a slot that names one."""
    if not tray.type:
        return False
    if slot.type and not same_material(slot.type, tray.type):
        return False
    return not slot.colour or bool(tray.colour) and same_colour(slot.colour, tray.colour)


def _distinct(slots: Sequence[Slot]) -> tuple[Slot, ...]:
    seen: dict[int, Slot] = {}
    for slot in slots:
        seen.setdefault(slot.number, slot)  # a malformed file naming a slot twice: the first
    return tuple(seen.values())


def _assign(slots: tuple[Slot, ...], trays: tuple[Tray, ...]) -> dict[int, Tray]:
    """slot number -> its tray: as many slots fed as can be, each by its own tray, each slot's
    closest colour preferred (a maximum bipartite matching by augmenting paths; a file has a
    handful of slots and a printer at most a few dozen trays)."""
    options = [
        sorted(
            (t for t in trays if feeds(t, slot)),
            key=lambda t: (colour_distance(slot.colour, t.colour) if slot.colour else 0.0, t.id),
        )
        for slot in slots
    ]
    owner: dict[int, int] = {}  # tray id -> index of the slot it feeds

    def place(index: int, tried: set[int]) -> bool:
        # A free tray first: a slot only takes another's tray when that one can move on.
        free = next((t for t in options[index] if t.id not in owner), None)
        if free is not None:
            owner[free.id] = index
            return True
        for tray in options[index]:
            if tray.id in tried:
                continue
            tried.add(tray.id)
            if place(owner[tray.id], tried):
                owner[tray.id] = index
                return True
        return False

    for index in range(len(slots)):
        place(index, set())
    by_id = {t.id: t for t in trays}
    return {slots[index].number: by_id[tray_id] for tray_id, index in owner.items()}


@lru_cache(maxsize=4096)
def tray_mapping(slots: tuple[Slot, ...], trays: tuple[Tray, ...]) -> tuple[int, ...] | None:
    """The tray id feeding each slot (index: slot number - 1; UNUSED for a slot the job doesn't
    use), or None when the loaded trays can't feed every slot, each from a tray of its own."""
    slots = _distinct(slots)
    fed = _assign(slots, trays)
    if len(fed) < len(slots):
        return None
    mapping = [UNUSED] * max((s.number for s in slots), default=0)
    for number, tray in fed.items():
        mapping[number - 1] = tray.id
    return tuple(mapping)


def _words(kind: str, colour: str, *, exact: bool) -> str:
    name = colour_name(colour)
    if exact and name and name != colour:
        name = f"{name} {colour}"  # two different shades both called "blue"
    return " ".join(w for w in (kind or "filament", name) if w)


def _key(kind: str, colour: str) -> tuple[str, str]:
    return material_family(kind), colour_name(colour)


@lru_cache(maxsize=4096)
def shortfall(slots: tuple[Slot, ...], trays: tuple[Tray, ...]) -> str:
    """Why the trays can't feed the slots, in words: "needs PETG black in slot 2; AMS has PLA
    black, PETG white". Only for slots and trays `tray_mapping` refused."""
    slots = _distinct(slots)
    fed = _assign(slots, trays)
    unfed = [s for s in slots if s.number not in fed]
    loaded = [t for t in trays if t.type]
    # Slots some tray could feed are short of a second such tray, not of a colour.
    taken = {s.number for s in unfed if any(feeds(t, s) for t in trays)}
    # A colour name that reads the same on both sides of a mismatch gets its hex as well.
    clash = {_key(s.type, s.colour) for s in unfed if s.colour and s.number not in taken} & {
        _key(t.type, t.colour) for t in loaded if t.colour
    }
    needed = []
    for slot in unfed:
        words = _words(slot.type, slot.colour, exact=_key(slot.type, slot.colour) in clash)
        too = " too (each slot needs a tray of its own)" if slot.number in taken else ""
        needed.append(f"{words} in slot {slot.number}{too}")
    shown = []
    for tray in loaded:
        words = _words(tray.type, tray.colour, exact=_key(tray.type, tray.colour) in clash)
        shown.append(f"{words} on the external spool" if tray.id == EXTERNAL_TRAY else words)
    has = f"AMS has {', '.join(shown)}" if shown else "no filament loaded"
    return f"needs {', '.join(needed)}; {has}"


def material_loaded(material: str, trays: tuple[Tray, ...]) -> bool:
    """A job that asks for a material (the queue form's "material") fits a printer with trays
    when one of them holds it."""
    return any(same_material(material, t.type) for t in trays)
