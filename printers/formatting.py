"""How every screen writes a duration, a temperature and a moment.

One style for the card, the queue, the job reasons, history and the API's summaries: "45 s",
"12 min", "1 h 02 min", "2 d 03 h". The jobs app's `duration` template filter calls this too,
and static/js/farm.js mirrors `format_duration` for the live "for 3 min" ages.
"""

from __future__ import annotations

import datetime as dt
import math

from django.utils import timezone

UNKNOWN = "—"


def format_duration(seconds: float) -> str:
    """45 -> '45 s', 720 -> '12 min', 3720 -> '1 h 02 min', 183600 -> '2 d 03 h'; '—' for
    a value that is not a finite number."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return UNKNOWN
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def format_number(value: float) -> str:
    """214.94 -> '214.9', 215.0 -> '215'."""
    rounded = round(value, 1)
    return f"{rounded:.0f}" if rounded == int(rounded) else f"{rounded:.1f}"


def format_temperature(actual: float | None, target: float | None) -> str:
    """'214.9 / 215 °C'; just '23.4 °C' when the heater is off; '— °C' when unknown."""
    shown = UNKNOWN if actual is None else format_number(actual)
    if target:
        return f"{shown} / {format_number(target)} °C"
    return f"{shown} °C" if actual is not None else f"{UNKNOWN} °C"


def format_temperature_compact(actual: float | None, target: float | None) -> str:
    """'215/215' for the wall view, '23' when the heater is off."""
    shown = UNKNOWN if actual is None else f"{actual:.0f}"
    return f"{shown}/{target:.0f}" if target else shown


def format_clock(moment: dt.datetime, now: dt.datetime) -> str:
    """'12:03' today, '3 Mar 12:03' before that (local time)."""
    local = timezone.localtime(moment)
    if local.date() == timezone.localtime(now).date():
        return local.strftime("%H:%M")
    return f"{local.day} {local.strftime('%b %H:%M')}"


def format_end(moment: dt.datetime, now: dt.datetime) -> str:
    """When something ends, in the server's time zone: '14:35' today, 'tomorrow 02:10', 'Thu
    02:10' within the week, '3 Mar 02:10' after that."""
    local = timezone.localtime(moment)
    days = (local.date() - timezone.localtime(now).date()).days
    clock = local.strftime("%H:%M")
    if days <= 0:
        return clock
    if days == 1:
        return f"tomorrow {clock}"
    if days < 7:
        return f"{local.strftime('%a')} {clock}"
    return f"{local.day} {local.strftime('%b')} {clock}"
