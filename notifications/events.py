"""Recording what happened into the outbox: the one-line hooks the printers and jobs services
call inside their own transactions (so an event commits with the change it reports, or not at
all), and the periodic checks' keyed events.

Model-level only (it imports no other app's services), so any app may call it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from notifications.models import Event, EventKind

TEXT_MAX = 500


def record(
    kind: EventKind | str,
    *,
    printer: Any = None,
    job: Any = None,
    text: str = "",
    key: str = "",
    rule: Any = None,
) -> Event | None:
    """Put an event in the outbox; joins the caller's transaction. With a `key`, an event
    already recorded under it (by another checker, or an earlier round) is not recorded
    again, and None is returned."""
    printer_id = printer if isinstance(printer, int) or printer is None else printer.pk
    printer_name = (
        getattr(printer, "name", "") if printer is not None and not isinstance(printer, int) else ""
    )
    if printer_id is not None and not printer_name:
        from printers.models import Printer

        found = Printer.objects.filter(pk=printer_id).values_list("name", flat=True).first()
        if found is None:
            printer_id = None  # deleted since the caller read it: the event keeps the job's name
        printer_name = found or ""
    file_name = ""
    if job is not None:
        file_name = job.file.name if job.file_id else ""
        printer_name = printer_name or job.printer_name
    event = Event(
        kind=kind,
        printer_id=printer_id,
        printer_name=printer_name[:80],
        job=job,
        file_name=file_name[:255],
        text=text[:TEXT_MAX],
        key=key[:200],
        rule=rule,
    )
    if not key:
        event.save()
        return event
    try:
        with transaction.atomic():  # a savepoint: a duplicate key leaves the caller's transaction usable
            event.save()
    except IntegrityError:
        return None
    return event


# -- hooks (one call each from the services that make the change) ------------------------------


def job_moved(job: Any, *, from_state: str, to_state: str, reason: str) -> None:
    """jobs.services.job_transition: a print finished, a print failed, a transfer failed."""
    if to_state == "completed" and from_state == "printing":
        record(EventKind.PRINT_FINISHED, printer=job.printer_id, job=job, text=reason)
    elif to_state == "failed" and from_state == "printing":
        record(EventKind.PRINT_FAILED, printer=job.printer_id, job=job, text=reason)
    elif to_state == "failed" and from_state in ("assigned", "uploading"):
        record(EventKind.TRANSFER_FAILED, printer=job.printer_id, job=job, text=reason)


def printer_errors(events: Iterable[tuple[int, str, str]]) -> None:
    """printers.services.printer_status_apply: the printers whose state moved into error."""
    for printer_id, kind, message in events:
        if kind == "error":
            record(EventKind.PRINTER_ERROR, printer=printer_id, text=message)


def bed_to_clear(printer_id: int) -> None:
    """printers.services.printer_bed_set: a print ended and its bed waits for an operator."""
    record(
        EventKind.BED_TO_CLEAR, printer=printer_id, text="The print is done: clear the bed for the next job"
    )
