"""Reading the queue and the printers into the shapes `jobs.matching` decides on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db.models import Prefetch

from jobs.matching import Candidate, Needs
from jobs.models import Job
from jobs.presenters import job_filaments
from jobs.spools import Slot
from printers.models import Printer, Tag
from printers.state import shown_state
from printers.trays import stored_trays

CHUNK = 500  # waiting jobs read at a time while planning


def slots_of(job: Job) -> tuple[Slot, ...]:
    """The filament slots a job prints with (loaded with its file)."""
    return tuple(Slot(f.slot, f.type, f.colour) for f in job_filaments(job))


def needs_of(job: Job) -> Needs:
    return Needs(
        job_id=job.pk,
        printer_id=job.target_printer_id,
        printer_name=job.target_printer.name if job.target_printer_id else "",
        tags=frozenset(t.name for t in job.required_tags.all()),
        material=job.required_material,
        nozzle=job.required_nozzle,
        sliced_nozzle=job.file.nozzle_diameter,
        sliced_model=job.file.printer_model,
        slots=slots_of(job),
    )


def waiting_jobs() -> Iterable[Job]:
    return (
        Job.objects.waiting()
        .in_queue_order()
        .select_related("file", "target_printer")
        .prefetch_related(Prefetch("required_tags", queryset=Tag.objects.only("name")))
    )


def waiting_needs() -> Iterator[Needs]:
    """Every waiting job's needs in queue order, read a chunk at a time (a queue can be long)."""
    for job in waiting_jobs().iterator(chunk_size=CHUNK):
        yield needs_of(job)


def active_jobs_by_printer(printer_ids: Iterable[int] | None = None) -> dict[int, int]:
    jobs = Job.objects.active().exclude(printer=None)
    if printer_ids is not None:
        jobs = jobs.filter(printer_id__in=list(printer_ids))
    return dict(jobs.values_list("printer_id", "pk"))


def candidate(printer: Printer, job_id: int | None) -> Candidate:
    status = getattr(printer, "status", None)
    return Candidate(
        pk=printer.pk,
        name=printer.name,
        enabled=printer.enabled,
        # As its card shows it (printers.state.shown_state): one rule for the card and the queue.
        state=shown_state(enabled=printer.enabled, stored=status.state if status else None),
        since=status.state_since if status else None,
        remaining=status.remaining if status else None,
        message=status.message if status else "",
        material=printer.material,
        nozzle=printer.nozzle_diameter,
        model=printer.model,
        tags=frozenset(t.name for t in printer.tags.all()),
        bed_clear=printer.bed_clear,
        sets_ready=printer.protocol == Printer.Protocol.PRUSALINK,
        job_id=job_id,
        trays=stored_trays(status.trays) if status else (),
    )


def candidates(printers: Iterable[Printer] | None = None) -> list[Candidate]:
    """Every printer (or these, loaded `with_status()`) with its stored status and our job on it."""
    printers = list(Printer.objects.with_status() if printers is None else printers)
    busy = active_jobs_by_printer(p.pk for p in printers)
    return [candidate(p, busy.get(p.pk)) for p in printers]
