"""Formatting for jobs and files: durations and filament lengths."""

from __future__ import annotations

from django import template

register = template.Library()


def _duration(seconds: float) -> str:
    """Print times: '45 s', '20 min', '1 h 15 min', '3 days'."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


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
