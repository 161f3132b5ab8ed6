"""The statistics page's activity chart: completed/failed bars and print hours, as inline SVG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from jobs.stats import Bucket
from printers.presenters import Tick

# -- the chart ------------------------------------------------------------------------------------

DIVISIONS = 4  # horizontal grid lines above zero, shared by both y axes
MAX_X_LABELS = 12


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 5 x 10^n at least `raw` (1 for nothing)."""
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power * (1 + 1e-9):
            return factor * power
    raise AssertionError("unreachable")


def _tick_label(value: float) -> str:
    return f"{round(value, 6):g}"


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True, slots=True)
class ActivityChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    title: str
    description: str
    bars: tuple[Bar, ...]
    hours_points: str  # SVG polyline "x,y x,y …" through the print-hour dots
    dots: tuple[Dot, ...]
    y_ticks: tuple[Tick, ...]  # left axis: jobs
    hour_ticks: tuple[Tick, ...]  # right axis: print hours
    x_ticks: tuple[Tick, ...]
    empty: bool


def activity_chart(
    buckets: Sequence[Bucket], *, unit: str, width: int = 720, height: int = 260
) -> ActivityChart:
    """Inline-SVG geometry: completed and failed bars side by side per bucket (left axis),
    print hours as a line (right axis). Server-rendered, no JS."""
    left, right, top, bottom = 40, width - 46, 28, height - 24
    count_step = max(
        1, math.ceil(nice_step(max((max(b.completed, b.failed) for b in buckets), default=0) / DIVISIONS))
    )
    hours_step = nice_step(max((b.print_hours for b in buckets), default=0.0) / DIVISIONS)
    count_max, hours_max = count_step * DIVISIONS, hours_step * DIVISIONS
    slot = (right - left) / max(len(buckets), 1)
    bar_width = slot * 0.36

    def y_of(value: float, top_value: float) -> float:
        return round(bottom - (bottom - top) * min(value, top_value) / top_value, 1)

    bars: list[Bar] = []
    dots: list[Dot] = []
    for i, bucket in enumerate(buckets):
        centre = left + slot * (i + 0.5)
        for x, css, value in (
            (centre - bar_width, "completed", bucket.completed),
            (centre, "failed", bucket.failed),
        ):
            if value:
                y = y_of(value, count_max)
                bars.append(
                    Bar(
                        round(x, 1),
                        y,
                        round(bar_width, 1),
                        round(bottom - y, 1),
                        css,
                        f"{bucket.title}: {value} {css}",
                    )
                )
        hours = f"{bucket.print_hours:.1f} print hours"
        dots.append(Dot(round(centre, 1), y_of(bucket.print_hours, hours_max), f"{bucket.title}: {hours}"))

    every = math.ceil(len(buckets) / MAX_X_LABELS) if buckets else 1
    completed = sum(b.completed for b in buckets)
    failed = sum(b.failed for b in buckets)
    hours = sum(b.print_hours for b in buckets)
    return ActivityChart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        title=f"Completed and failed jobs per {unit}, with print hours",
        description=(
            f"{len(buckets)} {unit}s from {buckets[0].title} to {buckets[-1].title}: "
            f"{completed} completed, {failed} failed, {hours:.1f} print hours."
            if buckets
            else "No finished jobs."
        ),
        bars=tuple(bars),
        hours_points=" ".join(f"{d.x},{d.y}" for d in dots),
        dots=tuple(dots),
        y_ticks=tuple(
            Tick(y_of(count_step * i, count_max), str(count_step * i)) for i in range(DIVISIONS + 1)
        ),
        hour_ticks=tuple(
            Tick(y_of(hours_step * i, hours_max), _tick_label(hours_step * i)) for i in range(DIVISIONS + 1)
        ),
        x_ticks=tuple(
            Tick(round(left + slot * (i + 0.5), 1), b.label) for i, b in enumerate(buckets) if i % every == 0
        ),
        empty=not (completed or failed or hours),
    )
