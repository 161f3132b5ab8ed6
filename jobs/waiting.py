"""Why a waiting job waits, per printer and in one line: what the queue page shows and the API
sends, made here once (`jobs.matching` decides each reason; this gathers them)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from django.utils import timezone

from jobs import queries
from jobs.matching import Candidate, Needs, Reason, mismatches, unavailable
from jobs.models import Job

BLOCKERS_SHOWN = 3  # the commonest reasons named in the summary; the rest are counted


@dataclass(frozen=True, slots=True)
class PrinterWhy:
    printer: Candidate
    reasons: tuple[Reason, ...]  # empty: this printer could take the job now


@dataclass(frozen=True, slots=True)
class Waiting:
    job_id: int
    printers: tuple[PrinterWhy, ...]  # those that could take it now first, then by name
    fits_now: int
    blockers: tuple[tuple[Reason, int], ...]  # each printer's first reason, commonest first
    others: int  # printers kept off by reasons not in `blockers`

    @property
    def summary(self) -> str:
        if self.fits_now:
            return f"starting: {self.fits_now} printer{'s' if self.fits_now != 1 else ''} free"
        if not self.printers:
            return "no printers yet"
        parts = [f"{n}× {reason.text}" for reason, n in self.blockers]
        if self.others:
            parts.append(f"{self.others} other{'s' if self.others != 1 else ''}")
        return "; ".join(parts)


class Explainer:
    """Explains any number of jobs against one reading of the printers."""

    def __init__(self, candidates: Sequence[Candidate], now: dt.datetime) -> None:
        self.candidates = sorted(candidates, key=lambda c: c.name)
        # What keeps a printer from any job is the same for every job: worked out once.
        self.not_now = {c.pk: unavailable(c, now) for c in self.candidates}
        # Copies of one file with the same requirements wait for the same reasons: a long
        # queue is mostly such copies, so each set of needs is worked out once.
        self.known: dict[Needs, Waiting] = {}

    def explain(self, job: Job) -> Waiting:
        needs = queries.needs_of(job)
        key = replace(needs, job_id=0)
        if (known := self.known.get(key)) is None:
            known = self.known[key] = self._explain(needs)
        return replace(known, job_id=job.pk)

    def _explain(self, needs: Needs) -> Waiting:
        rows = []
        for candidate in self.candidates:
            found = mismatches(needs, candidate)
            if why := self.not_now[candidate.pk]:
                found.append(why)
            rows.append(PrinterWhy(candidate, tuple(found)))
        rows.sort(key=lambda row: len(row.reasons) > 0)  # stable: by name within each group
        first = Counter(row.reasons[0] for row in rows if row.reasons)
        blockers = tuple(first.most_common(BLOCKERS_SHOWN))
        return Waiting(
            job_id=needs.job_id,
            printers=tuple(rows),
            fits_now=sum(1 for row in rows if not row.reasons),
            blockers=blockers,
            others=first.total() - sum(n for _, n in blockers),
        )


def explain_waiting(
    jobs: Iterable[Job], *, candidates: Sequence[Candidate] | None = None, now: dt.datetime | None = None
) -> dict[int, Waiting]:
    """job pk -> why it waits, for the queued ones among `jobs` (loaded with file,
    target_printer and required_tags). The printers are read once, and only if one is queued."""
    waiting = [job for job in jobs if job.state == Job.State.QUEUED]
    if not waiting:
        return {}
    explainer = Explainer(queries.candidates() if candidates is None else candidates, now or timezone.now())
    return {job.pk: explainer.explain(job) for job in waiting}
