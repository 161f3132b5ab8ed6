"""Events nobody's write announces, found by looking: a printer offline for N minutes, the
queue run dry, a poller stopped. Each is recorded under a key naming its episode, so however
many checkers look, and however often, one episode is one event."""

from __future__ import annotations

import datetime as dt

from django.db.models import Max
from django.utils import timezone

from jobs.models import Job
from notifications.events import record
from notifications.models import Event, EventKind, Rule
from printers.formatting import format_duration
from printers.health import poller_health
from printers.models import PollerHeartbeat, PrinterStatusRow
from printers.state import State

QUEUE_DRY_RECENT = dt.timedelta(days=1)  # an older last dispatch is history, not news


def check_all(now: dt.datetime, *, own_shard: tuple[int, int] | None = None) -> int:
    """Run every check; how many events were recorded. A poller passes its own shard: that one
    is running (a stop before it started was reported by `poller_died_check`, or was a clean one)."""
    return offline_check(now) + queue_dry_check(now) + poller_check(own_shard=own_shard)


def _new(keys: list[str]) -> set[str]:
    return set(keys) - set(Event.objects.filter(key__in=keys).values_list("key", flat=True))


def offline_check(now: dt.datetime) -> int:
    """Per rule that wants offline printers: those of its printers offline longer than its
    threshold, once per time they went offline (keyed by the status row's state_since)."""
    rules = [
        r
        for r in Rule.objects.filter(enabled=True).prefetch_related("tags")
        if EventKind.PRINTER_OFFLINE in r.kinds
    ]
    recorded = 0
    for rule in rules:
        rows = PrinterStatusRow.objects.filter(
            state=State.OFFLINE,
            printer__enabled=True,
            state_since__lte=now - dt.timedelta(minutes=rule.offline_minutes),
        ).select_related("printer")
        tags = list(rule.tags.all())
        if tags:
            rows = rows.filter(printer__tags__in=tags).distinct()
        found = {f"offline:{rule.pk}:{row.pk}:{row.state_since.isoformat()}": row for row in rows}
        for key in sorted(_new(list(found))):
            row = found[key]
            since = timezone.localtime(row.state_since).strftime("%H:%M")
            text = f"Offline for {format_duration((now - row.state_since).total_seconds())} (since {since})"
            if row.message:
                text += f": {row.message}"
            recorded += (
                record(EventKind.PRINTER_OFFLINE, printer=row.printer, text=text, key=key, rule=rule)
                is not None
            )
    return recorded


def queue_dry_check(now: dt.datetime) -> int:
    """Nothing waits in the queue, and a job was sent to a printer since the last time it ran dry."""
    if Job.objects.waiting().exists():
        return 0
    last = Job.objects.filter(assigned_at__isnull=False).aggregate(last=Max("assigned_at"))["last"]
    if last is None or last < now - QUEUE_DRY_RECENT:
        return 0
    at = timezone.localtime(last).strftime("%H:%M")
    text = f"No jobs are waiting: the last one went to a printer at {at}"
    return record(EventKind.QUEUE_DRY, text=text, key=f"queue_dry:{last.isoformat()}") is not None


def poller_check(*, own_shard: tuple[int, int] | None = None) -> int:
    """Poller shards that stopped beating (dead, or shut down), once per run of each."""
    recorded = 0
    for shard in poller_health().stopped:
        if (shard.index, shard.count) == own_shard:
            continue
        if shard.seconds is None or shard.started_at is None:
            continue  # never reported: the banner says so; there is no run to name
        how = "was shut down" if shard.clean_stop else "stopped beating"
        printers = f" ({shard.printers} printers)" if shard.printers is not None else ""
        text = (
            f"Poller {shard.name}{printers} on {shard.host or '?'} {how} "
            f"{format_duration(shard.seconds)} ago: live status and dispatch have stopped"
        )
        key = f"poller:{shard.name}:{shard.started_at.isoformat()}"
        recorded += record(EventKind.POLLER_STOPPED, text=text, key=key) is not None
    return recorded


def poller_died_check(shard: tuple[int, int]) -> int:
    """At a poller's start, before it takes its heartbeat row: a row that never recorded a
    clean stop means the last poller of this shard died (SIGKILL, out of memory, power)."""
    index, count = shard
    row = PollerHeartbeat.objects.filter(
        shard_index=index, shard_count=count, stopped_at__isnull=True
    ).first()
    if row is None:
        return 0
    at = timezone.localtime(row.beat_at).strftime("%Y-%m-%d %H:%M:%S")
    text = (
        f"Poller {index}/{count} on {row.host or '?'} (pid {row.pid}) stopped without shutting down; "
        f"last heard from at {at}. It is starting again now."
    )
    key = f"poller:{index}/{count}:{row.started_at.isoformat()}"
    return record(EventKind.POLLER_STOPPED, text=text, key=key) is not None
