"""A printer's trays (Bambu AMS slots and external spool) read back from its status row's JSON
(written as `dataclasses.asdict(Tray)`), each value checked: the row is what a printer on the
network told us."""

from __future__ import annotations

from printers.colours import safe_colour
from printers.state import Tray, clean_text

MAX_TRAYS = 32  # four AMS units of four slots, a few single-slot AMS HT, the external spool


def _tray_id(value: object) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255
    return value if ok else None


def _remaining(value: object) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100
    return value if ok else None


def stored_trays(rows: object) -> tuple[Tray, ...]:
    """The trays of a status row's `trays`, in tray order; anything malformed is left out."""
    if not isinstance(rows, list) or not rows:
        return ()
    trays = {
        tray_id: Tray(
            id=tray_id,
            type=clean_text(row.get("type"), 40),
            colour=safe_colour(row.get("colour")),
            remaining=_remaining(row.get("remaining")),
            active=row.get("active") is True,
        )
        for row in rows[:MAX_TRAYS]
        if isinstance(row, dict) and (tray_id := _tray_id(row.get("id"))) is not None
    }
    return tuple(trays[k] for k in sorted(trays))
