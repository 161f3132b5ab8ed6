"""The follow half of the dispatcher: every print it started (or must ask its printer about)
is watched until the printer reports how it ended (`jobs.outcomes` decides from what it
reports). Mixed into `jobs.dispatch.Dispatcher`, whose state and transfer calls it uses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from jobs import services
from jobs.models import Job
from jobs.outcomes import (
    CANCEL_SETTLE,
    HISTORY_TRIES,
    Follow,
    errored,
    from_history,
    lost_note,
    printed_seconds,
    same_file,
    stopped_outcome,
)
from printers.changes import announce
from printers.commands import COMMANDS
from printers.drivers.base import DriverError
from printers.models import PrinterEvent
from printers.state import PrinterStatus, State

if TYPE_CHECKING:
    from printers.coordinator import PrinterPoller

logger = logging.getLogger(__name__)

S = Job.State
CONFIRM_READINGS = 2  # healthy readings after a start that decide "it did not start"
# ... and not before this long after the start was sent: a start whose answer was lost may
# still be carried out (a printer that held the request; readings pushed four times a second
# over a websocket come long before it lands).
CONFIRM_SECONDS = 5.0
HISTORY_RETRY_SECONDS = 1.0  # between two failed reads of a printer's job history
HISTORY_TIMEOUT = 5.0  # seconds for one read of a printer's job history


def _db(func):
    return sync_to_async(func, thread_sensitive=True)


class Following:
    """Needs from the dispatcher: coordinator, clock, following, retry_at, lost_seconds,
    _confirm, _retry_or_fail and _ended."""

    async def _follow(self) -> None:
        for follow in list(self.following.values()):
            if self.following.get(follow.job_id) is not follow:
                continue
            poller = self.coordinator.printers.get(follow.printer_id)
            if poller is None or poller.last is None:
                continue  # disabled, or no reading yet
            try:
                await self._follow_one(follow, poller)
            except (services.JobChanged, services.JobError):
                self._release(follow.printer_id, follow.job_id)  # the web ended it meanwhile

    async def _follow_one(self, follow: Follow, poller: PrinterPoller) -> None:
        status = poller.last
        assert status is not None
        now = self.clock()
        healthy = poller.failures == 0 and status.state not in State.UNREACHABLE
        if not healthy:
            await self._lost(follow, poller.name, status, now)
            return
        if poller.error_poll > follow.polls_at:
            follow.error = poller.error
        if poller.polls > follow.polls_at:
            follow.polls_at = poller.polls
            follow.fresh += 1
        if follow.lost_since is not None:
            follow.lost_since = None
            logger.info("Printer %s answers again; following job %s", follow.printer_id, follow.job_id)
            if status.state in State.RUNNING:
                await self._note(follow.job_id, follow.printer_id, "" if follow.confirmed else follow.problem)
        ours = same_file(status.file, follow.remote_name) or (not status.file and follow.confirmed)
        if status.state in State.RUNNING and ours:
            follow.seen_running = True
            follow.error = None
            follow.note_running(paused=status.state == State.PAUSED, now=now)
            follow.stopped_since = None
            if not follow.confirmed:
                job = await _db(Job.objects.get)(pk=follow.job_id)
                follow.started = now
                await self._confirm(job, follow, reason="The printer confirmed the print")
            return
        if not follow.confirmed:
            if status.state in State.RUNNING and not status.file:
                return  # printing something it doesn't name: not a reason to send ours again
            await self._unconfirmed_stopped(follow, poller, status, now)
            return
        outcome = await self._stopped_outcome(follow, status, now)
        if outcome is not None:
            await self._finish(follow, status, *outcome)

    async def _lost(self, follow: Follow, printer_name: str, status: PrinterStatus, now: float) -> None:
        """No trustworthy reading: show it on the job at once; after the grace, give up."""
        if status.message:
            follow.lost_message = status.message
        if follow.lost_since is None:
            follow.lost_since = now
            follow.was_lost = follow.was_lost or follow.confirmed
            note = lost_note(printer_name, status.message)
            await self._note(
                follow.job_id, follow.printer_id, note if follow.confirmed else f"{follow.problem}. {note}"
            )
            logger.info("Lost contact with printer %s during job %s", follow.printer_id, follow.job_id)
        elif now - follow.lost_since > self.lost_seconds:
            minutes = self.lost_seconds / 60.0
            detail = f" ({follow.lost_message})" if follow.lost_message else ""
            await self._finish(
                follow,
                status,
                S.FAILED,
                f"The printer was unreachable for {minutes:g} min{detail}; the print's outcome is unknown",
            )

    async def _history(self, follow: Follow, now: float) -> None:
        """Read the printer's own record of this print once (retried a few times on failure,
        spread out: a fault of a second must not use up every try)."""
        if follow.history is not None or follow.history_tries >= HISTORY_TRIES:
            return
        if now < follow.history_retry_at:
            return
        follow.history_tries += 1
        follow.history_retry_at = now + HISTORY_RETRY_SECONDS
        try:
            async with asyncio.timeout(HISTORY_TIMEOUT):
                record = await self.coordinator.driver_for(follow.printer_id).print_history(
                    follow.remote_name
                )
        except (DriverError, TimeoutError, KeyError) as exc:
            logger.info("Could not read printer %s's job history: %s", follow.printer_id, exc)
            return
        if record is None:
            follow.history_tries = HISTORY_TRIES  # no history kept: decide without it
        elif record.finished:
            follow.history = record
        # in_progress: the printer says it still runs; ask again next round

    async def _stopped_outcome(self, follow: Follow, status: PrinterStatus, now: float) -> tuple | None:
        if status.state == State.FINISHED and same_file(status.file, follow.remote_name):
            return stopped_outcome(follow, status, now)
        await self._history(follow, now)
        if follow.history is not None:
            state, reason = from_history(follow.history, status)
        elif follow.history_tries < HISTORY_TRIES:
            return None  # the history read failed; try again before deciding without it
        else:
            decided = stopped_outcome(follow, follow.error or status, now)
            if decided is None:
                return None
            state, reason = decided
        if state != S.CANCELLED:
            return state, reason
        # A stop: was it a cancel sent from printfarm? The web records it right after the
        # printer's reply, so a stop gets a moment before it is put down to the printer.
        if follow.stopped_since is None:
            follow.stopped_since = now
        who = await _db(_cancelled_by)(follow.printer_id, follow.started_at)
        if who is not None:
            return (
                S.CANCELLED,
                f"Cancelled from printfarm by {who}" if who else "Cancelled from printfarm",
                who,
            )
        if now - follow.stopped_since < CANCEL_SETTLE:
            return None
        return state, reason

    async def _unconfirmed_stopped(
        self, follow: Follow, poller: PrinterPoller, status: PrinterStatus, now: float
    ) -> None:
        """A start we could not confirm (or one a restart cut short), and a healthy reading
        without it running. Sent again only when the printer shows no trace of the print."""
        ours = same_file(status.file, follow.remote_name)
        if status.state == State.FINISHED and ours:
            await self._finish(
                follow, status, S.COMPLETED, "Finished on the printer (its start was not confirmed)"
            )
            return
        if status.state == State.ERROR and ours:
            await self._finish(follow, status, *errored(status, follow))
            return
        if follow.fresh < CONFIRM_READINGS or now - follow.started < CONFIRM_SECONDS:
            return  # a reading may predate the start, or the start may still land
        await self._history(follow, now)
        if follow.history is not None:
            await self._finish(follow, status, *from_history(follow.history, status))
            return
        if follow.history_tries < HISTORY_TRIES:
            return
        if ours:  # its file is loaded: the print began, and ended while nobody watched
            await self._finish(
                follow,
                status,
                S.FAILED,
                "The print began but ended while the poller could not see it; "
                "the printer doesn't say it finished",
            )
            return
        if status.state == State.ERROR:
            # A printer in error takes no print; whether it ran this one shows once it recovers.
            if follow.error_since is None:
                follow.error_since = now
                await self._note(
                    follow.job_id,
                    follow.printer_id,
                    f"{follow.problem}. The printer reports an error ({status.message}); "
                    "waiting for it to recover.",
                )
            elif now - follow.error_since > self.lost_seconds:
                await self._finish(
                    follow,
                    status,
                    S.FAILED,
                    f"The printer reported an error for {self.lost_seconds / 60:g} min "
                    f"({status.message}); whether this job printed is unknown",
                )
            return
        job = await _db(Job.objects.get)(pk=follow.job_id)
        self.following.pop(follow.job_id, None)
        if follow.recovered:
            # The transfer or the start was cut short by a restart and nothing ran: send it
            # again. The cut attempt doesn't count; the crash was ours, not the printer's.
            await _db(services.job_transition)(
                job,
                S.ASSIGNED,
                attempts=max(0, job.attempts - 1),
                reason="The poller stopped during the transfer; sending it again",
            )
            self.retry_at[job.pk] = self.clock()
            return
        seen = status.state.label.lower() + (f": {status.message}" if status.message else "")
        await self._retry_or_fail(
            job, f"{follow.problem} (the printer then read {seen})", permanent=follow.permanent
        )

    async def _finish(
        self, follow: Follow, status: PrinterStatus, state: str, reason: str, by: str = ""
    ) -> None:
        self.following.pop(follow.job_id, None)
        # A print that began leaves a part (or a mess) on the bed.
        started = (
            follow.confirmed
            or state == S.COMPLETED
            or follow.history is not None
            or same_file(status.file, follow.remote_name)
        )
        job = await _db(Job.objects.select_related("file").get)(pk=follow.job_id)
        extra: dict[str, object] = {}
        seconds = follow.history.print_seconds if follow.history else None
        if seconds is None and (state == S.COMPLETED or same_file(status.file, follow.remote_name)):
            seconds = status.elapsed  # the printer still shows the print that ended
        seconds = printed_seconds(
            seconds,
            seen_running=follow.seen_running,
            started_at=job.started_at,
            ended_at=timezone.now(),
            paused=follow.pauses(self.clock()),
        )
        if state == S.COMPLETED:
            extra = {"print_seconds": seconds, "filament_mm": services.filament_used(job, 100.0)}
        elif job.started_at is not None:
            extra = {"filament_mm": services.filament_used(job, status.progress)}
            if seconds is not None:
                extra["print_seconds"] = seconds
        with contextlib.suppress(services.JobChanged, services.JobError):
            await _db(services.job_transition)(job, state, reason=reason, by=by or None, **extra)
        await self._ended(follow.printer_id, follow.job_id, occupied=started)

    async def _note(self, job_id: int, printer_id: int, note: str) -> None:
        """The job's current note (a lost connection, a start being checked), on its card too."""
        await _db(_write_note)(job_id, printer_id, note)


def _cancelled_by(printer_id: int, since: object) -> str | None:
    """Who sent a successful cancel to this printer from printfarm since `since` ("" for a
    nameless sender), or None when nobody did."""
    event = (
        PrinterEvent.objects.filter(
            printer_id=printer_id,
            kind=PrinterEvent.Kind.COMMAND,
            message=COMMANDS["cancel"].done,
            at__gte=since,
        )
        .order_by("-at")
        .only("by")
        .first()
    )
    return None if event is None else event.by


@transaction.atomic
def _write_note(job_id: int, printer_id: int, note: str) -> None:
    Job.objects.filter(pk=job_id, state__in=Job.ACTIVE).update(reason=note[:500], updated_at=timezone.now())
    announce([printer_id])
