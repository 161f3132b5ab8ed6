"""Which printer may take which job, and why not: the one place the queue decides.

The dispatcher plans with `plan()`; the queue page explains with `reasons()` (through
`jobs.waiting`, which the API shares) and previews with the same `plan()`, so what the page
says is what the farm does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from jobs.spools import Slot, material_loaded, shortfall, tray_mapping
from printers.formatting import format_duration
from printers.state import State, Tray


class ReasonCode(StrEnum):
    """Why a job is not on a printer, as a stable identifier (the API sends these)."""

    PINNED_ELSEWHERE = "pinned_elsewhere"  # the job is for another printer
    TAG = "tag"
    MATERIAL = "material"
    FILAMENT = "filament"  # the printer's loaded trays (AMS) can't feed the file's filament slots
    NOZZLE = "nozzle"
    SLICED_NOZZLE = "sliced_nozzle"  # the file was sliced for another nozzle
    PRINTER_MODEL = "printer_model"  # the file was sliced for another printer model
    DISABLED = "disabled"
    BUSY = "busy"
    OFFLINE = "offline"
    NOT_READY = "not_ready"
    PAUSED = "paused"
    ERROR = "error"
    BED_NOT_CLEAR = "bed_not_clear"


class Reason(NamedTuple):  # a tuple: hashed and compared in C, counted per printer and job
    code: ReasonCode
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Candidate:
    """A printer as the queue sees it."""

    pk: int
    name: str
    enabled: bool = True
    state: State = State.IDLE
    since: dt.datetime | None = None  # when it entered `state`
    remaining: int | None = None  # seconds left of the print under way
    message: str = ""
    material: str = ""
    nozzle: Decimal | None = None
    model: str = ""  # as slicers name it; blank takes files sliced for any model
    tags: frozenset[str] = frozenset()
    bed_clear: bool = True
    # Its firmware confirms a clear bed itself (PrusaLink's "Set Ready" on the printer's screen).
    sets_ready: bool = False
    job_id: int | None = None  # a job of ours assigned to, uploading to or printing on it
    # The spools it reports loaded (a Bambu AMS): when there are any, they decide the material
    # and colours instead of the operator's `material`.
    trays: tuple[Tray, ...] = ()


@dataclass(frozen=True, slots=True)
class Needs:
    """What a waiting job requires of a printer."""

    job_id: int
    printer_id: int | None = None
    printer_name: str = ""
    tags: frozenset[str] = frozenset()
    material: str = ""
    nozzle: Decimal | None = None
    sliced_nozzle: float | None = None  # from the file's metadata
    sliced_model: str = ""  # the printer model the file was sliced for (a 3MF's, a header's)
    slots: tuple[Slot, ...] = ()  # the filament slots it prints with (its plate's, or its file's)


def _nozzle(value: Decimal | float) -> str:
    return f"{Decimal(str(value)).normalize():f}"


# Vendors slicers write before a model, or leave out: PrusaSlicer's `printer_model` is "MK4"
# where an operator writes "Original Prusa MK4"; Bambu Studio's is "Bambu Lab P1S".
_VENDORS = ("original prusa ", "prusa ", "bambu lab ", "bambulab ", "creality ", "voron ")


def _model_key(name: str) -> str:
    key = " ".join(name.casefold().split())
    return next((key.removeprefix(v) for v in _VENDORS if key.startswith(v)), key)


def same_model(a: str, b: str) -> bool:
    """Printer model names as slicers and operators write them: case, spacing and a leading
    vendor name don't count."""
    return _model_key(a) == _model_key(b)


def mismatches(needs: Needs, printer: Candidate) -> list[Reason]:
    """Why this printer can never take this job as it is configured now."""
    found = []
    if needs.printer_id is not None and needs.printer_id != printer.pk:
        found.append(
            Reason(ReasonCode.PINNED_ELSEWHERE, f"job is for {needs.printer_name or 'another printer'}")
        )
    if missing := sorted(needs.tags - printer.tags):
        found.append(
            Reason(ReasonCode.TAG, f"needs tag{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        )
    if printer.trays:
        if needs.material and not material_loaded(needs.material, printer.trays):
            found.append(Reason(ReasonCode.MATERIAL, f"no {needs.material} loaded"))
        if needs.slots and tray_mapping(needs.slots, printer.trays) is None:
            found.append(Reason(ReasonCode.FILAMENT, shortfall(needs.slots, printer.trays)))
    elif needs.material and needs.material != printer.material:
        loaded = f"material {printer.material} loaded" if printer.material else "no material recorded"
        found.append(Reason(ReasonCode.MATERIAL, f"{loaded}, {needs.material} needed"))
    if needs.nozzle is not None and printer.nozzle is not None and needs.nozzle != printer.nozzle:
        found.append(Reason(ReasonCode.NOZZLE, f"nozzle {_nozzle(printer.nozzle)} ≠ {_nozzle(needs.nozzle)}"))
    elif (
        needs.nozzle is None
        and needs.sliced_nozzle is not None
        and printer.nozzle is not None
        and abs(float(printer.nozzle) - needs.sliced_nozzle) > 0.001
    ):
        found.append(
            Reason(
                ReasonCode.SLICED_NOZZLE,
                f"sliced for a {_nozzle(needs.sliced_nozzle)} nozzle, printer has {_nozzle(printer.nozzle)}",
            )
        )
    if needs.sliced_model and printer.model and not same_model(needs.sliced_model, printer.model):
        found.append(
            Reason(ReasonCode.PRINTER_MODEL, f"sliced for {needs.sliced_model}, printer is {printer.model}")
        )
    return found


def unavailable(printer: Candidate, now: dt.datetime) -> Reason | None:
    """Why this printer can't take any job right now, or None when it is free."""
    if not printer.enabled or printer.state == State.MAINTENANCE:
        return Reason(ReasonCode.DISABLED, "disabled")
    if printer.job_id is not None:
        return Reason(ReasonCode.BUSY, f"busy with job #{printer.job_id}")
    state = printer.state
    if state == State.OFFLINE:
        return Reason(
            ReasonCode.OFFLINE,
            f"offline for {format_duration((now - printer.since).total_seconds())}"
            if printer.since
            else "offline",
        )
    if state == State.CONNECTING:
        return Reason(
            ReasonCode.NOT_READY, f"not ready: {printer.message}" if printer.message else "not ready"
        )
    if state == State.PRINTING:
        return Reason(
            ReasonCode.BUSY,
            f"busy, {format_duration(printer.remaining)} left"
            if printer.remaining is not None
            else "busy printing",
        )
    if state == State.PAUSED:
        return Reason(ReasonCode.PAUSED, "paused mid-print")
    if state == State.ERROR:
        return Reason(ReasonCode.ERROR, f"error: {printer.message}" if printer.message else "in error")
    if not printer.bed_clear:
        if printer.sets_ready:
            return Reason(
                ReasonCode.BED_NOT_CLEAR,
                "bed not confirmed clear: waiting for Set Ready on the printer or Bed cleared here",
            )
        return Reason(ReasonCode.BED_NOT_CLEAR, "bed not confirmed clear")
    return None


def is_free(printer: Candidate) -> bool:
    return printer.enabled and printer.state in State.FREE and printer.bed_clear and printer.job_id is None


def reasons(needs: Needs, printer: Candidate, now: dt.datetime) -> list[Reason]:
    """Everything keeping this job off this printer; empty when the printer could take it now."""
    found = mismatches(needs, printer)
    if why := unavailable(printer, now):
        found.append(why)
    return found


def in_dispatch_order(printers: Iterable[Candidate]) -> list[Candidate]:
    """The order free printers are offered jobs in: oldest printer first (by id, not name,
    so "printer-10" doesn't jump ahead of "printer-2")."""
    return sorted(printers, key=lambda p: p.pk)


def plan(waiting: Iterable[Needs], printers: Iterable[Candidate]) -> dict[int, int]:
    """printer pk -> job id: each job, in queue order, goes to the first free printer it fits.

    Jobs are taken in queue order, so a high-priority job that fits few printers is never
    overtaken on those printers by a lower one; printers are tried `in_dispatch_order`, here
    and nowhere else, so the queue's preview and the dispatcher pick alike.
    """
    free = [p for p in in_dispatch_order(printers) if is_free(p)]
    chosen: dict[int, int] = {}
    for needs in waiting:
        if not free:
            break
        for index, printer in enumerate(free):
            if not mismatches(needs, printer):
                chosen[printer.pk] = needs.job_id
                del free[index]
                break
    return chosen
