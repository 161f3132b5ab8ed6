"""Dispatch, in the poller process: free printers get the next fitting job, files are sent,
prints started and followed by the polled status to their end.

Every state change goes through `jobs.services.job_transition`, which only succeeds from the
state this process saw: two pollers can't take one job, and an ending is recorded once.
A job survives restarts in the database: `uploading` is sent again, `printing` is matched
to what its printer reports on the first poll.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Count, F, Max
from django.utils import timezone

from jobs import services
from jobs.library import stored_path
from jobs.matching import FREE_STATES, Candidate, plan
from jobs.models import Job
from jobs.queries import waiting_needs
from printers.drivers.base import DriverError
from printers.models import Printer, PrinterStatusRow
from printers.state import PrinterStatus, State

if TYPE_CHECKING:
    from printers.coordinator import Coordinator

logger = logging.getLogger(__name__)

S = Job.State
PROGRESS_EVERY = 1.0  # seconds between two transfer-progress writes
START_GRACE = 20.0  # seconds a started print may take to show up as printing
REPLAN_EVERY = 10.0  # seconds; a plan whose inputs look unchanged is still redone this often
RUNNING = frozenset({State.PRINTING, State.PAUSED})
UNKNOWN = frozenset({State.OFFLINE, State.CONNECTING})


def _db(func):
    return sync_to_async(func, thread_sensitive=True)


@dataclass
class Follow:
    """A print we started (or found running at start-up) and watch until it ends."""

    job_id: int
    printer_id: int
    remote_name: str
    started: float  # clock()
    recovered: bool = False  # found at start-up: whatever it reports first is its outcome
    seen_running: bool = False


@dataclass
class StartGate:
    """Staggered start: at most `count` prints begin within `seconds` (count 0: no limit)."""

    count: int
    seconds: float
    clock: object = time.monotonic
    starts: collections.deque[float] = field(default_factory=collections.deque)

    def delay(self) -> float:
        """Seconds to wait before the next start may go (0: now), without taking the slot."""
        if self.count <= 0:
            return 0.0
        now = self.clock()
        while self.starts and self.starts[0] <= now - self.seconds:
            self.starts.popleft()
        return 0.0 if len(self.starts) < self.count else self.starts[0] + self.seconds - now

    async def acquire(self) -> None:
        while (wait := self.delay()) > 0:
            await asyncio.sleep(wait)
        if self.count > 0:
            self.starts.append(self.clock())


def _same_file(reported: str, remote_name: str) -> bool:
    return bool(reported) and reported.rsplit("/", 1)[-1] == remote_name.rsplit("/", 1)[-1]


class Dispatcher:
    def __init__(
        self,
        coordinator: Coordinator,
        *,
        interval: float | None = None,
        attempts: int | None = None,
        retry_seconds: float | None = None,
        stagger: tuple[int, float] | None = None,
        clock=time.monotonic,
    ) -> None:
        self.coordinator = coordinator
        self.interval = interval or settings.PRINTFARM_DISPATCH_INTERVAL
        self.attempts = attempts or settings.PRINTFARM_TRANSFER_ATTEMPTS
        self.retry_seconds = (
            settings.PRINTFARM_TRANSFER_RETRY_SECONDS if retry_seconds is None else retry_seconds
        )
        count, seconds = stagger or (settings.PRINTFARM_STAGGER_COUNT, settings.PRINTFARM_STAGGER_SECONDS)
        self.gate = StartGate(count, seconds, clock)
        self.clock = clock
        self.busy: dict[int, int] = {}  # printer pk -> our active job there
        self.transfers: dict[int, asyncio.Task[None]] = {}  # job id -> its transfer
        self.retry_at: dict[int, float] = {}  # job id -> clock() of its next transfer attempt
        self.following: dict[int, Follow] = {}
        self.last_state: dict[int, State] = {}
        self.assigned = 0  # jobs handed to printers, for tests and benchmarks
        self._planned: tuple | None = None  # what the last plan was made from
        self._planned_at = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._recover()
        self._task = asyncio.create_task(self._run(), name="dispatch")

    async def aclose(self) -> None:
        """Stop; transfers under way are left `uploading` and sent again at the next start."""
        tasks = [t for t in (self._task, *self.transfers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:
                logger.exception("Dispatch round failed; retrying in %g s", self.interval)

    def _mine(self, printer_id: int | None) -> bool:
        k, n = self.coordinator.shard
        return printer_id is not None and printer_id % n == k

    async def _recover(self) -> None:
        rows = await _db(self._read_active)()
        now = self.clock()
        for job in rows:
            if not self._mine(job.printer_id):
                continue
            self.busy[job.printer_id] = job.pk
            if job.state == S.PRINTING:
                self.following[job.pk] = Follow(job.pk, job.printer_id, job.remote_name, now, recovered=True)
                continue
            if job.state == S.UPLOADING:
                await _db(services.job_transition)(
                    job, S.ASSIGNED, reason="The poller stopped during the transfer; sending it again"
                )
            self.retry_at[job.pk] = now
        if rows:
            logger.info("Resumed %d active jobs (%d printing)", len(self.busy), len(self.following))

    @staticmethod
    def _read_active() -> list[Job]:
        return list(Job.objects.active().exclude(printer=None))

    # -- one round --------------------------------------------------------------------------

    async def tick(self) -> None:
        if self.busy:
            await self._sync_with_database()
        statuses = {pk: p.last for pk, p in self.coordinator.printers.items() if p.last is not None}
        await self._follow(statuses)
        await self._note_prints_ended_elsewhere(statuses)
        now = self.clock()
        for job_id, due in list(self.retry_at.items()):
            if due <= now and job_id not in self.transfers:
                del self.retry_at[job_id]
                self._send(job_id)
        free = [
            pk
            for pk, status in statuses.items()
            if pk not in self.busy and status.state in FREE_STATES and self._mine(pk)
        ]
        if free:
            for job_id, printer_id in await _db(self._assign)(free, statuses):
                self.busy[printer_id] = job_id
                self.assigned += 1
                self._send(job_id)

    async def _sync_with_database(self) -> None:
        """Jobs the web cancelled (or anything else moved) stop being ours."""
        states = await _db(
            lambda: dict(Job.objects.filter(pk__in=list(self.busy.values())).values_list("pk", "state"))
        )()
        for printer_id, job_id in list(self.busy.items()):
            state = states.get(job_id)
            if state in Job.ACTIVE:
                continue
            logger.info("Job %s is %s; letting go of printer %s", job_id, state or "gone", printer_id)
            self._release(printer_id, job_id)

    def _release(self, printer_id: int, job_id: int) -> None:
        if self.busy.get(printer_id) == job_id:
            del self.busy[printer_id]
        self.following.pop(job_id, None)
        self.retry_at.pop(job_id, None)
        task = self.transfers.pop(job_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _assign(self, free: list[int], statuses: dict[int, PrinterStatus]) -> list[tuple[int, int]]:
        """Plan with the live statuses and the stored configuration; claim each planned job.

        Planning reads every waiting job, so it only runs when its inputs changed: the
        printers ready (free in the poll, bed clear) or the queue (count, last change)."""
        queue = Job.objects.waiting().aggregate(n=Count("pk"), changed=Max("updated_at"))
        if not queue["n"]:
            return []
        ready = frozenset(
            Printer.objects.filter(pk__in=free, enabled=True, bed_clear=True).values_list("pk", flat=True)
        )
        signature = (ready, queue["n"], queue["changed"])
        if not ready or (signature == self._planned and self.clock() - self._planned_at < REPLAN_EVERY):
            return []
        self._planned, self._planned_at = signature, self.clock()
        printers = Printer.objects.filter(pk__in=ready).prefetch_related("tags")
        candidates = [
            Candidate(
                pk=p.pk,
                name=p.name,
                state=statuses[p.pk].state,
                material=p.material,
                nozzle=p.nozzle_diameter,
                tags=frozenset(t.name for t in p.tags.all()),
            )
            for p in sorted(printers, key=lambda p: p.pk)
        ]
        if not candidates:
            return []
        claimed = []
        names = {c.pk: c.name for c in candidates}
        for printer_id, job_id in plan(waiting_needs(), candidates).items():
            job = Job(pk=job_id, state=S.QUEUED)
            try:
                services.job_transition(
                    job,
                    S.ASSIGNED,
                    printer_id=printer_id,
                    printer_name=names[printer_id],
                    reason=f"to {names[printer_id]}",
                )
            except services.JobChanged:
                continue  # cancelled or taken by another poller meanwhile
            claimed.append((job_id, printer_id))
        return claimed

    # -- transfers --------------------------------------------------------------------------

    def _send(self, job_id: int) -> None:
        self.transfers[job_id] = asyncio.create_task(self._transfer(job_id), name=f"transfer-{job_id}")

    async def _transfer(self, job_id: int) -> None:
        try:
            await self._transfer_once(job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Transfer of job %s failed unexpectedly", job_id)
            job = await _db(Job.objects.select_related("file").get)(pk=job_id)
            if job.is_active:
                await self._retry_or_fail(job, "an internal error (see the poller's log)")
        finally:
            if self.transfers.get(job_id) is asyncio.current_task():
                del self.transfers[job_id]

    async def _transfer_once(self, job_id: int) -> None:
        job = await _db(Job.objects.select_related("file", "printer").get)(pk=job_id)
        printer_id = job.printer_id
        poller = self.coordinator.printers.get(printer_id)
        if job.state != S.ASSIGNED:
            self._release(printer_id, job_id)
            return
        if poller is None:  # disabled or removed since it was assigned
            await _db(services.job_transition)(job, S.QUEUED, reason="Its printer was disabled or removed")
            self._release(printer_id, job_id)
            return
        path = stored_path(job.file)
        if not path.exists():
            await _db(services.job_transition)(job, S.FAILED, reason="The file is no longer in the library")
            await self._ended(printer_id, job_id, occupied=False)
            return
        remote_name = job.file.name
        await _db(services.job_transition)(
            job,
            S.UPLOADING,
            attempts=job.attempts + 1,
            remote_name=remote_name,
            transfer_percent=0.0,
            reason="",
        )
        progress = _ProgressWriter(job_id, printer_id, self.clock)
        try:
            driver = self.coordinator.driver_for(printer_id)
            await driver.upload(path, remote_name=remote_name, progress=progress)
            await progress.flush(100.0)
            if job.action == Job.Action.UPLOAD:
                await _db(services.job_transition)(
                    job, S.COMPLETED, reason=f"Uploaded to {job.printer_name} as {remote_name}"
                )
                await self._ended(printer_id, job_id, occupied=False)
                return
            if self.gate.delay() > 0:
                await _db(Job.objects.filter(pk=job_id).update)(
                    reason=f"Waiting for its turn to heat (staggered start: {self.gate.count} per "
                    f"{self.gate.seconds:g} s)"
                )
            await self.gate.acquire()
            # Cancelled from the web while the file was on its way: don't start it.
            if not await _db(Job.objects.filter(pk=job_id, state=S.UPLOADING).exists)():
                self._release(printer_id, job_id)
                return
            await driver.start(remote_name)
        except DriverError as exc:
            await progress.stop()
            await self._retry_or_fail(job, exc.message or str(exc), permanent=exc.permanent)
            return
        try:
            await _db(services.job_transition)(job, S.PRINTING, reason="")
        except services.JobChanged:
            # Cancelled in the moment between the check and the start: stop what we started.
            logger.warning("Job %s was cancelled as its print started; cancelling it on the printer", job_id)
            with contextlib.suppress(DriverError):
                await driver.cancel()
            self._release(printer_id, job_id)
            return
        self.following[job_id] = Follow(job_id, printer_id, remote_name, self.clock())

    async def _retry_or_fail(self, job: Job, problem: str, *, permanent: bool = False) -> None:
        await _db(job.refresh_from_db)()
        if job.state != S.UPLOADING:
            self._release(job.printer_id, job.pk)
            return
        if permanent or job.attempts >= self.attempts:
            tries = f" after {job.attempts} attempts" if job.attempts > 1 else ""
            await _db(services.job_transition)(
                job, S.FAILED, reason=f"Sending to {job.printer_name} failed{tries}: {problem}"
            )
            await self._ended(job.printer_id, job.pk, occupied=False)
            return
        delay = services.retry_delay(job.attempts, self.retry_seconds)
        await _db(services.job_transition)(
            job,
            S.ASSIGNED,
            retry_at=timezone.now() + delay,
            reason=f"Sending failed: {problem}. Attempt {job.attempts + 1} of {self.attempts} "
            f"in {delay.total_seconds():g} s.",
        )
        self.retry_at[job.pk] = self.clock() + delay.total_seconds()

    # -- following prints -------------------------------------------------------------------

    async def _follow(self, statuses: dict[int, PrinterStatus]) -> None:
        now = self.clock()
        for follow in list(self.following.values()):
            status = statuses.get(follow.printer_id)
            if status is None or status.state in UNKNOWN:
                continue  # nothing to learn until it answers again
            if status.state in RUNNING:
                follow.seen_running, follow.recovered = True, False
                continue
            outcome = self._outcome(follow, status, now)
            if outcome is None:
                continue
            state, reason = outcome
            job = await _db(Job.objects.select_related("file").get)(pk=follow.job_id)
            extra = {}
            if state == S.COMPLETED:
                extra = {"print_seconds": status.elapsed, "filament_mm": services.filament_used(job, 100.0)}
            elif job.started_at is not None:
                extra = {"filament_mm": services.filament_used(job, status.progress)}
            with contextlib.suppress(services.JobChanged, services.JobError):
                await _db(services.job_transition)(job, state, reason=reason, **extra)
            await self._ended(follow.printer_id, follow.job_id, occupied=True)

    def _outcome(self, follow: Follow, status: PrinterStatus, now: float) -> tuple[str, str] | None:
        """What a print's end looks like from this reading, or None if it is not over (yet)."""
        waited = now - follow.started > START_GRACE
        trusted = follow.seen_running or follow.recovered or waited
        if status.state == State.FINISHED and trusted:
            if follow.recovered and not _same_file(status.file, follow.remote_name):
                return S.FAILED, "The printer finished another file while the poller was away"
            note = " (ended while the poller was away)" if follow.recovered else ""
            return S.COMPLETED, f"Finished on the printer{note}"
        if status.state == State.ERROR and trusted:
            return S.FAILED, f"The printer reported an error: {status.message or 'no message'}"
        if status.state == State.IDLE and trusted:
            if follow.recovered:
                return (
                    S.FAILED,
                    "The print stopped while the poller was away; the printer doesn't say it finished",
                )
            if follow.seen_running:
                return S.CANCELLED, status.message or "Stopped at the printer"
            return S.FAILED, f"The printer did not start the print within {START_GRACE:g} s"
        return None

    async def _note_prints_ended_elsewhere(self, statuses: dict[int, PrinterStatus]) -> None:
        """A print started outside the farm also leaves a part on the bed."""
        ended = []
        for pk, status in statuses.items():
            before = self.last_state.get(pk)
            self.last_state[pk] = status.state
            if before in RUNNING and status.state not in RUNNING | UNKNOWN and pk not in self.busy:
                ended.append(pk)
        for pk in ended:
            await _db(_print_ended)(pk)
            await _push(pk)

    async def _ended(self, printer_id: int, job_id: int, *, occupied: bool) -> None:
        if occupied:
            await _db(_print_ended)(printer_id)
            await _push(printer_id)
        self._release(printer_id, job_id)
        self.last_state.pop(printer_id, None)


async def _push(printer_id: int) -> None:
    """With Redis, redraw the printer's card on open dashboards now (the change feed of a
    Redis-less setup sees the status row's new revision by itself)."""
    from printers.realtime import apublish_within

    try:
        await apublish_within([printer_id])
    except Exception:
        logger.warning("Could not push printer %s's card to dashboards", printer_id, exc_info=True)


def _print_ended(printer_id: int) -> None:
    printer = Printer.objects.filter(pk=printer_id).only("pk", "auto_clear").first()
    if printer is not None:
        services.print_ended(printer)


class _ProgressWriter:
    """The transfer's progress callback: remembers the latest figure and writes it to the job
    (and nudges the card) at most once a second, from the event loop, not the upload's path."""

    def __init__(self, job_id: int, printer_id: int, clock) -> None:
        self.job_id, self.printer_id, self.clock = job_id, printer_id, clock
        self.percent = 0.0
        self.written_at = clock()
        self.task: asyncio.Task[None] | None = None

    def __call__(self, sent: int, total: int) -> None:
        self.percent = 100.0 * sent / total if total else 100.0
        now = self.clock()
        if now - self.written_at >= PROGRESS_EVERY and (self.task is None or self.task.done()):
            self.written_at = now
            self.task = asyncio.get_running_loop().create_task(self._write(round(self.percent, 1)))

    async def _write(self, percent: float) -> None:
        await _db(_write_progress)(self.job_id, self.printer_id, percent)
        await _push(self.printer_id)

    async def flush(self, percent: float) -> None:
        await self.stop()
        await self._write(percent)

    async def stop(self) -> None:
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task


def _write_progress(job_id: int, printer_id: int, percent: float) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job_id, state=S.UPLOADING).update(transfer_percent=percent, updated_at=now)
    PrinterStatusRow.objects.filter(pk=printer_id).update(revision=F("revision") + 1, updated_at=now)
