"""What the moves themselves tell when no comment does: the highest layer printed and the filament fed."""

from __future__ import annotations

import math

_MOVES = frozenset({"G0", "G1", "G2", "G3"})


class MoveScan:
    """Follows Z and E through G-code lines, in the order they come.

    The highest layer is the highest Z at which a move lays filament (XY travel with E growing): the
    end G-code's lift, Z-hops and travels lay none. The filament fed is, per stretch between two
    `G92 E` resets, the furthest E reached past the stretch's start, so retract/unretract pairs
    count once; it only means something when every line of the file was seen.
    """

    def __init__(self) -> None:
        self.top_z: float | None = None
        self.volumetric = False  # M200 D>0: E counts mm³, not mm of filament
        self._z: float | None = None
        self._relative = False
        self._relative_e = False
        self._e = 0.0
        self._start = 0.0
        self._furthest = 0.0
        self._fed = 0.0

    @property
    def fed_mm(self) -> float:
        return self._fed + self._furthest - self._start

    def feed(self, line: str) -> None:
        words = line.partition(";")[0].split()
        command = words[0].upper() if words else ""
        if command in _MOVES:
            self._move(words)
        elif command == "G92":
            self._set_position(_axes(words[1:]) or {"Z": 0.0, "E": 0.0})  # bare G92 zeroes every axis
        elif command in ("G90", "G91"):
            self._relative = self._relative_e = command == "G91"
        elif command in ("M82", "M83"):
            self._relative_e = command == "M83"
        elif command == "G28":
            self._z = None
        elif command == "M200":
            self.volumetric = _axes(words[1:]).get("D", 0.0) > 0

    def _move(self, words: list[str]) -> None:
        # The hot path of a whole-file read: X and Y are only looked for, never parsed.
        planar = False
        z = e = None
        for word in words[1:]:
            axis = word[:1].upper()
            if axis in ("X", "Y"):
                planar = True
            elif axis == "Z":
                z = _number(word)
            elif axis == "E":
                e = _number(word)
        if z is not None:
            self._z = z if not self._relative else (None if self._z is None else self._z + z)
        if e is None:
            return
        e = self._e + e if self._relative_e else e
        laying = e > self._e and planar
        self._e = e
        self._furthest = max(self._furthest, e)
        if laying and self._z is not None and (self.top_z is None or self._z > self.top_z):
            self.top_z = self._z

    def _set_position(self, axes: dict[str, float]) -> None:
        if "Z" in axes:
            self._z = axes["Z"]
        if "E" in axes:
            self._fed += self._furthest - self._start
            self._e = self._start = self._furthest = axes["E"]


def _number(word: str) -> float | None:
    try:
        value = float(word[1:])
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _axes(words: list[str]) -> dict[str, float]:
    return {word[:1].upper(): value for word in words if (value := _number(word)) is not None}
