"""Dispatch, in the poller process: free printers get the next fitting job, files are sent,
prints started and followed by the polled status to their end.

Every state change goes through `jobs.services.job_transition`, which only succeeds from the
state this process saw: two pollers can't take one job, and an ending is recorded once.
Records come from the printer: a job ends only on what its printer reports (its state or its
own job history, see `jobs.outcomes`); an unreadable reply or a lost connection is shown on
the job and waited out. After a restart the printer is asked what it is doing before
anything is sent again.
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
from django.db.models import Count, Max
from django.utils import timezone

from jobs import services
from jobs.following import Following
from jobs.library import stored_path
from jobs.matching import Candidate, plan
from jobs.models import Job
from jobs.outcomes import Follow
from jobs.queries import waiting_needs
from jobs.transfer import (
    ProgressWriter,
    TraysChanged,
    print_options,
    remote_name_for,
    upload_source,
    watch_transfer,
)
from printers.drivers.base import DriverError, PrintOptions
from printers.models import Printer
from printers.state import PrinterStatus, State

if TYPE_CHECKING:
    from printers.coordinator import Coordinator
    from printers.polling import PrinterPoller

logger = logging.getLogger(__name__)

S = Job.State
REPLAN_EVERY = 10.0  # seconds; a plan whose inputs look unchanged is still redone this often


def _db(func):
    return sync_to_async(func, thread_sensitive=True)


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


class Dispatcher(Following):
    def __init__(
        self,
        coordinator: Coordinator,
        *,
        interval: float | None = None,
        attempts: int | None = None,
        retry_seconds: float | None = None,
        stall_seconds: float | None = None,
        confirm_seconds: float | None = None,
        lost_seconds: float | None = None,
        stagger: tuple[int, float] | None = None,
        clock=time.monotonic,
    ) -> None:
        self.coordinator = coordinator
        self.interval = interval or settings.PRINTFARM_DISPATCH_INTERVAL
        self.attempts = attempts or settings.PRINTFARM_TRANSFER_ATTEMPTS
        self.retry_seconds = (
            settings.PRINTFARM_TRANSFER_RETRY_SECONDS if retry_seconds is None else retry_seconds
        )
        self.stall_seconds = stall_seconds or settings.PRINTFARM_TRANSFER_STALL_SECONDS
        self.confirm_seconds = confirm_seconds or settings.PRINTFARM_TRANSFER_CONFIRM_SECONDS
        self.lost_seconds = lost_seconds or settings.PRINTFARM_LOST_PRINT_MINUTES * 60.0
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
        """Stop; a transfer under way stays `uploading` and is checked with its printer at
        the next start."""
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
        """Pick up the jobs a previous run left active. A job left `uploading` may have been
        started on its printer just before the crash: it is followed unconfirmed, and sent
        again only once the printer's readings show it has neither printed nor is printing it."""
        rows = await _db(self._read_active)()
        now = self.clock()
        for job in rows:
            if not self._mine(job.printer_id):
                continue
            self.busy[job.printer_id] = job.pk
            if job.state == S.PRINTING:
                self.following[job.pk] = Follow(
                    job.pk, job.printer_id, job.remote_name, now, recovered=True, started_at=job.started_at
                )
            elif job.state == S.UPLOADING:
                self.following[job.pk] = Follow(
                    job.pk,
                    job.printer_id,
                    job.remote_name,
                    now,
                    confirmed=False,
                    recovered=True,
                    problem="The poller stopped during the transfer",
                )
            else:
                wait = (job.retry_at - timezone.now()).total_seconds() if job.retry_at else 0.0
                self.retry_at[job.pk] = now + max(0.0, wait)
        if rows:
            logger.info(
                "Resumed %d active jobs (%d printing or checking)", len(self.busy), len(self.following)
            )

    @staticmethod
    def _read_active() -> list[Job]:
        return list(Job.objects.active().exclude(printer=None))

    # -- one round --------------------------------------------------------------------------

    async def tick(self) -> None:
        if self.busy:
            await self._sync_with_database()
        statuses = {pk: p.last for pk, p in self.coordinator.printers.items() if p.last is not None}
        await self._follow()
        await self._note_prints_ended_elsewhere(statuses)
        now = self.clock()
        for job_id, due in list(self.retry_at.items()):
            if due <= now and job_id not in self.transfers:
                del self.retry_at[job_id]
                self._send(job_id)
        free = [
            pk
            for pk, status in statuses.items()
            if pk not in self.busy and status.state in State.FREE and self._mine(pk)
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

    def _release(self, printer_id: int | None, job_id: int) -> None:
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
                model=p.model,
                tags=frozenset(t.name for t in p.tags.all()),
                trays=statuses[p.pk].trays,  # the live reading: what start-time checks again
            )
            for p in printers  # `plan` puts them in dispatch order
        ]
        if not candidates:
            return []
        names = {c.pk: c.name for c in candidates}
        # One transaction per claim: a batch locks several job rows in plan order while a
        # reorder locks them in primary-key order, which can deadlock on PostgreSQL (tried:
        # under the load benchmark a reorder answered 500 and the poller logged tracebacks).
        return [
            (job_id, printer_id)
            for printer_id, job_id in plan(waiting_needs(), candidates).items()
            if _claim(job_id, printer_id, names[printer_id])
        ]

    # -- transfers --------------------------------------------------------------------------

    def _send(self, job_id: int) -> None:
        self.transfers[job_id] = asyncio.create_task(self._transfer(job_id), name=f"transfer-{job_id}")

    async def _transfer(self, job_id: int) -> None:
        try:
            await self._transfer_once(job_id)
        except asyncio.CancelledError:
            raise
        except services.JobChanged as exc:
            # Cancelled (or moved by another process) while this transfer went on: not ours.
            logger.info("Job %s changed during its transfer (%s); letting go", job_id, exc)
            printer_id = next((p for p, j in self.busy.items() if j == job_id), None)
            self._release(printer_id, job_id)
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
        if job.attempts >= self.attempts:  # a limit lowered since, or an older record
            await self._retry_or_fail(job, job.reason or "no attempts left", uploading=False)
            return
        try:
            options = self._options(job, poller)
        except TraysChanged as exc:
            # Loaded since it was planned, or reloaded during a retry's wait: another printer
            # (or this one, reloaded) may take it.
            await _db(services.job_transition)(job, S.QUEUED, reason=f"Back in the queue: {exc}")
            self._release(printer_id, job_id)
            return
        remote_name = remote_name_for(job)
        await _db(services.job_transition)(
            job,
            S.UPLOADING,
            attempts=job.attempts + 1,
            remote_name=remote_name,
            transfer_percent=0.0,
            reason="",
        )
        progress = ProgressWriter(job_id, printer_id, self.clock)
        try:
            driver = self.coordinator.driver_for(printer_id)
            async with upload_source(job, path) as source:
                await watch_transfer(
                    driver.upload(source, remote_name=remote_name, progress=progress, options=options),
                    progress,
                    stall=self.stall_seconds,
                    confirm=self.confirm_seconds,
                )
            await progress.stop()
            await progress.write(100.0, note="")
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
        except DriverError as exc:
            await progress.stop()
            await self._retry_or_fail(job, exc.message or str(exc), permanent=exc.permanent)
            return
        finally:
            await progress.stop()
        # Cancelled from the web while the file was on its way: don't start it.
        if not await _db(Job.objects.filter(pk=job_id, state=S.UPLOADING).exists)():
            self._release(printer_id, job_id)
            return
        try:
            options = self._options(job, poller)  # the trays may have changed during the upload
        except TraysChanged as exc:
            await self._retry_or_fail(job, str(exc))
            return
        polls_at = poller.polls
        try:
            await driver.start(remote_name, options=options)
        except DriverError as exc:
            # The printer may have started all the same (a garbled or lost reply): its next
            # readings decide, and only then is the start retried or the job failed.
            problem = f"Start not confirmed: {exc.message or exc}"
            await self._note(job_id, printer_id, f"{problem}. Checking what the printer is doing…")
            self.following[job_id] = Follow(
                job_id,
                printer_id,
                remote_name,
                self.clock(),
                confirmed=False,
                problem=problem,
                permanent=exc.permanent,
                polls_at=polls_at,
            )
            return
        # Readings from here on are this print's (an error before it is not its end).
        await self._confirm(job, Follow(job_id, printer_id, remote_name, self.clock(), polls_at=poller.polls))

    @staticmethod
    def _options(job: Job, poller: PrinterPoller) -> PrintOptions:
        """How to start `job`, by its printer's latest reading (raises TraysChanged)."""
        if job.action == Job.Action.UPLOAD:
            return PrintOptions(plate=job.plate)
        return print_options(job, poller.last.trays if poller.last is not None else ())

    async def _confirm(self, job: Job, follow: Follow, *, reason: str = "") -> None:
        """The printer took the start: the job is printing, and followed from here."""
        try:
            await _db(services.job_transition)(job, S.PRINTING, reason=reason)
        except services.JobChanged:
            # Cancelled in the moment between the check and the start: stop what we started.
            logger.warning("Job %s was cancelled as its print started; cancelling it on the printer", job.pk)
            with contextlib.suppress(DriverError):
                await self.coordinator.driver_for(follow.printer_id).cancel()
            self._release(follow.printer_id, job.pk)
            return
        follow.confirmed = True
        self.following[job.pk] = follow

    async def _retry_or_fail(
        self, job: Job, problem: str, *, permanent: bool = False, uploading: bool = True
    ) -> None:
        await _db(job.refresh_from_db)()
        if job.state != (S.UPLOADING if uploading else S.ASSIGNED):
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
            reason=f"{problem}. Retrying in {delay.total_seconds():g} s "
            f"(attempt {job.attempts + 1} of {self.attempts}).",
        )
        self.retry_at[job.pk] = self.clock() + delay.total_seconds()

    async def _note_prints_ended_elsewhere(self, statuses: dict[int, PrinterStatus]) -> None:
        """A print started outside the farm also leaves a part on the bed."""
        ended = []
        for pk, status in statuses.items():
            before = self.last_state.get(pk)
            self.last_state[pk] = status.state
            if (
                before in State.RUNNING
                and status.state not in State.RUNNING | State.UNREACHABLE
                and pk not in self.busy
            ):
                ended.append(pk)
        for pk in ended:
            await _db(_print_ended)(pk)

    async def _ended(self, printer_id: int, job_id: int, *, occupied: bool) -> None:
        if occupied:
            await _db(_print_ended)(printer_id)
        self._release(printer_id, job_id)
        self.last_state.pop(printer_id, None)


def _claim(job_id: int, printer_id: int, printer_name: str) -> bool:
    try:
        services.job_transition(
            Job(pk=job_id, state=S.QUEUED),
            S.ASSIGNED,
            printer_id=printer_id,
            printer_name=printer_name,
            reason=f"to {printer_name}",
        )
    except services.JobChanged:
        return False  # cancelled or taken by another poller meanwhile
    return True


def _print_ended(printer_id: int) -> None:
    printer = Printer.objects.filter(pk=printer_id).only("pk", "auto_clear").first()
    if printer is not None:
        services.print_ended(printer)
