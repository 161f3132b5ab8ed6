"""Every change to a job's state goes through `job_transition`; the queue's other writes here.

A change a user asked for (`by` a user) records its audit entry in the same transaction,
through `via` ("web", "api", "slicer"); the dispatcher's and poller's changes are not audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from jobs.models import GcodeFile, Job, JobEvent
from notifications import events as notify
from printers.changes import announce
from printers.models import Printer, PrinterStatusRow, Tag
from printers.services import printer_bed_set
from printfarm.accounts.audit import audit_record, is_user, user_name

S = Job.State

# The only moves a job can make. Requeueing a finished job makes a new job (history keeps
# the old one), so nothing leaves completed, failed or cancelled.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.ASSIGNED, S.CANCELLED}),
    # assigned -> queued: its printer went away before the transfer began.
    S.ASSIGNED: frozenset({S.UPLOADING, S.QUEUED, S.FAILED, S.CANCELLED}),
    # uploading -> assigned: the transfer broke and waits for its retry; -> completed: upload only.
    S.UPLOADING: frozenset({S.ASSIGNED, S.PRINTING, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.PRINTING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
REASON_MAX = 500


class JobError(Exception):
    """A change the job's current state doesn't allow; the message is for the user."""


class JobChanged(JobError):
    """Someone else (the dispatcher, another page) moved the job first."""


def job_transition(job: Job, to: str, *, by: object = None, reason: str = "", **fields: object) -> Job:
    """Move `job` to state `to` if allowed and if nobody moved it meanwhile; record why.

    The update is conditional on the state the caller saw, so two processes can't both
    take the same job, and a print that ended is recorded once however often it is seen.
    """
    current = job.state
    if to not in TRANSITIONS[current]:
        raise JobError(
            f"A {Job.State(current).label.lower()} job can't become {Job.State(to).label.lower()}."
        )
    now = timezone.now()
    # `reason` is the job's latest note: a move without one clears what no longer applies.
    values: dict[str, object] = {"state": to, "updated_at": now, "reason": reason[:REASON_MAX], **fields}
    if to == S.ASSIGNED and current == S.QUEUED:
        values.setdefault("assigned_at", now)
    elif to == S.PRINTING:
        values.setdefault("started_at", now)
        values.setdefault("transfer_percent", 100.0)
    elif to in Job.FINISHED:
        values.setdefault("finished_at", now)
        values.setdefault("retry_at", None)
    elif to == S.QUEUED:
        values.update(printer=None, printer_name="", assigned_at=None, transfer_percent=None, retry_at=None)
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, state=current).update(**values):
            job.refresh_from_db()
            raise JobChanged(f"Job #{job.pk} is {job.get_state_display().lower()} now; nothing was changed.")
        JobEvent.objects.create(
            job=job, at=now, from_state=current, to_state=to, by=user_name(by), reason=reason[:REASON_MAX]
        )
        notify.job_moved(job, from_state=current, to_state=to, reason=reason)  # the outbox, same transaction
        # The cards of the printer it leaves and the one it goes to show the job.
        going_to = values["printer"].pk if values.get("printer") is not None else values.get("printer_id")
        announce({pk for pk in (job.printer_id, going_to) if pk})
    for name, value in values.items():
        setattr(job, name, value)
    return job


# -- the queue --------------------------------------------------------------------------------


# Key of the PostgreSQL advisory lock held by every writer of queue order (any constant
# that nothing else in the database uses).
QUEUE_LOCK_KEY = 7_146_211


def _lock_queue() -> None:
    """Hold the queue's order (priorities, positions of waiting jobs) until the transaction ends.

    Every writer of queue order takes it first, then reads the queue once: concurrent creates
    took the same positions, and a reorder missed a job created between its reads (issue 7).
    SQLite needs no more than the transaction: it is IMMEDIATE, so BEGIN takes the write lock.
    """
    assert connection.in_atomic_block, "the queue lock lasts until commit: take it in a transaction"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [QUEUE_LOCK_KEY])


def _next_position(priority: int) -> int:
    """After the last waiting job of `priority`; the caller holds the queue lock."""
    last = Job.objects.waiting().filter(priority=priority).aggregate(m=Max("position"))["m"]
    return 0 if last is None else last + 1


def _first_position(priority: int, *, besides: int | None = None) -> int:
    """Before the first waiting job of `priority`; the caller holds the queue lock."""
    first = (
        Job.objects.waiting().filter(priority=priority).exclude(pk=besides).aggregate(m=Min("position"))["m"]
    )
    return 0 if first is None else first - 1


@transaction.atomic
def jobs_create(
    *,
    file: GcodeFile,
    quantity: int = 1,
    priority: int = 0,
    action: str = Job.Action.PRINT,
    printers: Sequence[Printer] = (),
    tags: Iterable[Tag] = (),
    material: str = "",
    nozzle: Decimal | None = None,
    plates: Sequence[int] | None = None,
    by: object = None,
    via: str = "web",
) -> list[Job]:
    """Queue `quantity` copies for any matching printer, or one copy for each of `printers`;
    for a 3MF, each copy is one job per plate of `plates` (default: all its plates)."""
    targets: list[Printer | None] = list(printers) if printers else [None] * quantity
    chosen = file_plates(file, plates)
    _lock_queue()
    position = _next_position(priority)
    tags = list(tags)
    jobs = []
    for offset, (target, plate) in enumerate((t, p) for t in targets for p in chosen):
        job = Job.objects.create(
            file=file,
            plate=plate,
            action=action,
            priority=priority,
            position=position + offset,
            target_printer=target,
            required_material=material,
            required_nozzle=nozzle,
            created_by=by if getattr(by, "pk", None) else None,
        )
        if tags:
            job.required_tags.set(tags)
        JobEvent.objects.create(
            job=job,
            at=job.created_at,
            to_state=S.QUEUED,
            by=user_name(by),
            reason=", ".join(filter(None, [f"for {target.name}" if target else "", _plate_label(plate)])),
        )
        jobs.append(job)
    if is_user(by):
        what = "upload" if action == Job.Action.UPLOAD else "print"
        where = f" for {', '.join(p.name for p in printers)}" if printers else ""
        if tags and not printers:
            where = f" for tag {', '.join(t.name for t in tags)}"
        audit_record(by, "job.queue", target=file, detail=f"{len(jobs)} × {what}{where}", via=via)
    return jobs


def file_plates(file: GcodeFile, plates: Sequence[int] | None = None) -> list[int | None]:
    """The plates to queue: those asked for, all of a 3MF's by default, [None] for plain G-code."""
    known = [p["index"] for p in file.plates]
    if not known:
        if plates:
            raise JobError(f"{file.name} has no plates to choose from")
        return [None]
    if plates is None:
        return known
    if unknown := sorted(set(plates) - set(known)):
        raise JobError(f"{file.name} has no plate {', '.join(map(str, unknown))}")
    if not plates:
        raise JobError("Choose at least one plate")
    return sorted(set(plates))


def plate_of(job: Job) -> dict | None:
    """The job's plate as the file records it ({"index", "estimated_seconds", "filaments", ...})."""
    return next((p for p in job.file.plates if p["index"] == job.plate), None) if job.plate else None


def _plate_label(plate: int | None) -> str:
    return f"plate {plate}" if plate is not None else ""


@transaction.atomic
def job_cancel(
    job: Job, *, by: object = None, via: str = "web", reason: str = "Cancelled by an operator"
) -> Job:
    """Cancel a job in any unfinished state; a running print must be stopped by the caller first."""
    if job.is_finished:
        raise JobError(f"Job #{job.pk} has already {job.get_state_display().lower()}.")
    was_printing = job.state == S.PRINTING
    job_transition(job, S.CANCELLED, by=by, reason=reason)
    if was_printing and job.printer_id:
        printer_bed_set(job.printer_id, clear=False)
    job_cancel_audit(job, by=by, via=via)
    return job


def job_cancel_audit(job: Job, *, by: object, via: str) -> None:
    """The audit entry of a user's cancel; also for one the poller recorded first (jobs.control)."""
    if is_user(by):
        audit_record(by, "job.cancel", target=job, via=via)


@transaction.atomic
def job_requeue(job: Job, *, by: object = None, via: str = "web") -> Job:
    """A new queued copy of a failed or cancelled job, at the front of its priority."""
    if job.state not in (S.FAILED, S.CANCELLED):
        raise JobError("Only a failed or cancelled job can be queued again.")
    _lock_queue()
    new = Job.objects.create(
        file=job.file,
        plate=job.plate,
        action=job.action,
        priority=job.priority,
        position=_first_position(job.priority),
        target_printer=job.target_printer,
        required_material=job.required_material,
        required_nozzle=job.required_nozzle,
        created_by=by if getattr(by, "pk", None) else None,
    )
    new.required_tags.set(job.required_tags.all())
    JobEvent.objects.create(
        job=new, to_state=S.QUEUED, by=user_name(by), reason=f"requeued from job #{job.pk}"
    )
    JobEvent.objects.create(
        job=job,
        from_state=job.state,
        to_state=job.state,
        by=user_name(by),
        reason=f"requeued as job #{new.pk}",
    )
    if is_user(by):
        audit_record(by, "job.requeue", target=job, detail=f"as job #{new.pk}", via=via)
    return new


@transaction.atomic
def job_move(job: Job, direction: str, *, by: object = None, via: str = "web") -> None:
    """Swap a waiting job with its neighbour in queue order ("up" runs sooner)."""
    if job.state != S.QUEUED:
        raise JobError("Only waiting jobs can be moved.")
    _lock_queue()
    waiting = list(Job.objects.waiting().in_queue_order().values_list("pk", flat=True))
    if job.pk not in waiting:
        raise JobChanged(f"Job #{job.pk} is no longer waiting; nothing was changed.")
    if is_user(by):
        audit_record(by, "job.move", target=job, detail=direction, via=via)
    index = waiting.index(job.pk)
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(waiting):
        return
    waiting[index], waiting[other] = waiting[other], waiting[index]
    jobs_reorder(waiting)


@transaction.atomic
def jobs_reorder(ordered_ids: Sequence[int], *, by: object = None, via: str = "web") -> None:
    """Put waiting jobs in this order; waiting jobs not named keep theirs, after those named.

    A job dragged across a priority boundary takes the priority of the job it now follows
    (or precedes, at the top), so the order shown holds. One read under the queue lock, and
    only the jobs whose place changed are written, in primary-key order: a lock order that
    doesn't depend on the positions being rewritten (reorders used to deadlock on PostgreSQL).
    """
    _lock_queue()
    if is_user(by):
        audit_record(by, "job.reorder", target_type="job", detail=f"order: {list(ordered_ids)}", via=via)
    stored = {
        pk: (priority, position)
        for pk, priority, position in Job.objects.waiting().values_list("pk", "priority", "position")
    }
    named = list(dict.fromkeys(pk for pk in ordered_ids if pk in stored))
    rest = sorted(stored.keys() - set(named), key=lambda pk: (-stored[pk][0], stored[pk][1], pk))
    ids = named + rest
    priorities: list[int] = []
    for index, pk in enumerate(ids):
        priority = stored[pk][0]
        if index and priority > priorities[-1]:
            priority = priorities[-1]
        elif not index and len(ids) > 1 and priority < stored[ids[1]][0]:
            priority = stored[ids[1]][0]
        priorities.append(priority)
    places = _fewest_changes(ids, priorities, stored)
    now = timezone.now()
    for pk in sorted(places):
        priority, position = places[pk]
        Job.objects.filter(pk=pk, state=S.QUEUED).update(priority=priority, position=position, updated_at=now)


def _fewest_changes(
    ids: list[int], priorities: list[int], stored: dict[int, tuple[int, int]]
) -> dict[int, tuple[int, int]]:
    """New (priority, position) for the jobs whose place must change so that `ids` is the
    queue order, keeping every stored position that still fits.

    Positions only need to rise within a priority. Two greedy passes: front to back keeps a
    position above the one before it (cheap when jobs moved later), back to front keeps one
    below the one after it (cheap when jobs moved sooner); the pass writing fewer rows wins.
    """

    def sweep(order: range, step: int) -> dict[int, tuple[int, int]]:
        changes: dict[int, tuple[int, int]] = {}
        bound: int | None = None
        previous: int | None = None
        for index in order:
            pk, priority = ids[index], priorities[index]
            if priority != previous:
                bound = None
            previous = priority
            position = stored[pk][1]
            if bound is not None and (position - bound) * step <= 0:
                position = bound + step
            bound = position
            if (priority, position) != stored[pk]:
                changes[pk] = (priority, position)
        return changes

    forward = sweep(range(len(ids)), 1)
    backward = sweep(range(len(ids) - 1, -1, -1), -1)
    return forward if len(forward) <= len(backward) else backward


def job_print_now(job: Job, printer: Printer, *, by: object = None, via: str = "web") -> Job:
    """Pin a waiting job to `printer` and put it first in the queue."""
    if job.state != S.QUEUED:
        raise JobError("Only a waiting job can be sent to a printer now.")
    with transaction.atomic():
        _lock_queue()
        top = Job.objects.waiting().aggregate(m=Max("priority"))["m"]
        priority = job.priority if top is None else max(top, job.priority)
        moved = Job.objects.filter(pk=job.pk, state=S.QUEUED).update(
            target_printer=printer,
            priority=priority,
            position=_first_position(priority, besides=job.pk),
            updated_at=timezone.now(),
        )
        if not moved:
            job.refresh_from_db()
            raise JobChanged(f"Job #{job.pk} is {job.get_state_display().lower()} now; nothing was changed.")
        JobEvent.objects.create(
            job=job,
            from_state=S.QUEUED,
            to_state=S.QUEUED,
            by=user_name(by),
            reason=f"print now on {printer.name}",
        )
        if is_user(by):
            audit_record(by, "job.print_now", target=job, detail=f"on {printer.name}", via=via)
    job.refresh_from_db()
    return job


# -- beds (the write is printers.services.printer_bed_set) -------------------------------------


def print_ended(printer: Printer) -> None:
    """After a print the bed holds a part: no new job until an operator clears it (or auto-clear).
    A PrusaLink printer already reading READY had "Set Ready" pressed after the print ended (a
    new print clears it), faster than the print's end reached us: its bed stays clear."""
    if printer.auto_clear or PrinterStatusRow.objects.filter(pk=printer.pk, bed_ready=True).exists():
        return
    printer_bed_set(printer.pk, clear=False)


def filament_used(job: Job, progress: float | None) -> float | None:
    """The file's (or the job's plate's) estimate scaled by how far the print got (printers
    don't all report it)."""
    expected = job.file.filament_mm
    if (plate := plate_of(job)) is not None:
        lengths = [f["mm"] for f in plate["filaments"] if f.get("mm") is not None]
        expected = sum(lengths) if lengths else None
    if expected is None:
        return None
    share = 1.0 if progress is None else max(0.0, min(progress, 100.0)) / 100.0
    return round(expected * share, 1)


def retry_delay(attempt: int, base: float, cap: float = 300.0) -> dt.timedelta:
    return dt.timedelta(seconds=min(cap, base * 2 ** max(0, attempt - 1)))
