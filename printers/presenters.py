"""View models for printer cards, state counts and the temperature chart: formatting only."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from printers.commands import Command, commands_for_state
from printers.models import Printer, PrinterStatusRow, Tag, TemperatureSample
from printers.state import State

STATE_ORDER = (
    State.PRINTING,
    State.PAUSED,
    State.ERROR,
    State.FINISHED,
    State.IDLE,
    State.CONNECTING,
    State.OFFLINE,
    State.MAINTENANCE,
)


# -- small formatters --------------------------------------------------------------------


def format_number(value: float) -> str:
    """214.94 -> '214.9', 215.0 -> '215'."""
    rounded = round(value, 1)
    return f"{rounded:.0f}" if rounded == int(rounded) else f"{rounded:.1f}"


def format_temperature(actual: float | None, target: float | None) -> str:
    """'214.9 / 215 °C'; just '23.4 °C' when the heater is off; '—' when unknown."""
    shown = "—" if actual is None else format_number(actual)
    if target:
        return f"{shown} / {format_number(target)} °C"
    return f"{shown} °C" if actual is not None else "— °C"


def format_temperature_compact(actual: float | None, target: float | None) -> str:
    """'215/215' for the wall view, '23' when the heater is off."""
    shown = "—" if actual is None else f"{actual:.0f}"
    return f"{shown}/{target:.0f}" if target else shown


def format_duration(seconds: float) -> str:
    """45 -> '45s', 125 -> '2m', 3720 -> '1h 02m', 93600 -> '1d 2h'."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def format_age(seconds: float) -> str:
    """How long ago, in words: '12 s', '3 min', '2 h', '4 d'. Mirrored in static/js/farm.js."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def format_clock(moment: dt.datetime, now: dt.datetime) -> str:
    """'12:03' today, '3 Mar 12:03' before that (local time)."""
    local = timezone.localtime(moment)
    if local.date() == timezone.localtime(now).date():
        return local.strftime("%H:%M")
    return f"{local.day} {local.strftime('%b %H:%M')}"


# -- cards --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    command: Command
    url: str


@dataclass(frozen=True, slots=True)
class CardJob:
    """The farm job on a printer, as its card shows it."""

    pk: int
    label: str
    url: str
    state_label: str
    thumbnail_url: str = ""
    transfer_percent: float | None = None  # while the file is being sent
    note: str = ""  # what is going on with it: a lost connection, a retry, a start being checked


@dataclass(frozen=True, slots=True)
class Card:
    """Everything the printer-card partial shows, already formatted."""

    pk: int
    name: str
    url: str
    state: str
    state_label: str
    hotend: str
    bed: str
    hotend_compact: str
    bed_compact: str
    progress: float | None
    progress_text: str
    time_left: str
    file: str
    message: str
    since_iso: str  # when the current state began, for the live "for 3 min" text
    since_text: str
    last_seen_text: str
    tags: tuple[str, ...]
    actions: tuple[Action, ...] = field(default=())
    job: CardJob | None = None
    bed_clear_url: str = ""  # set while the bed waits for an operator to confirm it is clear

    @property
    def progress_width(self) -> str:
        return f"{self.progress or 0:.1f}"


def _status_of(printer: Printer) -> PrinterStatusRow | None:
    try:
        return printer.status
    except PrinterStatusRow.DoesNotExist:
        return None  # created outside the services, or deleted mid-render


def card_state(printer: Printer, row: PrinterStatusRow | None) -> State:
    if not printer.enabled:
        return State.MAINTENANCE
    if row is None:
        return State.CONNECTING
    try:
        return State(row.state)
    except ValueError:
        return State.ERROR


class CardUrls:
    """The card's URLs, reversed once per render instead of ~6 times per card.

    reverse() was most of the cost of building 1,000 cards; these patterns take a plain
    integer pk and a slug, so filling a reversed template is equivalent.
    """

    _PK = 987654321
    _NAME = "command-name"

    def __init__(self) -> None:
        pk = str(self._PK)
        # Split once around the placeholders; each card then only joins strings.
        self._detail = str(reverse("printers:detail", args=[self._PK])).split(pk)
        before, after = str(reverse("printers:command", args=[self._PK, self._NAME])).split(pk)
        self._command = (before, *after.split(self._NAME))
        self._bed = str(reverse("jobs:bed_cleared", args=[self._PK])).split(pk)

    def detail(self, pk: int) -> str:
        return f"{self._detail[0]}{pk}{self._detail[1]}"

    def bed_cleared(self, pk: int) -> str:
        return f"{self._bed[0]}{pk}{self._bed[1]}"

    def command(self, pk: int, name: str) -> str:
        before, middle, after = self._command
        return f"{before}{pk}{middle}{name}{after}"


def card_jobs(printer_ids: Iterable[int]) -> dict[int, CardJob]:
    """The active farm job of each of these printers (one query)."""
    from jobs.presenters import card_jobs as jobs_on

    return jobs_on(printer_ids)


def card_for(
    printer: Printer,
    *,
    now: dt.datetime | None = None,
    urls: CardUrls | None = None,
    jobs: Mapping[int, CardJob] | None = None,
) -> Card:
    """Build a card from a printer loaded with `Printer.objects.with_status()`; without `jobs`
    (from `card_jobs`) it costs one query for the printer's job."""
    now = now or timezone.now()
    urls = urls or CardUrls()
    if jobs is None:
        jobs = card_jobs([printer.pk])
    row = _status_of(printer)
    state = card_state(printer, row)
    live = state not in (State.OFFLINE, State.MAINTENANCE)
    progress = row.progress if row is not None and state in (State.PRINTING, State.PAUSED) else None
    remaining = row.remaining if row is not None and progress is not None else None

    since = row.state_since if row is not None else None
    since_text = f"for {format_age((now - since).total_seconds())}" if since else ""
    last_seen_text = ""
    if state == State.OFFLINE:
        if row is not None and row.last_seen:
            last_seen_text = f"last seen {format_clock(row.last_seen, now)}"
        else:
            last_seen_text = "never seen"

    def temps(attr: str) -> tuple[float | None, float | None]:
        if row is None or not live:
            return None, None
        return getattr(row, f"{attr}_actual"), getattr(row, f"{attr}_target")

    hotend, bed = temps("hotend"), temps("bed")
    message = row.message if row is not None else "Waiting for the first poll"
    actions = tuple(
        Action(command=c, url=urls.command(printer.pk, c.name)) for c in commands_for_state(state)
    )
    return Card(
        pk=printer.pk,
        name=printer.name,
        url=urls.detail(printer.pk),
        state=state.value,
        state_label=state.label,
        hotend=format_temperature(*hotend),
        bed=format_temperature(*bed),
        hotend_compact=format_temperature_compact(*hotend),
        bed_compact=format_temperature_compact(*bed),
        progress=progress,
        progress_text=f"{progress:.0f}%" if progress is not None else "",
        time_left=f"{format_duration(remaining)} left" if remaining is not None else "",
        file=row.file if row is not None and state != State.IDLE else "",
        message=message,
        since_iso=since.isoformat() if since else "",
        since_text=since_text,
        last_seen_text=last_seen_text,
        tags=tuple(t.name for t in printer.tags.all()),
        actions=actions,
        job=jobs.get(printer.pk),
        bed_clear_url="" if printer.bed_clear else urls.bed_cleared(printer.pk),
    )


def cards_for(printers: Iterable[Printer]) -> list[Card]:
    printers = list(printers)
    now, urls, jobs = timezone.now(), CardUrls(), card_jobs(p.pk for p in printers)
    return [card_for(p, now=now, urls=urls, jobs=jobs) for p in printers]


# -- state counts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateCount:
    state: str
    label: str
    count: int


def state_counts() -> tuple[list[StateCount], int]:
    """Printers per state over the whole farm (one query), and the total.

    Disabled printers count as maintenance whatever their row says, like
    `PrinterQuerySet.in_state`.
    """
    counts = dict.fromkeys(STATE_ORDER, 0)
    rows = Printer.objects.order_by().values_list("enabled", "status__state").annotate(n=Count("pk"))
    for enabled, state, n in rows:
        if not enabled:
            key = State.MAINTENANCE
        elif state in counts:
            key = State(state)
        else:
            key = State.CONNECTING
        counts[key] += n
    items = [StateCount(state=s.value, label=s.label, count=counts[s]) for s in STATE_ORDER]
    return items, sum(counts.values())


# -- temperature chart --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    css: str
    dashed: bool
    segments: tuple[str, ...]  # SVG polyline "x,y x,y …" strings; a gap splits segments


@dataclass(frozen=True, slots=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    series: tuple[Series, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    empty: bool


CHART_SERIES = (
    ("Hotend", "hotend", "hotend_actual", False),
    ("Hotend target", "hotend", "hotend_target", True),
    ("Bed", "bed", "bed_actual", False),
    ("Bed target", "bed", "bed_target", True),
)


def temperature_chart(
    samples: Sequence[TemperatureSample],
    *,
    now: dt.datetime,
    span: dt.timedelta = dt.timedelta(hours=1),
    width: int = 720,
    height: int = 240,
) -> Chart:
    """Inline-SVG geometry for the last `span` of temperatures (server-rendered, no JS)."""
    left, right, top, bottom = 44, width - 10, 10, height - 24
    start = now - span
    values = [
        v
        for s in samples
        for v in (s.hotend_actual, s.hotend_target, s.bed_actual, s.bed_target)
        if v is not None
    ]
    top_value = max([*values, 50.0])
    step = 25 if top_value <= 100 else 50
    y_max = math.ceil((top_value + 5) / step) * step
    span_s = span.total_seconds()
    gap = max(span_s / 60, 30.0)  # a hole longer than this in the samples breaks the line

    def x_of(at: dt.datetime) -> float:
        return left + (right - left) * ((at - start).total_seconds() / span_s)

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * (min(max(value, 0.0), y_max) / y_max)

    series = []
    for label, css, attr, dashed in CHART_SERIES:
        segments: list[str] = []
        points: list[str] = []
        previous: dt.datetime | None = None
        for sample in samples:
            value = getattr(sample, attr)
            if sample.at < start:
                continue
            broken = previous is not None and (sample.at - previous).total_seconds() > gap
            if value is None or broken:
                if len(points) > 1:
                    segments.append(" ".join(points))
                points = []
            if value is not None:
                points.append(f"{x_of(sample.at):.1f},{y_of(value):.1f}")
            previous = sample.at
        if len(points) > 1:
            segments.append(" ".join(points))
        series.append(Series(label=label, css=css, dashed=dashed, segments=tuple(segments)))

    y_ticks = tuple(Tick(pos=round(y_of(v), 1), label=f"{v}°") for v in range(0, y_max + 1, step))
    x_ticks = tuple(
        Tick(
            pos=round(x_of(start + span * i / 6), 1),
            label="now" if i == 6 else f"−{format_duration(span_s * (6 - i) / 6)}",
        )
        for i in range(7)
    )
    return Chart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        series=tuple(series),
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        empty=not any(s.segments for s in series),
    )


# -- dashboard filters --------------------------------------------------------------------

VIEWS = ("cards", "wall")


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    href: str
    active: bool = False


@dataclass(frozen=True, slots=True)
class DashboardFilters:
    """`?state=printing&tag=lab-a&view=wall`, validated: unknown values mean "no filter"."""

    state: str = ""
    tag: str = ""
    view: str = "cards"

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> DashboardFilters:
        state = query.get("state", "")
        tag = " ".join(query.get("tag", "").split()).lower()
        return cls(
            state=state if state in State.__members__.values() else "",
            tag=tag[: Tag._meta.get_field("name").max_length],
            view="wall" if query.get("view") == "wall" else "cards",
        )

    @property
    def wall(self) -> bool:
        return self.view == "wall"

    def href(self, **changes: str) -> str:
        values = {"state": self.state, "tag": self.tag, "view": self.view, **changes}
        params = {k: v for k, v in values.items() if v and not (k == "view" and v == "cards")}
        url = reverse("printers:dashboard")
        return f"{url}?{urlencode(params)}" if params else url

    @property
    def keep(self) -> str:
        """The query string the state filters carry along (tag and view), '' when none."""
        return urlencode({k: v for k, v in (("tag", self.tag), ("view", self.view)) if v and v != "cards"})

    def tag_links(self, names: Iterable[str]) -> list[Link]:
        links = [Link("All tags", self.href(tag=""), not self.tag)]
        links += [Link(name, self.href(tag=name), name == self.tag) for name in names]
        return links

    def view_links(self) -> list[Link]:
        return [
            Link("Cards", self.href(view="cards"), not self.wall),
            Link("Wall", self.href(view="wall"), self.wall),
        ]
