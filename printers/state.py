"""The common printer vocabulary every driver maps its protocol onto (DESIGN.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar


class State(StrEnum):
    OFFLINE = "offline"  # no transport: refused, timed out, unreachable
    CONNECTING = "connecting"  # host answers, firmware not ready (Klippy startup, serial closed)
    IDLE = "idle"
    PRINTING = "printing"
    PAUSED = "paused"
    FINISHED = "finished"  # print done, bed not yet cleared
    ERROR = "error"
    MAINTENANCE = "maintenance"  # disabled by an operator, not polled

    # The sets every rule is phrased in (dispatch, commands, cards, drivers), defined once
    # below the class (an enum body would make them members).
    RUNNING: ClassVar[frozenset[State]]  # a print under way: it can be paused or cancelled
    FREE: ClassVar[frozenset[State]]  # no print: can take a job (once its bed is clear), preheat
    UNREACHABLE: ClassVar[frozenset[State]]  # host or firmware not answering: a print's fate unknown
    REACHABLE: ClassVar[frozenset[State]]  # takes commands (maintenance is not polled, not refused)
    NO_READING: ClassVar[frozenset[State]]  # no live reading: temperatures are not shown

    @property
    def label(self) -> str:
        return self.value.capitalize()


State.RUNNING = frozenset({State.PRINTING, State.PAUSED})
State.FREE = frozenset({State.IDLE, State.FINISHED})
State.UNREACHABLE = frozenset({State.OFFLINE, State.CONNECTING})
State.REACHABLE = frozenset(State) - State.UNREACHABLE
State.NO_READING = frozenset({State.OFFLINE, State.MAINTENANCE})


# Temperatures outside this band are sensor garbage (disconnected thermistor reads
# -14 or 2000+ on some boards); show them as unknown rather than as a number.
TEMP_MIN, TEMP_MAX = -40.0, 600.0


def clean_temp(value: object) -> float | None:
    """A temperature from a printer, or None when it is missing or absurd."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or not TEMP_MIN <= number <= TEMP_MAX:
        return None
    return round(number, 1)


def clean_text(value: object, limit: int) -> str:
    """Printer-supplied text made safe to store and render: JSON admits lone surrogates
    (SQLite can't encode them) and NUL (PostgreSQL refuses it); cut to the column size."""
    if not isinstance(value, str):
        return ""
    if value.isascii() and "\x00" not in value:
        return value.strip()[:limit]
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "").strip()[:limit]


def clean_seconds(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value > 60 * 60 * 24 * 365:
        return None
    return int(value)


def clean_percent(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    return round(min(max(float(value), 0.0), 100.0), 1)


def shown_state(*, enabled: bool, stored: str | None) -> State:
    """The state a printer is shown in, and its commands judged by: a disabled printer is in
    maintenance whatever its last reading said; no reading yet is connecting; a value this
    version doesn't know (a newer release wrote it) is an error."""
    if not enabled:
        return State.MAINTENANCE
    if stored is None:
        return State.CONNECTING
    try:
        return State(stored)
    except ValueError:
        return State.ERROR


@dataclass(frozen=True, slots=True)
class Tray:
    """A spool a printer can feed from: a Bambu AMS tray, or its external spool."""

    id: int  # Bambu's tray id: AMS unit * 4 + slot (0-based); EXTERNAL_TRAY for the external spool
    type: str = ""  # "PLA", "PETG-CF", ...
    colour: str = ""  # "#RRGGBB"
    remaining: int | None = None  # percent, where the AMS knows it
    active: bool = False  # feeding now

    @property
    def label(self) -> str:
        if self.id == EXTERNAL_TRAY:
            return "external spool"
        return f"AMS {self.id // 4 + 1} slot {self.id % 4 + 1}"


EXTERNAL_TRAY = 254


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """One reading of a printer, already normalised by its driver."""

    state: State
    message: str = ""
    hotend_actual: float | None = None
    hotend_target: float | None = None
    bed_actual: float | None = None
    bed_target: float | None = None
    progress: float | None = None  # 0-100
    file: str = ""
    elapsed: int | None = None  # seconds printing (excludes pauses where the firmware says so)
    remaining: int | None = None  # seconds
    firmware: str = ""
    chamber_actual: float | None = None
    layer: int | None = None
    layer_count: int | None = None
    trays: tuple[Tray, ...] = ()
    light: bool | None = None  # chamber/work light, where the printer reports it (Bambu)
    # PrusaLink's READY: someone pressed "Set Ready" on the printer, so its bed is clear.
    bed_ready: bool = False
    # The key of the printer's own image of `file`, once the poller stored it (printers.thumbnails).
    thumbnail: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def offline(cls, message: str) -> PrinterStatus:
        return cls(state=State.OFFLINE, message=message)
