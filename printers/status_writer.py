"""The poller's writes: which readings are worth writing, and one batched write of them.

Readings that differ from what was last written (or that refresh `last_seen`) wait in
`pending`; the coordinator flushes them every FLUSH_INTERVAL in one transaction, with a
temperature sample per printer when one is due. `printers.services` announces what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from printers.models import Printer, PrinterStatusRow
from printers.polling import PrinterPoller
from printers.services import (
    HEARTBEAT,
    STATUS_FIELDS,
    printer_status_apply,
    printer_status_changes,
    temperature_samples_record,
)
from printers.state import PrinterStatus, State
from printers.trays import stored_trays

logger = logging.getLogger(__name__)

SLOW_FLUSH = 1.0  # seconds; a flush slower than this is logged: the database is the bottleneck
# The service refreshes last_seen only when the stored one is at least HEARTBEAT old; resend
# an unchanged reading a little later than that so the refresh is never skipped by clock skew.
HEARTBEAT_SECONDS = HEARTBEAT.total_seconds() + 1.0


class StatusWriter:
    """What the poller last wrote per printer, what waits to be written, and the write.

    `printers` is the coordinator's own map of the printers it polls (read, never changed
    here): a printer removed while its reading was in flight or being written is skipped.
    """

    def __init__(
        self, *, printers: Mapping[int, PrinterPoller], clock: Callable[[], float], sample_interval: float
    ) -> None:
        self.printers = printers
        self.clock = clock
        self.sample_interval = sample_interval
        self.next_sample = 0.0  # clock() time of the next temperature sample
        self.flushes = 0  # database round trips made by flush()
        self.writes = 0  # status rows written
        self.max_flush = 0.0  # slowest flush since the coordinator's last summary line
        self._written: dict[int, PrinterStatus] = {}  # last reading written (or loaded) per printer
        self._written_at: dict[int, float] = {}
        self._pending: dict[int, PrinterStatus] = {}  # readings waiting for the next flush
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> dict[int, PrinterStatus]:
        return dict(self._pending)

    def record(self, pk: int, status: PrinterStatus) -> None:
        """A new reading: keep it for the next flush if it changes what is stored."""
        if pk not in self.printers:
            return  # removed while its request was in flight
        written = self._written.get(pk)
        if status != written or (
            status.state != State.OFFLINE
            and self.clock() - self._written_at.get(pk, -math.inf) >= HEARTBEAT_SECONDS
        ):
            self._pending[pk] = status
        else:
            # Back to what is stored before the flush came round: nothing to write.
            self._pending.pop(pk, None)

    def stored(self, pk: int, status: PrinterStatus, *, age: float) -> None:
        """What the database already holds for a printer, its last_seen `age` seconds old."""
        self._written[pk] = status
        self._written_at[pk] = self.clock() - age

    def rewritten(self, pk: int) -> None:
        """Someone else rewrote the printer's row: what we last wrote is no longer stored."""
        self._written.pop(pk, None)
        self._written_at.pop(pk, None)

    def forget(self, pk: int) -> None:
        """The printer is no longer polled here."""
        self._pending.pop(pk, None)
        self.rewritten(pk)

    async def flush(self, *, sample: bool | None = None) -> list[int]:
        """Write the pending readings (and a temperature sample when due) in one DB call."""
        async with self._lock:
            now = self.clock()
            if sample is None:
                sample = now >= self.next_sample
            samples: list[tuple[int, PrinterStatus]] = []
            if sample:
                self.next_sample = now + self.sample_interval
                samples = [
                    (pk, p.last)
                    for pk, p in self.printers.items()
                    if p.last is not None
                    and p.last.state != State.OFFLINE
                    and (p.last.hotend_actual is not None or p.last.bed_actual is not None)
                ]
            if not self._pending and not samples:
                return []
            batch, self._pending = self._pending, {}
            try:
                written = await sync_to_async(status_write, thread_sensitive=True)(
                    list(batch.items()), samples
                )
            except BaseException:  # also cancellation at shutdown: the final flush retries it
                for pk, status in batch.items():
                    self._pending.setdefault(pk, status)  # a newer reading wins
                raise
            finally:
                self.flushes += 1
            done = self.clock()
            took = done - now
            self.max_flush = max(self.max_flush, took)
            if took > SLOW_FLUSH:
                logger.warning(
                    "Writing %d status changes and %d temperature samples took %.1f s",
                    len(batch),
                    len(samples),
                    took,
                )
            for pk, status in batch.items():
                if pk in self.printers:
                    self._written[pk] = status
                    self._written_at[pk] = done
            self.writes += len(written)
        return written


def status_write(
    readings: Sequence[tuple[int, PrinterStatus]],
    samples: Sequence[tuple[int, PrinterStatus]],
) -> list[int]:
    """Record readings and temperature samples; the ids of the printers whose row changed."""
    try:
        written: list[int] = []
        # Worked out before the write transaction, which then only runs three statements: on
        # SQLite every web write waits while it holds the lock, and Python work under the lock
        # was stretched by the event loop's share of the GIL (1-3 s per flush, issue 7).
        changes = printer_status_changes(readings=readings) if readings else None
        if changes is not None and changes.printer_ids:
            with transaction.atomic():
                # Under the write lock (SQLite IMMEDIATE, Postgres row updates): a printer
                # disabled (or removed) since its reading was taken keeps what the web wrote.
                enabled = set(
                    Printer.objects.filter(pk__in=changes.printer_ids, enabled=True).values_list(
                        "pk", flat=True
                    )
                )
                written = printer_status_apply(changes=changes.only(enabled))
        if samples:
            # Its own transaction: a failed sample must not undo (or hide) the status writes.
            try:
                temperature_samples_record(samples=samples)
            except DatabaseError:
                logger.exception("Could not record %d temperature samples", len(samples))
        return written
    except DatabaseError:
        # Reconnect on the next flush (server restarted, file replaced, connection broken).
        with contextlib.suppress(DatabaseError):
            connection.close()
        raise


def stored_readings(pks: Sequence[int]) -> dict[int, tuple[PrinterStatus, float]]:
    """What is stored for these printers, each with the age of its last_seen in seconds, so a
    restarted poller (or a re-enabled printer) doesn't rewrite every row with the same values."""
    now = timezone.now()
    found: dict[int, tuple[PrinterStatus, float]] = {}
    for row in PrinterStatusRow.objects.filter(pk__in=pks):
        age = (now - row.last_seen).total_seconds() if row.last_seen else math.inf
        found[row.pk] = (_status_from_row(row), age)
    return found


def _status_from_row(row: PrinterStatusRow) -> PrinterStatus:
    values: dict[str, Any] = {name: getattr(row, name) for name in STATUS_FIELDS}
    values["state"] = State(row.state)
    values["trays"] = stored_trays(row.trays)
    return PrinterStatus(**values)
