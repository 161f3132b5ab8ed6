"""Formatting for jobs and files: durations and filament lengths."""

from __future__ import annotations

from django import template

from printers.formatting import format_duration

register = template.Library()


@register.filter
def duration(seconds: object) -> str:
    """Seconds in the one duration style of every screen (printers.formatting)."""
    if seconds is None or seconds == "":
        return "—"
    try:
        return format_duration(float(seconds))
    except (TypeError, ValueError):
        return "—"


@register.filter
def metres(millimetres: object) -> str:
    try:
        value = float(millimetres) / 1000
    except (TypeError, ValueError):
        return "—"
    return f"{value:.2f} m" if value < 100 else f"{value:.0f} m"
