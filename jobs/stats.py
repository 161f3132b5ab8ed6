"""History and statistics of finished jobs: filters, database aggregates and the activity chart.

Every figure is aggregated by the database (Count/Sum with a filter, Trunc* per bucket), so
a farm with years of history is summed without loading its jobs; Python only merges the
few grouped rows and fills empty buckets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, DurationField, ExpressionWrapper, F, FloatField, Q, QuerySet, Sum
from django.db.models.functions import NullIf, TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from jobs.models import Job
from printers.models import Printer
from printers.presenters import Link

S = Job.State

# -- periods ----------------------------------------------------------------------------------

HISTORY_PERIODS = {"all": "All time", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
STATS_PERIODS = {"7d": "7 days", "30d": "30 days", "90d": "90 days", "365d": "12 months", "all": "All time"}
STATS_DEFAULT_PERIOD = "30d"
PERIOD_DAYS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
BUCKET_UNITS = {"7d": "day", "30d": "day", "90d": "week", "365d": "month", "all": "month"}
OUTCOMES = {S.COMPLETED: "Completed", S.FAILED: "Failed", S.CANCELLED: "Cancelled"}
# Dates outside this range are typos; refusing them also keeps date arithmetic from overflowing.
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2999, 12, 31)


def local_midnight(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def period_start(period: str, now: dt.datetime) -> dt.datetime | None:
    """When a period begins: 24 hours back, or the local midnight that starts the last N
    calendar days (today included) so day bars are whole days; None for all time."""
    if period == "24h":
        return now - dt.timedelta(hours=24)
    days = PERIOD_DAYS.get(period)
    if days is None:
        return None
    return local_midnight(timezone.localdate(now) - dt.timedelta(days=days - 1))


def _pk(text: str) -> int | None:
    if not (text.isascii() and text.isdigit() and len(text) < 19):
        return None
    return int(text) or None


def _date(text: str) -> dt.date | None:
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        return None
    return day if EARLIEST <= day <= LATEST else None


# -- history ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryFilters:
    """`?printer=3&outcome=failed&period=7d&q=bracket` or `?from=2026-03-01&to=2026-03-07`,
    validated: unknown values mean "no filter"; dates, when given, replace the preset period."""

    printer: int | None = None
    outcome: str = ""
    period: str = "all"
    start: dt.date | None = None  # ?from=, inclusive
    end: dt.date | None = None  # ?to=, inclusive
    q: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> HistoryFilters:
        start, end = _date(query.get("from", "")), _date(query.get("to", ""))
        if start and end and start > end:
            start, end = end, start
        period = query.get("period", "all")
        outcome = query.get("outcome", "")
        return cls(
            printer=_pk(query.get("printer", "")),
            outcome=outcome if outcome in OUTCOMES else "",
            period="all" if start or end or period not in HISTORY_PERIODS else period,
            start=start,
            end=end,
            q=" ".join(query.get("q", "").split())[:100],
        )

    def window(self, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
        """[start, end) of finished_at; None for an open side."""
        if self.start or self.end:
            start = local_midnight(self.start) if self.start else None
            end = local_midnight(self.end + dt.timedelta(days=1)) if self.end else None
            return start, end
        return period_start(self.period, now), None

    def params(self) -> dict[str, str]:
        values = {
            "printer": str(self.printer or ""),
            "outcome": self.outcome,
            "period": "" if self.period == "all" else self.period,
            "from": self.start.isoformat() if self.start else "",
            "to": self.end.isoformat() if self.end else "",
            "q": self.q,
        }
        return {k: v for k, v in values.items() if v}

    @property
    def query(self) -> str:
        """The filters as a query string ('' when none), for CSV and page links."""
        return urlencode(self.params())

    @property
    def active(self) -> bool:
        return bool(self.params())


# grams used = metres used x the file's grams per metre; NULL (so left out of sums) when unknown.
GRAMS = ExpressionWrapper(
    F("filament_mm") * F("file__filament_g") / NullIf(F("file__filament_mm"), 0.0),
    output_field=FloatField(),
)
RUN_TIME = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
# Jobs whose printer reported no print time are timed from start to end instead.
UNREPORTED = Q(print_seconds__isnull=True, started_at__isnull=False, finished_at__gte=F("started_at"))


def history_jobs(filters: HistoryFilters, *, now: dt.datetime) -> QuerySet[Job]:
    """Finished jobs matching `filters`, newest first, with `grams` annotated."""
    jobs = Job.objects.finished()
    if filters.printer:
        jobs = jobs.filter(printer_id=filters.printer)
    if filters.outcome:
        jobs = jobs.filter(state=filters.outcome)
    start, end = filters.window(now)
    if start is not None:
        jobs = jobs.filter(finished_at__gte=start)
    if end is not None:
        jobs = jobs.filter(finished_at__lt=end)
    if filters.q:
        jobs = jobs.filter(file__name__icontains=filters.q)
    return jobs.annotate(grams=GRAMS).order_by(F("finished_at").desc(nulls_last=True), "-pk")


def run_seconds(
    print_seconds: int | None, started_at: dt.datetime | None, finished_at: dt.datetime | None
) -> int | None:
    """What the printer reported, else start to end; None when it never started."""
    if print_seconds is not None:
        return print_seconds
    if started_at is not None and finished_at is not None and finished_at >= started_at:
        return int((finished_at - started_at).total_seconds())
    return None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of the history page: the job (with its file) and its derived figures."""

    job: Job
    seconds: int | None
    grams: float | None

    @classmethod
    def of(cls, job: Job) -> HistoryEntry:
        return cls(
            job=job,
            seconds=run_seconds(job.print_seconds, job.started_at, job.finished_at),
            grams=getattr(job, "grams", None),
        )

    @property
    def file_present(self) -> bool:
        return self.job.file.deleted_at is None

    @property
    def shows_reason(self) -> bool:
        return self.job.state != S.COMPLETED and bool(self.job.reason)


CSV_HEADER = ("job id", "file", "printer", "outcome", "reason", "created", "started", "finished")
CSV_HEADER += ("print seconds", "filament mm", "filament g")
CSV_CHUNK = 2000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """A cell a spreadsheet shows as text: file names and reasons come from users, and
    `=HYPERLINK(...)` in one would otherwise run as a formula when the export is opened."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def utc_iso(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def _number(value: float | None, digits: int = 2) -> float | str:
    return "" if value is None else round(value, digits)


def csv_rows(jobs: QuerySet[Job]) -> Iterator[tuple[Any, ...]]:
    """The header, then one tuple per job, read `CSV_CHUNK` rows at a time."""
    yield CSV_HEADER
    columns = ("pk", "file__name", "printer_name", "state", "reason", "created_at", "started_at")
    columns += ("finished_at", "print_seconds", "filament_mm", "grams")
    for row in jobs.values_list(*columns).iterator(chunk_size=CSV_CHUNK):
        pk, name, printer, state, reason, created, started, finished, seconds, mm, grams = row
        run = run_seconds(seconds, started, finished)
        texts = (csv_text(name), csv_text(printer), state, csv_text(reason))
        times = (utc_iso(created), utc_iso(started), utc_iso(finished))
        yield (pk, *texts, *times, "" if run is None else run, _number(mm, 1), _number(grams))


# -- statistics -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatsFilters:
    """`?period=7d|30d|90d|365d|all&printer=<pk>`; unknown values mean the defaults."""

    period: str = STATS_DEFAULT_PERIOD
    printer: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> StatsFilters:
        period = query.get("period", STATS_DEFAULT_PERIOD)
        return cls(
            period=period if period in STATS_PERIODS else STATS_DEFAULT_PERIOD,
            printer=_pk(query.get("printer", "")),
        )

    @property
    def unit(self) -> str:
        return BUCKET_UNITS[self.period]

    def query(self, **changes: Any) -> str:
        values = {"period": self.period, "printer": self.printer or "", **changes}
        return urlencode({k: v for k, v in values.items() if v})

    def period_links(self) -> list[Link]:
        return [
            Link(label, f"?{self.query(period=key)}", key == self.period)
            for key, label in STATS_PERIODS.items()
        ]


@dataclass(frozen=True, slots=True)
class Figures:
    """Counts and sums over some finished jobs; the success rate leaves cancelled jobs out."""

    finished: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    print_seconds: float = 0.0
    filament_mm: float = 0.0
    filament_g: float = 0.0

    def __add__(self, other: Figures) -> Figures:
        return Figures(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def success_rate(self) -> float | None:
        """Percent of completed among completed + failed; None when neither happened."""
        decided = self.completed + self.failed
        return 100.0 * self.completed / decided if decided else None

    @property
    def print_hours(self) -> float:
        return self.print_seconds / 3600

    @property
    def filament_m(self) -> float:
        return self.filament_mm / 1000

    @property
    def success_text(self) -> str:
        rate = self.success_rate
        return "—" if rate is None else f"{rate:.1f}%"

    @property
    def hours_text(self) -> str:
        return f"{self.print_hours:,.1f}"

    @property
    def metres_text(self) -> str:
        return f"{self.filament_m:,.1f}"

    @property
    def grams_text(self) -> str:
        return f"{self.filament_g:,.0f}" if self.filament_g >= 1000 else f"{self.filament_g:.1f}"


def _aggregates() -> dict[str, Any]:
    return {
        "finished": Count("pk"),
        "completed": Count("pk", filter=Q(state=S.COMPLETED)),
        "failed": Count("pk", filter=Q(state=S.FAILED)),
        "cancelled": Count("pk", filter=Q(state=S.CANCELLED)),
        "reported": Sum("print_seconds"),
        "timed": Sum(RUN_TIME, filter=UNREPORTED),
        # named unlike the fields: an aggregate may not shadow the column it sums
        "used_mm": Sum("filament_mm"),
        "used_g": Sum(GRAMS),
    }


def _figures(row: Mapping[str, Any]) -> Figures:
    timed: dt.timedelta | None = row["timed"]
    return Figures(
        finished=row["finished"],
        completed=row["completed"],
        failed=row["failed"],
        cancelled=row["cancelled"],
        print_seconds=(row["reported"] or 0) + (timed.total_seconds() if timed else 0.0),
        filament_mm=row["used_mm"] or 0.0,
        filament_g=row["used_g"] or 0.0,
    )


def statistics_jobs(*, start: dt.datetime | None, printer: int | None = None) -> QuerySet[Job]:
    """Finished print jobs from `start` on. Upload-only jobs are left out: they print nothing,
    and their "completed" would inflate the success rate."""
    jobs = Job.objects.finished().filter(action=Job.Action.PRINT)
    if start is not None:
        jobs = jobs.filter(finished_at__gte=start)
    if printer is not None:
        jobs = jobs.filter(printer_id=printer)
    return jobs.order_by()


def figures_of(jobs: QuerySet[Job]) -> Figures:
    return _figures(jobs.aggregate(**_aggregates()))


NEVER_ASSIGNED = "Never assigned"


@dataclass(frozen=True, slots=True)
class PrinterFigures:
    printer_id: int | None  # None: a removed printer, or jobs cancelled before any printer took them
    name: str
    figures: Figures


def figures_by_printer(jobs: QuerySet[Job]) -> list[PrinterFigures]:
    """One row per printer (current name), then removed printers by their last name, then
    jobs that never reached a printer. Rows sum to the farm's figures."""
    merged: dict[tuple[int | None, str], Figures] = {}
    snapshots: dict[int, str] = {}
    for row in jobs.values("printer_id", "printer_name").annotate(**_aggregates()).order_by():
        pk = row["printer_id"]
        # A renamed printer has several snapshots; it is still one printer.
        key = (pk, "") if pk else (None, row["printer_name"])
        merged[key] = merged.get(key, Figures()) + _figures(row)
        if pk:
            snapshots[pk] = row["printer_name"]
    names = dict(Printer.objects.filter(pk__in=snapshots).values_list("pk", "name"))
    rows = []
    for (pk, snapshot), figures in merged.items():
        if pk in names:
            rows.append(PrinterFigures(printer_id=pk, name=names[pk], figures=figures))
            continue
        last_name = snapshots.get(pk, "") if pk else snapshot  # removed while we were reading
        name = f"{last_name} (removed)" if last_name else NEVER_ASSIGNED
        rows.append(PrinterFigures(printer_id=None, name=name, figures=figures))
    return sorted(rows, key=lambda r: (r.printer_id is None, r.name == NEVER_ASSIGNED, r.name.casefold()))


# -- activity per day / week / month ----------------------------------------------------------------

TRUNC = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}


@dataclass(frozen=True, slots=True)
class Bucket:
    start: dt.date
    unit: str
    completed: int = 0
    failed: int = 0
    print_seconds: float = 0.0

    @property
    def print_hours(self) -> float:
        return self.print_seconds / 3600

    @property
    def label(self) -> str:
        """Short, for the x axis: '3 Mar', or 'Mar 2026' per month."""
        if self.unit == "month":
            return self.start.strftime("%b %Y")
        return f"{self.start.day} {self.start:%b}"

    @property
    def title(self) -> str:
        if self.unit == "week":
            return f"Week of {self.start.day} {self.start:%b %Y}"
        if self.unit == "month":
            return self.start.strftime("%B %Y")
        return f"{self.start.day} {self.start:%b %Y}"


def bucket_start(unit: str, day: dt.date) -> dt.date:
    if unit == "week":
        return day - dt.timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def next_bucket(unit: str, day: dt.date) -> dt.date:
    if unit == "week":
        return day + dt.timedelta(days=7)
    if unit == "month":
        return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return day + dt.timedelta(days=1)


def activity(jobs: QuerySet[Job], *, unit: str, start: dt.datetime | None, now: dt.datetime) -> list[Bucket]:
    """Completed and failed jobs and print time per local day, week (from Monday) or month,
    from `start` (or the first finished job) to now; empty buckets are zeros."""
    aggregates = _aggregates()
    rows = (
        jobs.annotate(bucket=TRUNC[unit]("finished_at"))
        .values("bucket")
        .annotate(**{k: aggregates[k] for k in ("completed", "failed", "reported", "timed")})
        .order_by("bucket")
    )
    found: dict[dt.date, Bucket] = {}
    for row in rows:
        # Trunc gives an aware datetime in the current time zone: its date is the local bucket.
        day = row["bucket"].date()
        timed: dt.timedelta | None = row["timed"]
        found[day] = Bucket(
            start=day,
            unit=unit,
            completed=row["completed"],
            failed=row["failed"],
            print_seconds=(row["reported"] or 0) + (timed.total_seconds() if timed else 0.0),
        )
    if start is not None:
        first = bucket_start(unit, timezone.localdate(start))
    elif found:
        first = min(found)
    else:
        return []
    last = max([bucket_start(unit, timezone.localdate(now)), *found])
    buckets, day = [], first
    while day <= last:
        buckets.append(found.get(day, Bucket(start=day, unit=unit)))
        day = next_bucket(unit, day)
    return buckets
