"""How a print we follow ended, judged only from what its printer reports.

A reply that could not be read, or no reply at all, is never an outcome: it is a loss of
contact, shown on the job, that ends only when the printer answers again (or after the lost
print grace). The decision functions here are pure; `jobs.dispatch` feeds them readings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from jobs.models import Job
from printers.drivers.base import PrintRecord
from printers.state import PrinterStatus, State

S = Job.State
START_GRACE = 20.0  # seconds a confirmed start may take to show up as printing
CANCEL_SETTLE = 3.0  # seconds a stop waits for the web to record who cancelled it
HISTORY_TRIES = 3  # failed history reads before deciding without it

# Moonraker's job history statuses (server/history) and what they mean for a job.
_HISTORY: dict[str, tuple[str, str]] = {
    "completed": (S.COMPLETED, "Finished on the printer"),
    "cancelled": (S.CANCELLED, "Cancelled at the printer"),
    "error": (S.FAILED, "The printer stopped the print with an error"),
    "klippy_shutdown": (S.FAILED, "Klipper shut down during the print (klippy_shutdown)"),
    "klippy_disconnect": (S.FAILED, "Klipper disconnected during the print (klippy_disconnect)"),
    "interrupted": (S.FAILED, "Moonraker restarted during the print (interrupted)"),
}


@dataclass
class Follow:
    """A print we started, or are checking whether we started, watched until it ends.

    `confirmed` is False while the job is still `uploading`: the start's reply was unreadable
    or the poller restarted between sending and recording, so the printer must say first
    whether it is printing this job's file."""

    job_id: int
    printer_id: int
    remote_name: str
    started: float  # clock()
    started_at: object = field(default_factory=timezone.now)  # wall time, for event look-ups
    confirmed: bool = True
    recovered: bool = False  # found at start-up
    seen_running: bool = False
    problem: str = ""  # why an unconfirmed start is being checked
    permanent: bool = False  # that problem won't pass on a retry
    polls_at: int = 0  # the printer's poll count when the watch began
    fresh: int = 0  # healthy readings seen since then
    lost_since: float | None = None  # clock() when contact was lost, None while in contact
    lost_message: str = ""
    was_lost: bool = False  # contact was lost at some point during this print
    stopped_since: float | None = None  # clock() the print was first seen stopped
    error_since: float | None = None  # clock() an unconfirmed start's printer went into error
    # The printer's latest error reading since this print was last seen running, whether or
    # not the follower looked while it lasted (OctoPrint back from a serial error reads idle
    # with the file still selected, as after a cancel).
    error: PrinterStatus | None = None
    history: PrintRecord | None = None
    history_tries: int = 0
    history_retry_at: float = 0.0  # clock() before which a failed history read is not retried
    paused_since: float | None = None  # clock() the printer was first seen paused in this pause
    paused_seconds: float = 0.0  # pauses seen that ended

    def note_running(self, *, paused: bool, now: float) -> None:
        """A reading of this print running (or paused): time its pauses."""
        if paused and self.paused_since is None:
            self.paused_since = now
        elif not paused and self.paused_since is not None:
            self.paused_seconds += now - self.paused_since
            self.paused_since = None

    def pauses(self, now: float) -> float:
        return self.paused_seconds + (now - self.paused_since if self.paused_since is not None else 0.0)


def printed_seconds(
    reported: int | None,
    *,
    seen_running: bool,
    started_at: dt.datetime | None,
    ended_at: dt.datetime,
    paused: float = 0.0,
) -> int | None:
    """The print time to record: the printer's own figure, unless it has none, or says 0 for
    a print seen running (a firmware that kept no count): then the time from its start to its
    end, less the pauses seen."""
    if reported or not seen_running or started_at is None:
        return reported
    timed = (ended_at - started_at).total_seconds() - paused
    return int(timed) if timed >= 1 else reported


def same_file(reported: str, remote_name: str) -> bool:
    return bool(reported) and reported.rsplit("/", 1)[-1] == remote_name.rsplit("/", 1)[-1]


def from_history(record: PrintRecord, status: PrinterStatus) -> tuple[str, str]:
    state, reason = _HISTORY.get(record.outcome, (S.FAILED, f"The printer's history says {record.outcome}"))
    if state == S.FAILED and status.message:
        reason = f"{reason}: {status.message}"
    return state, reason


def errored(status: PrinterStatus, follow: Follow) -> tuple[str, str]:
    """A printer in error: the end of this print, unless its job reads 100 % done (OctoPrint
    keeps the last job in /api/job: a link lost after the print finished is no failure)."""
    message = status.message or "no message"
    if same_file(status.file, follow.remote_name) and status.progress == 100:
        return S.COMPLETED, f"Finished on the printer (it reported an error afterwards: {message})"
    return S.FAILED, f"The printer reported an error: {message}"


def lost_note(printer_name: str, message: str) -> str:
    at = timezone.localtime().strftime("%H:%M:%S")
    detail = f": {message}" if message else ""
    return (
        f"Lost contact with {printer_name or 'the printer'} at {at}{detail}. The print may still be "
        "running; waiting for the printer to answer."
    )


def ended_after_loss(follow: Follow) -> str:
    detail = f" ({follow.lost_message})" if follow.lost_message else ""
    return f"Contact with the printer was lost{detail}; it came back without the print"


def stopped_outcome(follow: Follow, status: PrinterStatus, now: float) -> tuple[str, str] | None:
    """The end of a confirmed print from a healthy reading in which it no longer runs, when the
    printer keeps no history that says more; None when it is too early to say."""
    if status.state == State.FINISHED and same_file(status.file, follow.remote_name):
        note = " (ended while the poller was away)" if follow.recovered and not follow.seen_running else ""
        return S.COMPLETED, f"Finished on the printer{note}"
    if status.state == State.ERROR:
        return errored(status, follow)
    if status.state in State.RUNNING:
        return (
            S.FAILED,
            f"The printer is printing another file ({status.file}); how this print ended was not seen",
        )
    if follow.was_lost:
        return S.FAILED, ended_after_loss(follow)
    if follow.recovered and not follow.seen_running:
        if status.state == State.FINISHED:
            return S.FAILED, "The printer finished another file while the poller was away"
        return S.FAILED, "The print stopped while the poller was away; the printer doesn't say it finished"
    # Never seen printing, yet the printer names this print as its last job (only our start
    # makes its unique file the printer's job): it began and was stopped before a reading
    # showed it, as a cancel on its screen just after the start can be on a busy poller.
    began = status.state == State.IDLE and same_file(status.file, follow.remote_name)
    if not follow.seen_running and not began:
        if now - follow.started <= START_GRACE:
            return None
        return S.FAILED, f"The printer did not start the print within {START_GRACE:g} s"
    return S.CANCELLED, status.message or "Stopped at the printer"
