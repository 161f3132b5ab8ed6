"""Farm-wide reads that several screens share, so they can't disagree.

The dashboard's state filters, the API's `/status` and `/metrics` all count printers per
state; each used to count its own way (by status row, by printer, with or without the
disabled ones). Every count now goes through `state_tally`, which judges each printer with
`shown_state`, the rule its card is drawn by.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, QuerySet

from printers.models import Printer
from printers.state import State, shown_state


def state_tally(groups: Iterable[tuple[bool, str | None, int]]) -> dict[State, int]:
    """Printers per shown state, every state present (zeros too), from (enabled, stored state
    or None without a status row, how many) groups."""
    counts = dict.fromkeys(State, 0)
    for enabled, stored, n in groups:
        counts[shown_state(enabled=enabled, stored=stored)] += n
    return counts


def farm_state_counts(printers: QuerySet[Printer] | None = None) -> dict[State, int]:
    """Printers per state over the whole farm (or these printers), as their cards show them
    (one query)."""
    printers = Printer.objects.all() if printers is None else printers
    groups = printers.order_by().values_list("enabled", "status__state").annotate(n=Count("pk"))
    return state_tally(groups)
