"""View models for printer cards, state counts and the temperature chart: formatting only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone

from printers.camera_sources import camera_source
from printers.colours import colour_name
from printers.commands import Command, commands_for_state
from printers.finding import GROUPS, SORTS, SortKeys, find_text, natural_key, print_end, sort_keys
from printers.formatting import (
    format_clock,
    format_duration,
    format_end,
    format_temperature,
    format_temperature_compact,
)
from printers.health import PollerHealth, poller_health
from printers.models import Printer, PrinterStatusRow, Tag, TemperatureSample
from printers.queries import farm_state_counts
from printers.state import State, shown_state
from printers.thumbnails import is_key
from printers.trays import stored_trays
from printers.web_ui import web_ui

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


# -- cards --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    command: Command
    url: str


@dataclass(frozen=True, slots=True)
class CardFilament:
    """One filament a job prints with, as its card's job line shows it."""

    type: str  # "PLA", "" when the slicer didn't say
    colour: str  # "#RRGGBB" checked by printers.colours, or ""
    grams: str  # "12 g", "" when unknown
    title: str  # the tooltip: "slot 2: PETG black, 12 g"


@dataclass(frozen=True, slots=True)
class CardJob:
    """The farm job on a printer, as its card shows it."""

    pk: int
    label: str
    url: str
    state_label: str
    thumbnail_url: str = ""
    transfer_percent: float | None = None  # while the file is being sent
    state: str = ""  # the job's state code: "printing" shows as "paused" on a paused printer
    note: str = ""  # what is going on with it: a lost connection, a retry, a start being checked
    filaments: tuple[CardFilament, ...] = ()  # what its file prints with, slot by slot


@dataclass(frozen=True, slots=True)
class CardTray:
    """A spool the printer can feed from (an AMS tray, the external spool), as shown."""

    label: str  # "AMS 1 slot 2", "external spool"
    type: str  # "" for an empty tray
    colour: str  # "#RRGGBB" checked by printers.colours, or ""
    colour_name: str  # "black", or the hex when no name is near
    remaining: str  # "80%", "" when the AMS doesn't know
    active: bool
    title: str  # the swatch's tooltip: "AMS 1 slot 2: PLA black, 80% left (feeding)"


def card_trays(stored: object) -> tuple[CardTray, ...]:
    """A status row's `trays` as the card and the printer page show them."""
    shown = []
    for tray in stored_trays(stored):
        remaining = f"{tray.remaining}%" if tray.remaining is not None else ""
        name = colour_name(tray.colour)
        what = " ".join(w for w in (tray.type, name) if w) or "empty"
        title = f"{tray.label}: {what}{f', {remaining} left' if remaining else ''}"
        shown.append(
            CardTray(
                label=tray.label,
                type=tray.type,
                colour=tray.colour,
                colour_name=name,
                remaining=remaining,
                active=tray.active,
                title=f"{title} (feeding)" if tray.active else title,
            )
        )
    return tuple(shown)


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
    time_left: str  # "8 min left", "time left unknown", or "" when not printing
    printed: str  # "printed 12 min" on a paused print (a printing one says it in since_text)
    file: str
    message: str
    since_iso: str  # when the state (a print: its printing) began, for the live "for 3 min" text
    since_text: str
    last_seen_text: str
    tags: tuple[str, ...]
    actions: tuple[Action, ...] = field(default=())
    job: CardJob | None = None
    bed_clear_url: str = ""  # set while the bed waits for an operator to confirm it is clear
    stale: bool = False  # its poller has stopped: this reading is no longer live (printers.health)
    trays: tuple[CardTray, ...] = ()  # its AMS trays and external spool, when it reports them
    layers: str = ""  # "layer 12 of 300" on a print whose printer counts layers (Bambu)
    ends: str = ""  # "ends 14:35", "ends tomorrow 02:10": a running print's end, local time
    ends_iso: str = ""
    # The printer's own image of the file it prints (printers.thumbnails), for a print no job sent.
    thumbnail_url: str = ""
    web_ui_label: str = ""  # "Mainsail/Fluidd": the printer's own interface, "" when none
    web_ui_url: str = ""
    # printers.finding: where it stands, what a search looks in, its sort keys (the grid's
    # order and groups; farm.js reads them off pushed cards as data-* attributes)
    location: str = ""
    find: str = ""
    sort_keys: SortKeys = SortKeys(state=0, end=0, attention=0)
    rank: int = 0  # its place in natural name order over the farm: every sort's tie-break
    # Our relay of its webcam's snapshot (printers.cameras), "" without one or when not shown on
    # the card; a field, so it is part of the card cache's key (printers.cards).
    camera_url: str = ""

    @property
    def progress_width(self) -> str:
        return f"{self.progress or 0:.1f}"


def _status_of(printer: Printer) -> PrinterStatusRow | None:
    try:
        return printer.status
    except PrinterStatusRow.DoesNotExist:
        return None  # created outside the services, or deleted mid-render


def card_state(printer: Printer, row: PrinterStatusRow | None) -> State:
    return shown_state(enabled=printer.enabled, stored=row.state if row is not None else None)


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
        self._bed = str(reverse("printers:bed_cleared", args=[self._PK])).split(pk)
        self._thumbnail = str(reverse("printers:thumbnail", args=[self._PK, "0" * 32])).split(pk)
        self._camera = str(reverse("printers:camera_snapshot", args=[self._PK])).split(pk)

    def detail(self, pk: int) -> str:
        return f"{self._detail[0]}{pk}{self._detail[1]}"

    def bed_cleared(self, pk: int) -> str:
        return f"{self._bed[0]}{pk}{self._bed[1]}"

    def thumbnail(self, pk: int, key: str) -> str:
        before, after = self._thumbnail
        return f"{before}{pk}{after.replace('0' * 32, key)}"

    def camera(self, pk: int) -> str:
        return f"{self._camera[0]}{pk}{self._camera[1]}"

    def command(self, pk: int, name: str) -> str:
        before, middle, after = self._command
        return f"{before}{pk}{middle}{name}{after}"


CardJobsProvider = Callable[[Iterable[int]], dict[int, CardJob]]
# Who says which farm job each card shows: the jobs app registers itself in its AppConfig.ready(),
# so that printers never imports jobs (jobs uses printers, not the other way round).
_card_jobs_providers: list[CardJobsProvider] = []


def register_card_jobs(provider: CardJobsProvider) -> None:
    """Make `provider` (printer ids -> their active job, one query) the source of the job line
    on every card; registering the same one again changes nothing."""
    _card_jobs_providers[:] = [provider]


def card_jobs(printer_ids: Iterable[int]) -> dict[int, CardJob]:
    """The active farm job of each of these printers; none while no app registered a provider."""
    if not _card_jobs_providers:
        return {}
    return _card_jobs_providers[0](printer_ids)


@dataclass(frozen=True, slots=True)
class PrintNumbers:
    progress: float | None = None
    time_left: str = ""
    printed: str = ""
    since: dt.datetime | None = None  # when the print began, as its own clock counts
    ends: dt.datetime | None = None  # when a printing (not paused) print ends, to the minute


def print_numbers(state: State, row: PrinterStatusRow | None) -> PrintNumbers:
    """Progress, time left and time printed of a running print, only as far as they are known."""
    if row is None or state not in State.RUNNING or row.progress is None:
        return PrintNumbers()
    progress, remaining, elapsed = row.progress, row.remaining, row.elapsed
    if remaining == 0 and progress < 100:
        # "0 s left" at 61 % is a missing estimate, not the end of the print.
        remaining = None
    time_left = f"{format_duration(remaining)} left" if remaining is not None else "time left unknown"
    # The end clock (printers.finding sorts by the same moment): none while paused.
    ends = print_end(state=state, remaining=remaining, last_seen=row.last_seen, progress=progress)
    if elapsed is None:
        return PrintNumbers(progress=progress, time_left=time_left, ends=ends)
    if state == State.PAUSED:
        printed = f"printed {format_duration(elapsed)}"
        return PrintNumbers(progress=progress, time_left=time_left, printed=printed)
    # state_since restarts at every resume; "Printing for …" counts the print's own time,
    # as of the reading (last_seen), so the page's live clock carries it on.
    since = row.last_seen - dt.timedelta(seconds=elapsed) if row.last_seen is not None else None
    return PrintNumbers(progress=progress, time_left=time_left, since=since, ends=ends)


def _job_as_shown(job: CardJob | None, state: State) -> CardJob | None:
    """A printing job on a paused printer reads "paused" on its card."""
    if job is not None and job.state == State.PRINTING and state == State.PAUSED:
        return dataclasses.replace(job, state_label=State.PAUSED.label)
    return job


def _finding_fields(
    printer: Printer,
    row: PrinterStatusRow | None,
    state: State,
    job: CardJob | None,
    now: dt.datetime,
    tags: tuple[str, ...],
) -> dict:
    """The card's location, search text and sort keys (printers.finding)."""
    ends = None
    if row is not None:
        ends = print_end(state=state, remaining=row.remaining, last_seen=row.last_seen, progress=row.progress)
    shown_file = row.file if row is not None and state != State.IDLE else ""  # as the card shows it
    return {
        "location": printer.location,
        "find": find_text(
            name=printer.name,
            tags=tags,
            location=printer.location,
            files=(shown_file, job.label if job is not None else ""),
        ),
        "sort_keys": sort_keys(state=state, bed_to_clear=not printer.bed_clear, ends=ends, now=now),
    }


def card_for(
    printer: Printer,
    *,
    now: dt.datetime | None = None,
    urls: CardUrls | None = None,
    jobs: Mapping[int, CardJob] | None = None,
    health: PollerHealth | None = None,
    rank: int = 0,
    tags: Mapping[int, tuple[str, ...]] | None = None,
) -> Card:
    """Build a card from a printer loaded with `Printer.objects.with_status()` (or `for_cards()`
    with `tags`); without `jobs` (from `card_jobs`) it costs one query for the printer's job,
    without `health` (from `poller_health`) one for the pollers' heartbeats."""
    now = now or timezone.now()
    urls = urls or CardUrls()
    if jobs is None:
        jobs = card_jobs([printer.pk])
    row = _status_of(printer)
    state = card_state(printer, row)
    live = state not in State.NO_READING
    numbers = print_numbers(state, row)
    since = numbers.since if numbers.since is not None else row.state_since if row is not None else None
    since_text = f"for {format_duration((now - since).total_seconds())}" if since else ""
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
    names = tags.get(printer.pk, ()) if tags is not None else tuple(t.name for t in printer.tags.all())
    ui = web_ui(printer.protocol, printer.base_url)
    thumbnail = row.thumbnail if row is not None and live and row.file and is_key(row.thumbnail) else ""
    message = row.message if row is not None else "Waiting for the first poll"
    light = row.light if row is not None and live else None
    actions = tuple(
        Action(command=c, url=urls.command(printer.pk, c.name))
        for c in commands_for_state(state, printer.protocol, light=light)
    )
    return Card(
        **_finding_fields(printer, row, state, jobs.get(printer.pk), now, names),
        pk=printer.pk,
        name=printer.name,
        rank=rank,
        url=urls.detail(printer.pk),
        state=state.value,
        state_label=state.label,
        hotend=format_temperature(*hotend),
        bed=format_temperature(*bed),
        hotend_compact=format_temperature_compact(*hotend),
        bed_compact=format_temperature_compact(*bed),
        progress=numbers.progress,
        progress_text=f"{numbers.progress:.0f}%" if numbers.progress is not None else "",
        time_left=numbers.time_left,
        printed=numbers.printed,
        file=row.file if row is not None and state != State.IDLE else "",
        message=message,
        since_iso=since.isoformat() if since else "",
        since_text=since_text,
        last_seen_text=last_seen_text,
        tags=names,
        actions=actions,
        job=_job_as_shown(jobs.get(printer.pk), state),
        bed_clear_url="" if printer.bed_clear else urls.bed_cleared(printer.pk),
        # Disabled printers are not polled anyway: their card says maintenance, not stale.
        stale=printer.enabled and (health or poller_health()).is_stale(printer.pk),
        trays=card_trays(row.trays) if row is not None and live else (),
        layers=f"layer {row.layer} of {row.layer_count}"
        if row is not None and row.layer and row.layer_count
        else "",
        ends=f"ends {format_end(numbers.ends, now)}" if numbers.ends else "",
        ends_iso=numbers.ends.isoformat() if numbers.ends else "",
        thumbnail_url=urls.thumbnail(printer.pk, thumbnail) if thumbnail else "",
        web_ui_label=ui.label if ui else "",
        web_ui_url=ui.url if ui else "",
        camera_url=urls.camera(printer.pk)
        if printer.camera_on_card and camera_source(printer).snapshot
        else "",
    )


def cards_for(printers: Iterable[Printer]) -> list[Card]:
    """Cards for printers loaded with `Printer.objects.for_cards()`: a few queries in all."""
    printers = list(printers)
    now, urls, jobs = timezone.now(), CardUrls(), card_jobs(p.pk for p in printers)
    health, ranks, tags = poller_health(), name_ranks(), printer_tags(p.pk for p in printers)
    return [
        card_for(p, now=now, urls=urls, jobs=jobs, health=health, rank=ranks.get(p.pk, 0), tags=tags)
        for p in printers
    ]


WHOLE_FARM = 200  # more printers than this: read every printer's tags and keep the ones asked for


def printer_tags(printer_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """Each printer's tag names in name order (one query): a related manager per printer cost
    more than the rest of its card."""
    ids = set(printer_ids)
    links = Printer.tags.through.objects.order_by("tag__name")
    if len(ids) <= WHOLE_FARM:
        links = links.filter(printer_id__in=ids)  # else all of them: cheaper than a huge IN list
    tags: dict[int, list[str]] = {}
    for printer_id, name in links.values_list("printer_id", "tag__name"):
        if printer_id not in ids:
            continue
        tags.setdefault(printer_id, []).append(name)
    return {pk: tuple(names) for pk, names in tags.items()}


def name_ranks() -> dict[int, int]:
    """Each printer's place in natural name order over the whole farm (one query): a pushed
    card carries it, so the page can put the card where the server would (static/js/farm.js)."""
    named = sorted(Printer.objects.order_by().values_list("name", "pk"), key=lambda row: natural_key(row[0]))
    return {pk: place for place, (_, pk) in enumerate(named)}


# -- state counts -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateCount:
    state: str
    label: str
    count: int


def beds_waiting_count() -> int:
    """Printers whose finished print waits for someone to confirm the bed clear (the counts
    bar's "Clear all finished beds")."""
    return Printer.objects.filter(enabled=True, bed_clear=False).count()


def state_counts() -> tuple[list[StateCount], int]:
    """Printers per state over the whole farm (one query), and the total: the count the API's
    `/status` and `/metrics` give too (printers.queries)."""
    counts = farm_state_counts()
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
SEARCH_MAX = 100  # characters of a dashboard search kept


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    href: str
    active: bool = False


@dataclass(frozen=True, slots=True)
class DashboardFilters:
    """`?state=printing&tag=lab-a&view=wall&q=benchy&sort=end&group=tag&density=compact`,
    validated: unknown values mean the default (no filter, name order, no groups)."""

    state: str = ""
    tag: str = ""
    view: str = "cards"
    q: str = ""
    sort: str = "name"
    group: str = ""
    density: str = "comfortable"
    # Whether `sort` was asked for (None: it was if it isn't the view's default). An unasked
    # sort follows the view: the wall opened from a name-ordered dashboard has its own order.
    sort_chosen: bool | None = None

    # The defaults, left out of URLs: the plain dashboard stays "/".
    DEFAULTS: ClassVar[dict[str, str]] = {"view": "cards", "sort": "name", "density": "comfortable"}
    KEPT: ClassVar[tuple[str, ...]] = ("tag", "view", "q", "sort", "group", "density")  # all but state

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> DashboardFilters:
        state = query.get("state", "")
        tag = " ".join(query.get("tag", "").split()).lower()
        sort, group = query.get("sort", ""), query.get("group", "")
        view = "wall" if query.get("view") == "wall" else "cards"
        return cls(
            state=state if state in State.__members__.values() else "",
            tag=tag[: Tag._meta.get_field("name").max_length],
            view=view,
            q=" ".join(query.get("q", "").split())[:SEARCH_MAX],
            sort=sort if sort in SORTS else cls.default_sort(view),
            sort_chosen=True if sort in SORTS else None,
            group=group if group in GROUPS else "",
            density="compact" if query.get("density") == "compact" else "comfortable",
        )

    @staticmethod
    def default_sort(view: str) -> str:
        """The wall shows what needs a person first; the dashboard, names in order."""
        return "attention" if view == "wall" else "name"

    @property
    def wall(self) -> bool:
        return self.view == "wall"

    @property
    def narrowed(self) -> bool:
        """Some printers may be left out (a state, a tag or a search)."""
        return bool(self.state or self.tag or self.q)

    def params(self, names: Iterable[str] | None = None, **changes: str) -> list[tuple[str, str]]:
        """The non-default values of `names` (all when None), with `changes` applied."""
        values = {f: getattr(self, f) for f in ("state", *self.KEPT)} | changes
        names = ("state", *self.KEPT) if names is None else names
        defaults = self.DEFAULTS | {"sort": self.default_sort(values["view"])}
        chosen = self.sort != self.default_sort(self.view) if self.sort_chosen is None else self.sort_chosen
        if not (chosen or "sort" in changes):
            values["sort"] = ""
        return [(k, values[k]) for k in names if values[k] and values[k] != defaults.get(k)]

    def href(self, **changes: str) -> str:
        url = reverse("printers:dashboard")
        params = self.params(**changes)
        return f"{url}?{urlencode(params)}" if params else url

    @property
    def kept(self) -> list[tuple[str, str]]:
        """What a state filter carries along (#filter-context's hidden inputs)."""
        return self.params(self.KEPT)

    @property
    def keep(self) -> str:
        """The query string the state filters carry along, '' when none."""
        return urlencode(self.kept)

    def density_links(self) -> list[Link]:
        compact = self.density == "compact"
        return [
            Link("Comfortable", self.href(density="comfortable"), not compact),
            Link("Compact", self.href(density="compact"), compact),
        ]

    def tag_links(self, names: Iterable[str]) -> list[Link]:
        links = [Link("All tags", self.href(tag=""), not self.tag)]
        links += [Link(name, self.href(tag=name), name == self.tag) for name in names]
        return links

    def view_links(self) -> list[Link]:
        return [
            Link("Cards", self.href(view="cards"), not self.wall),
            Link("Wall", self.href(view="wall"), self.wall),
        ]
