"""Is live status still being updated? The pollers' heartbeats, written and read.

Each `poll_printers --shard K/N` owns one `PollerHeartbeat` row and stamps it every few
seconds. Stamps and ages use the database's clock (`Now()`), so a poller and a web server
on different hosts need no synchronised clocks. A shard whose stamp is older than
`PRINTFARM_POLLER_STALE_SECONDS`, or that shut down, has stopped: the cards of the printers
it owns (pk % N == K) are stale, and every page says so (`poller_health_context`, the
`printers/poller_health.html` banner), as does the API's `/status`.

Writes and reads live together here because they are one protocol: what a beat means is
decided by how it is read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.db.models.functions import Mod, Now
from django.utils.functional import SimpleLazyObject

from printers.formatting import format_duration
from printers.models import PollerHeartbeat, Printer

BEAT_MAX = 5.0  # seconds between two beats at most


def beat_interval() -> float:
    """Seconds between two beats: several beats fit in the stale limit, so one late beat
    (a slow flush, a busy database) does not show a running poller as stopped."""
    return min(BEAT_MAX, settings.PRINTFARM_POLLER_STALE_SECONDS / 3)


# -- writes (the poller) ----------------------------------------------------------------------


def poller_heartbeat_begin(*, shard: tuple[int, int], host: str, pid: int) -> None:
    """A poller for this shard started (or restarted): the row is now its own."""
    index, count = shard
    fields = {"host": host[:255], "pid": pid, "started_at": Now(), "beat_at": Now(), "stopped_at": None}
    if PollerHeartbeat.objects.filter(shard_index=index, shard_count=count).update(**fields):
        return
    try:
        with transaction.atomic():
            PollerHeartbeat.objects.create(shard_index=index, shard_count=count, **fields)
    except IntegrityError:
        # Another poller of the same shard created it a moment ago: beat on that row.
        poller_heartbeat_beat(shard=shard, host=host, pid=pid)


def poller_heartbeat_beat(*, shard: tuple[int, int], host: str, pid: int) -> None:
    """The poller is alive: one UPDATE (recreating the row if someone deleted it)."""
    index, count = shard
    beaten = PollerHeartbeat.objects.filter(shard_index=index, shard_count=count).update(
        beat_at=Now(), stopped_at=None
    )
    if not beaten:
        poller_heartbeat_begin(shard=shard, host=host, pid=pid)


def poller_heartbeat_end(*, shard: tuple[int, int], host: str, pid: int) -> None:
    """A clean shutdown; a row another process has taken over since is left to it."""
    index, count = shard
    PollerHeartbeat.objects.filter(shard_index=index, shard_count=count, host=host[:255], pid=pid).update(
        beat_at=Now(), stopped_at=Now()
    )


# -- reads (every page, the cards, the API) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShardHealth:
    """One shard of the current layout, as its heartbeat tells."""

    index: int
    count: int
    ok: bool
    seconds: float | None = None  # since its last beat; None: it never reported
    stopped_at: dt.datetime | None = None  # its last beat, when it has stopped
    clean_stop: bool = False  # it shut down (rather than died or lost the database)
    host: str = ""
    pid: int | None = None
    started_at: dt.datetime | None = None
    printers: int | None = None  # enabled printers it owns; counted when it has stopped

    @property
    def name(self) -> str:
        """As `--shard` takes it: '2/3'."""
        return f"{self.index}/{self.count}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "shard": self.name,
            "ok": self.ok,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "stopped_seconds": None if self.ok or self.seconds is None else int(self.seconds),
            "clean_stop": self.clean_stop,
            "printers": self.printers,
        }


@dataclass(frozen=True, slots=True)
class PollerHealth:
    """Which printers' live status has stopped, and since when.

    The layout (N) is that of the shard that beat last, so rows of a layout the farm has
    moved away from (one poller, then three shards) don't count; a shard of the layout that
    has no row at all has never reported.
    """

    count: int  # shards in the current layout; 0 when no poller has ever reported
    shards: tuple[ShardHealth, ...] = ()  # by index

    @property
    def never_reported(self) -> bool:
        return self.count == 0

    @property
    def ok(self) -> bool:
        return self.count > 0 and all(s.ok for s in self.shards)

    @property
    def stopped(self) -> tuple[ShardHealth, ...]:
        return tuple(s for s in self.shards if not s.ok)

    @property
    def stopped_seconds(self) -> float | None:
        """Since the most recent loss: how long live status has been stopping, at least."""
        ages = [s.seconds for s in self.stopped if s.seconds is not None]
        return min(ages) if ages else None

    def is_stale(self, printer_pk: int) -> bool:
        if self.count == 0:
            return True
        return not self.shards[printer_pk % self.count].ok

    @property
    def key(self) -> str:
        """Changes exactly when the set of stale printers does: open pages compare it."""
        if self.count == 0:
            return "never"
        stopped = ",".join(str(s.index) for s in self.stopped)
        return f"stopped:{stopped}/{self.count}" if stopped else "ok"

    @property
    def lines(self) -> list[str]:
        """What the banner says; empty while every shard beats."""
        if self.count == 0:
            return ["No live status yet: no poller has reported — is the poller running?"]
        stopped = self.stopped
        if not stopped:
            return []
        seconds = self.stopped_seconds
        ago = f"stopped {format_duration(seconds)} ago" if seconds is not None else "has not started"
        if len(stopped) == len(self.shards):
            if self.count == 1:
                return [f"Live status {ago} — is the poller running?"]
            names = ", ".join(s.name for s in stopped)
            return [f"Live status {ago} (pollers {names}) — are the pollers running?"]
        lines = []
        for s in stopped:
            printers = f"{s.printers} printer{'' if s.printers == 1 else 's'}"
            if s.seconds is None:
                lines.append(
                    f"No live status for {printers}: poller {s.name} has not reported — is it running?"
                )
            else:
                lines.append(
                    f"Live status for {printers} stopped {format_duration(s.seconds)} ago "
                    f"(poller {s.name}) — is it running?"
                )
        return lines

    def as_dict(self) -> dict[str, Any]:
        """The API's `poller` object. Nothing in it moves while every shard beats, so an
        unchanged farm keeps its ETag."""
        seconds = self.stopped_seconds
        return {
            "ok": self.ok,
            "never_reported": self.never_reported,
            "stopped_seconds": None if self.ok or seconds is None else int(seconds),
            "shards": [s.as_dict() for s in self.shards],
        }


def poller_health() -> PollerHealth:
    """One query (a row per shard); a second, counting printers, only when some but not all
    shards of several have stopped."""
    rows = list(
        PollerHeartbeat.objects.annotate(db_now=Now()).values(
            "shard_index", "shard_count", "host", "pid", "started_at", "beat_at", "stopped_at", "db_now"
        )
    )
    if not rows:
        return PollerHealth(count=0)
    count = max(rows, key=lambda r: (r["beat_at"], r["started_at"]))["shard_count"]
    limit = settings.PRINTFARM_POLLER_STALE_SECONDS
    by_index = {r["shard_index"]: r for r in rows if r["shard_count"] == count}
    shards = []
    for index in range(count):
        row = by_index.get(index)
        if row is None:
            shards.append(ShardHealth(index=index, count=count, ok=False))
            continue
        seconds = max(0.0, (row["db_now"] - row["beat_at"]).total_seconds())
        ok = row["stopped_at"] is None and seconds <= limit
        shards.append(
            ShardHealth(
                index=index,
                count=count,
                ok=ok,
                seconds=seconds,
                stopped_at=None if ok else row["beat_at"],
                clean_stop=row["stopped_at"] is not None,
                host=row["host"],
                pid=row["pid"],
                started_at=row["started_at"],
            )
        )
    if count > 1 and 0 < sum(not s.ok for s in shards) < count:
        owned = dict(
            Printer.objects.enabled()
            .order_by()
            .annotate(shard=Mod("pk", count))
            .values_list("shard")
            .annotate(n=Count("pk"))
        )
        owned = {int(shard): n for shard, n in owned.items()}
        shards = [s if s.ok else dataclasses.replace(s, printers=owned.get(s.index, 0)) for s in shards]
    return PollerHealth(count=count, shards=tuple(shards))


def poller_health_context(request: Any) -> dict[str, Any]:
    """Context processor: `poller_health`, read only if the page shows it (base.html's banner)."""
    return {"poller_health": SimpleLazyObject(poller_health)}
