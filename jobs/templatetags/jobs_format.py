"""Formatting for jobs and files: durations and filament lengths."""

from __future__ import annotations

from django import template

from jobs.matching import duration as _duration

register = template.Library()


@register.filter
def duration(seconds: object) -> str:
    if seconds is None or seconds == "":
        return "—"
    try:
        return _duration(float(seconds))
    except (TypeError, ValueError):
        return "—"


@register.filter
def metres(millimetres: object) -> str:
    try:
        value = float(millimetres) / 1000
    except (TypeError, ValueError):
        return "—"
    return f"{value:.2f} m" if value < 100 else f"{value:.0f} m"
