"""Which printer may take which job, and why not: the one place the queue decides.

The dispatcher plans with `plan()`; the queue page explains with `reasons()` and previews
with the same `plan()`, so what the page says is what the farm does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from printers.presenters import format_age
from printers.state import State

# A printer in one of these states with its bed clear and no job of ours is free.
FREE_STATES = frozenset({State.IDLE, State.FINISHED})


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
    tags: frozenset[str] = frozenset()
    bed_clear: bool = True
    job_id: int | None = None  # a job of ours assigned to, uploading to or printing on it


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


def _nozzle(value: Decimal | float) -> str:
    return f"{Decimal(str(value)).normalize():f}"


def mismatches(needs: Needs, printer: Candidate) -> list[str]:
    """Why this printer can never take this job as it is configured now."""
    found = []
    if needs.printer_id is not None and needs.printer_id != printer.pk:
        found.append(f"job is for {needs.printer_name or 'another printer'}")
    if missing := sorted(needs.tags - printer.tags):
        found.append(f"needs tag{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if needs.material and needs.material != printer.material:
        loaded = f"material {printer.material} loaded" if printer.material else "no material recorded"
        found.append(f"{loaded}, {needs.material} needed")
    if needs.nozzle is not None and printer.nozzle is not None and needs.nozzle != printer.nozzle:
        found.append(f"nozzle {_nozzle(printer.nozzle)} ≠ {_nozzle(needs.nozzle)}")
    elif (
        needs.nozzle is None
        and needs.sliced_nozzle is not None
        and printer.nozzle is not None
        and abs(float(printer.nozzle) - needs.sliced_nozzle) > 0.001
    ):
        found.append(
            f"sliced for a {_nozzle(needs.sliced_nozzle)} nozzle, printer has {_nozzle(printer.nozzle)}"
        )
    return found


def unavailable(printer: Candidate, now: dt.datetime) -> str:
    """Why this printer can't take any job right now, or "" when it is free."""
    if not printer.enabled or printer.state == State.MAINTENANCE:
        return "disabled"
    if printer.job_id is not None:
        return f"busy with job #{printer.job_id}"
    state = printer.state
    if state == State.OFFLINE:
        return (
            f"offline for {format_age((now - printer.since).total_seconds())}" if printer.since else "offline"
        )
    if state == State.CONNECTING:
        return f"not ready: {printer.message}" if printer.message else "not ready"
    if state == State.PRINTING:
        return (
            f"busy, {format_age(printer.remaining)} left"
            if printer.remaining is not None
            else "busy printing"
        )
    if state == State.PAUSED:
        return "paused mid-print"
    if state == State.ERROR:
        return f"error: {printer.message}" if printer.message else "in error"
    if not printer.bed_clear:
        return "bed not confirmed clear"
    return ""


def is_free(printer: Candidate) -> bool:
    return printer.enabled and printer.state in FREE_STATES and printer.bed_clear and printer.job_id is None


def reasons(needs: Needs, printer: Candidate, now: dt.datetime) -> list[str]:
    """Everything keeping this job off this printer; empty when the printer could take it now."""
    found = mismatches(needs, printer)
    if why := unavailable(printer, now):
        found.append(why)
    return found


def plan(waiting: Iterable[Needs], printers: Sequence[Candidate]) -> dict[int, int]:
    """printer pk -> job id: each job, in queue order, goes to the first free printer it fits.

    Jobs are taken in queue order, so a high-priority job that fits few printers is never
    overtaken on those printers by a lower one; printers are tried in the given order.
    """
    free = [p for p in printers if is_free(p)]
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
