"""One action on many printers at once (the dashboard's selection, the API): each printer's
action runs, is refused or fails on its own, is recorded and audited like a single click,
and comes back as its own result line."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from printers.commands import COMMANDS, command_send
from printers.models import Printer
from printers.services import printer_bed_set, printer_update

# Printers asked at once: a farm-wide pause answers in seconds without opening hundreds of
# connections from the web process at the same moment.
CONCURRENCY = 16
# Actions beyond the card commands; enabling and disabling edits the printer (admins).
BED_CLEARED, ENABLE, DISABLE = "bed-cleared", "enable", "disable"
ACTIONS = (*COMMANDS, BED_CLEARED, ENABLE, DISABLE)
# What the confirmation lists the printers for before anything is sent.
DESTRUCTIVE = frozenset({"cancel", "emergency-stop", DISABLE})
MAX_PRINTERS = 1000


@dataclass(frozen=True, slots=True)
class BulkResult:
    printer_id: int
    name: str
    ok: bool
    message: str


def action_label(action: str) -> str:
    if action in COMMANDS:
        return COMMANDS[action].label
    return {BED_CLEARED: "Bed cleared", ENABLE: "Enable", DISABLE: "Disable"}.get(action, action)


def bulk_choices(*, admin: bool) -> list[tuple[str, str, bool]]:
    """(action, label, destructive) for the dashboard's bulk bar, the admin-only ones for admins."""
    return [(a, action_label(a), a in DESTRUCTIVE) for a in ACTIONS if admin or not needs_admin(a)]


def needs_admin(action: str) -> bool:
    """Enabling/disabling is a change of configuration (admins); the rest is an operator's."""
    return action in (ENABLE, DISABLE)


def beds_waiting() -> list[int]:
    """The printers whose finished print waits for someone to confirm the bed is clear."""
    return list(Printer.objects.filter(enabled=True, bed_clear=False).values_list("pk", flat=True))


def _bed_cleared(printer: Printer, by: object, via: str) -> BulkResult:
    changed = printer_bed_set(printer.pk, clear=True, by=by, via=via)
    message = "Bed marked clear: the next job can start." if changed else "The bed was already clear."
    return BulkResult(printer.pk, printer.name, True, message)


def _enabled(printer: Printer, enabled: bool, by: object, via: str) -> BulkResult:
    if printer.enabled == enabled:
        return BulkResult(printer.pk, printer.name, True, f"Already {'enabled' if enabled else 'disabled'}.")
    printer_update(printer=printer, fields={"enabled": enabled}, by=by, via=via)
    message = "Enabled: polled again." if enabled else "Disabled: in maintenance, not polled."
    return BulkResult(printer.pk, printer.name, True, message)


async def bulk_action(
    *, action: str, printer_ids: list[int], by: object, via: str = "web"
) -> list[BulkResult]:
    """Run `action` on each printer (ids not found get a result saying so), in parallel for
    the commands; results in the order the ids came."""
    if action not in ACTIONS:
        raise ValueError(f"No action {action!r}; try one of: {', '.join(ACTIONS)}.")
    ids = list(dict.fromkeys(printer_ids))[:MAX_PRINTERS]
    found = {p.pk: p async for p in Printer.objects.filter(pk__in=ids)}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(pk: int) -> BulkResult:
        printer = found.get(pk)
        if printer is None:
            return BulkResult(pk, "", False, f"No printer {pk}.")
        if action == BED_CLEARED:
            return await sync_to_async(_bed_cleared)(printer, by, via)
        if action in (ENABLE, DISABLE):
            return await sync_to_async(_enabled)(printer, action == ENABLE, by, via)
        async with gate:
            outcome = await command_send(printer=printer, command=COMMANDS[action], by=by, via=via)
        return BulkResult(pk, printer.name, outcome.ok, outcome.message)

    return list(await asyncio.gather(*(one(pk) for pk in ids)))
