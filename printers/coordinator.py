"""Polls every printer on its own schedule and records the readings that changed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import io
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from printers.drivers.base import Driver, DriverConfig, DriverError
from printers.drivers.http import make_client
from printers.models import Printer, PrinterStatusRow
from printers.services import (
    HEARTBEAT,
    STATUS_FIELDS,
    printer_status_apply,
    printer_status_changes,
    temperature_samples_record,
)
from printers.state import PrinterStatus, State

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5  # seconds between two batched status writes
RELOAD_INTERVAL = 5.0  # seconds between two reads of the printer list
SAMPLE_INTERVAL = 30.0  # one temperature sample per printer this often (charts keep ~1 h)
SUMMARY_INTERVAL = 60.0
LAG_PROBE = 0.25  # seconds between event-loop lag probes
SLOW_FLUSH = 1.0  # seconds; a flush slower than this is logged: the database is the bottleneck
STOP_GRACE = 10.0  # seconds a background task gets to finish once cancelled at shutdown
JITTER = 0.1  # +-10 % on backoff delays, so printers that died together don't retry together
MESSAGE_MAX = 500  # PrinterStatusRow.message
# The service refreshes last_seen only when the stored one is at least HEARTBEAT old; resend
# an unchanged reading a little later than that so the refresh is never skipped by clock skew.
HEARTBEAT_SECONDS = HEARTBEAT.total_seconds() + 1.0
# Causes that mean "could not reach the printer" (shown as offline) rather than "it answered
# badly" (shown as error). Drivers chain them: `raise DriverError(...) from exc`.
_UNREACHABLE = (httpx.TransportError, aiohttp.ClientConnectionError, OSError, TimeoutError)


def next_delay(failures: int, interval: float, backoff_max: float, rng: random.Random) -> float:
    """Seconds to wait before the next poll after `failures` consecutive failed polls.

    0 failures is the normal interval; the Nth failure waits interval * 2**N with +-10 %
    jitter, never more than backoff_max and never less than the interval.
    """
    if failures <= 0:
        return interval
    base = min(backoff_max, interval * 2.0 ** min(failures, 32))
    return max(interval, min(backoff_max, base * rng.uniform(1 - JITTER, 1 + JITTER)))


def parse_shard(text: str) -> tuple[int, int]:
    """ "K/N" -> (K, N), 0 <= K < N: this poller owns the printers whose id % N == K."""
    index, sep, count = text.partition("/")
    try:
        k, n = int(index), int(count)
    except ValueError:
        k = n = -1
    if not sep or n < 1 or not 0 <= k < n:
        raise ValueError(f"shard must be K/N with 0 <= K < N (e.g. 0/2 and 1/2), not {text!r}")
    return k, n


@dataclass(frozen=True, slots=True)
class PrinterConfig:
    """What the poller needs to reach one printer; a change restarts its task."""

    pk: int
    protocol: str
    base_url: str
    api_key: str = ""


@dataclass(eq=False)
class PrinterPoller:
    """Run-time state of one printer's polling."""

    config: PrinterConfig
    name: str = ""
    edited_at: dt.datetime | None = None  # Printer.updated_at when last read
    task: asyncio.Task[None] | None = None
    driver: Driver | None = None
    polls: int = 0
    failures: int = 0  # consecutive failed polls; 0 while healthy
    last: PrinterStatus | None = None
    next_at: float = 0.0  # clock() time of the next poll


@dataclass
class _Counters:
    polls: int = 0
    errors: int = 0
    writes: int = 0


def _or_setting(value: float | None, name: str) -> float:
    return float(getattr(settings, name)) if value is None else value


def _status_from_row(row: PrinterStatusRow) -> PrinterStatus:
    values: dict[str, Any] = {name: getattr(row, name) for name in STATUS_FIELDS}
    values["state"] = State(row.state)
    return PrinterStatus(**values)


def _is_unreachable(exc: DriverError) -> bool:
    """Did this failure come from the transport (refused, reset, timed out) rather than a reply?"""
    if exc.permanent:
        return False  # a bad address or a refused key: the printer needs an operator, show ERROR
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, _UNREACHABLE):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    return False


def _describe_unexpected(exc: BaseException) -> str:
    detail = str(exc)
    return f"Unexpected {type(exc).__name__}: {detail}" if detail else f"Unexpected {type(exc).__name__}"


class Coordinator:
    """Owns the polling of this process's share of the farm.

    One task per printer on a fixed-rate schedule (next poll = previous scheduled start +
    interval) with a random initial phase; a semaphore bounds requests in flight; readings
    that differ from what was last written are batched and flushed every FLUSH_INTERVAL in
    one transaction, then pushed to dashboards.
    """

    def __init__(
        self,
        *,
        interval: float | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        backoff_max: float | None = None,
        shard: tuple[int, int] = (0, 1),
        clock: Callable[[], float] = time.monotonic,
        client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        reload_interval: float = RELOAD_INTERVAL,
        sample_interval: float = SAMPLE_INTERVAL,
        summary_interval: float = SUMMARY_INTERVAL,
    ) -> None:
        self.interval = float(_or_setting(interval, "PRINTFARM_POLL_INTERVAL"))
        self.concurrency = int(_or_setting(concurrency, "PRINTFARM_POLL_CONCURRENCY"))
        self.timeout = float(_or_setting(timeout, "PRINTFARM_POLL_TIMEOUT"))
        self.backoff_max = float(_or_setting(backoff_max, "PRINTFARM_BACKOFF_MAX"))
        if self.interval <= 0 or self.concurrency < 1 or self.timeout <= 0 or self.backoff_max <= 0:
            raise ValueError("interval, concurrency, timeout and backoff_max must be positive")
        self.shard = shard
        self.clock = clock
        self.rng = rng or random.Random()
        self.flush_interval = flush_interval
        self.reload_interval = reload_interval
        self.sample_interval = sample_interval
        self.summary_interval = summary_interval
        # httpx's timeouts are per phase (connect, each read); a printer trickling bytes, or a
        # driver making two requests (OctoPrint), is cut off by this overall deadline instead.
        self.deadline = 2 * self.timeout + 0.5
        self._owns_client = client is None
        self.client = client or make_client(
            timeout=httpx.Timeout(self.timeout), max_connections=max(self.concurrency, 512)
        )
        self._semaphore = asyncio.Semaphore(self.concurrency)

        self.printers: dict[int, PrinterPoller] = {}
        self.counters = _Counters()
        self.flushes = 0  # database round trips made by flush()
        self.reloads = 0
        # Worst event-loop lag and flush time since the last summary line.
        self.max_lag = 0.0
        self.max_flush = 0.0
        self._written: dict[int, PrinterStatus] = {}  # last reading written (or loaded) per printer
        self._written_at: dict[int, float] = {}
        self._pending: dict[int, PrinterStatus] = {}  # readings waiting for the next flush
        self._firmware: dict[int, str] = {}
        self._next_sample = 0.0
        self._background: list[asyncio.Task[None]] = []
        self._flush_lock = asyncio.Lock()

    # -- counters, for tests, logs and benchmarks ------------------------------------------

    @property
    def polls(self) -> int:
        return self.counters.polls

    @property
    def errors(self) -> int:
        return self.counters.errors

    @property
    def writes(self) -> int:
        return self.counters.writes

    def failures(self, pk: int) -> int:
        return self.printers[pk].failures

    @property
    def pending(self) -> dict[int, PrinterStatus]:
        return dict(self._pending)

    # -- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Coordinator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set, then drain: stop the printer tasks, flush, close."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.aclose()

    async def start(self) -> None:
        self._next_sample = self.clock() + self.sample_interval
        await self.reload()
        k, n = self.shard
        logger.info(
            "Polling %d printers (shard %d/%d) every %g s, %d at a time, timeout %g s",
            len(self.printers),
            k,
            n,
            self.interval,
            self.concurrency,
            self.timeout,
        )
        self._background = [
            asyncio.create_task(self._flush_forever(), name="poller-flush"),
            asyncio.create_task(self._every(self.reload_interval, self.reload), name="poller-reload"),
            asyncio.create_task(self._summaries(), name="poller-summary"),
            asyncio.create_task(self._probe_lag(), name="poller-lag"),
        ]

    async def aclose(self) -> None:
        background, self._background = self._background, []
        await self._cancel(background)
        await self._cancel([p.task for p in self.printers.values()])
        try:
            await self.flush()
        except Exception:
            logger.exception("Final flush failed; %d readings not written", len(self._pending))
        finally:
            if self._owns_client:
                await self.client.aclose()
        logger.info(
            "Stopped polling %d printers: %d polls, %d errors, %d writes in all",
            len(self.printers),
            self.polls,
            self.errors,
            self.writes,
        )

    async def run_once(self) -> None:
        """Poll every printer once (concurrently, bounded), write what changed, close."""
        try:
            await self.reload(start_tasks=False)
            await asyncio.gather(*(self.poll(p) for p in list(self.printers.values())))
            await self.flush(sample=True)
        finally:
            if self._owns_client:
                await self.client.aclose()

    async def _every(self, period: float, func: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await func()
            except Exception:
                # A database outage must not end the poller; the next round retries.
                logger.exception("%s failed; retrying in %g s", getattr(func, "__name__", func), period)

    async def _flush_forever(self) -> None:
        pause = self.flush_interval
        while True:
            await asyncio.sleep(pause)
            started = self.clock()
            try:
                await self.flush()
            except Exception:
                logger.exception("Writing status changes failed; retrying")
            # Rest at least as long as the last write took: a slow database gets bigger
            # batches (one row per printer, however many readings) instead of a busy thread
            # that starves the polls of the GIL.
            pause = max(self.flush_interval, self.clock() - started)

    async def _summaries(self) -> None:
        last = dataclasses.replace(self.counters)
        last_at = self.clock()
        while True:
            await asyncio.sleep(self.summary_interval)
            now, current = self.clock(), dataclasses.replace(self.counters)
            elapsed = max(now - last_at, 1e-9)
            offline = sum(1 for p in self.printers.values() if p.failures)
            logger.info(
                "%d printers (%d failing): %d polls (%.0f/s), %d errors, %d writes in %.0f s; "
                "slowest flush %.2f s, worst loop lag %.2f s",
                len(self.printers),
                offline,
                current.polls - last.polls,
                (current.polls - last.polls) / elapsed,
                current.errors - last.errors,
                current.writes - last.writes,
                elapsed,
                self.max_flush,
                self.max_lag,
            )
            last, last_at = current, now
            self.max_flush = self.max_lag = 0.0

    async def _probe_lag(self) -> None:
        # How late a short sleep wakes up: a busy loop delays every printer's poll by this much.
        while True:
            before = self.clock()
            await asyncio.sleep(LAG_PROBE)
            self.max_lag = max(self.max_lag, self.clock() - before - LAG_PROBE)

    # -- configuration ----------------------------------------------------------------------

    async def reload(self, *, start_tasks: bool = True) -> None:
        """Pick up printers added, edited, disabled or removed since the last reload."""
        known = frozenset(self.printers)
        rows, statuses = await sync_to_async(self._read_config, thread_sensitive=True)(known)
        self.reloads += 1
        wanted = {row["pk"]: row for row in rows}
        to_cancel: list[asyncio.Task[None] | None] = []
        for pk in [pk for pk in self.printers if pk not in wanted]:
            poller = self.printers.pop(pk)
            to_cancel.append(poller.task)
            self._forget(pk)
            logger.info("Stopped polling printer %s (%s): removed or disabled", pk, poller.name)
        for pk, row in wanted.items():
            config = PrinterConfig(
                pk=pk, protocol=row["protocol"], base_url=row["base_url"], api_key=row["api_key"]
            )
            current = self.printers.get(pk)
            if current is not None and current.config == config:
                current.name = row["name"]
                if current.edited_at != row["updated_at"]:
                    # The web may have rewritten the status row (disabled and re-enabled, say):
                    # what we last wrote is no longer what is stored, so write the next reading.
                    self._written.pop(pk, None)
                    self._written_at.pop(pk, None)
                    current.edited_at = row["updated_at"]
                continue
            if current is not None:
                to_cancel.append(current.task)
                self._firmware.pop(pk, None)  # a new address may be another printer
                logger.info("Printer %s (%s) changed; restarting its poll", pk, row["name"])
            elif pk in statuses:
                self._written[pk] = statuses[pk][0]
                self._written_at[pk] = self.clock() - statuses[pk][1]
                if statuses[pk][0].firmware:
                    self._firmware[pk] = statuses[pk][0].firmware
            poller = PrinterPoller(config=config, name=row["name"], edited_at=row["updated_at"])
            self.printers[pk] = poller
            if start_tasks:
                poller.task = asyncio.create_task(self._poll_forever(poller), name=f"poll-printer-{pk}")
        await self._cancel(to_cancel)

    def _read_config(
        self, known: frozenset[int]
    ) -> tuple[list[dict[str, Any]], dict[int, tuple[PrinterStatus, float]]]:
        k, n = self.shard
        rows = list(
            Printer.objects.enabled()
            .for_shard(k, n)
            .order_by("pk")
            .values("pk", "name", "protocol", "base_url", "api_key", "updated_at")
        )
        new = [row["pk"] for row in rows if row["pk"] not in known]
        statuses: dict[int, tuple[PrinterStatus, float]] = {}
        if new:
            # What is already stored, so a restart (or a re-enabled printer) doesn't rewrite
            # every row with the same values; the float is the age of its last_seen.
            now = timezone.now()
            for row in PrinterStatusRow.objects.filter(pk__in=new):
                age = (now - row.last_seen).total_seconds() if row.last_seen else math.inf
                statuses[row.pk] = (_status_from_row(row), age)
        return rows, statuses

    def _forget(self, pk: int) -> None:
        self._pending.pop(pk, None)
        self._written.pop(pk, None)
        self._written_at.pop(pk, None)
        self._firmware.pop(pk, None)

    async def _cancel(self, tasks: Iterable[asyncio.Task[None] | None]) -> None:
        running = [t for t in tasks if t is not None]
        for task in running:
            task.cancel()
        if not running:
            return
        # Bounded: shutdown must end even if a task ignores its cancellation; say where it hung.
        _, stuck = await asyncio.wait(running, timeout=STOP_GRACE)
        for task in stuck:
            where = io.StringIO()
            task.print_stack(file=where)
            logger.error("Task %s did not stop in %g s:\n%s", task.get_name(), STOP_GRACE, where.getvalue())

    # -- polling ----------------------------------------------------------------------------

    async def _poll_forever(self, poller: PrinterPoller) -> None:
        # A random phase spreads the farm over the interval instead of firing it at once.
        poller.next_at = self.clock() + self.rng.uniform(0, self.interval)
        while True:
            delay = poller.next_at - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            scheduled = poller.next_at
            await self.poll(poller)
            now = self.clock()
            if poller.failures:
                poller.next_at = now + next_delay(poller.failures, self.interval, self.backoff_max, self.rng)
            else:
                # Fixed rate from the scheduled start, so event-loop lag doesn't accumulate;
                # a poll that overran its slot is followed at once, not by a burst.
                poller.next_at = max(scheduled + self.interval, now)

    def driver_for(self, pk: int) -> Driver:
        """The driver of a printer this coordinator polls (KeyError if it doesn't)."""
        return self._driver(self.printers[pk])

    def _driver(self, poller: PrinterPoller) -> Driver:
        if poller.driver is None:
            from printers.drivers import get_driver

            config = poller.config
            poller.driver = get_driver(
                config.protocol, DriverConfig(base_url=config.base_url, api_key=config.api_key), self.client
            )
        return poller.driver

    async def poll(self, poller: PrinterPoller) -> PrinterStatus:
        """One reading of one printer; never raises (except cancellation)."""
        config = poller.config
        failed = True
        unexpected: BaseException | None = None
        try:
            driver = self._driver(poller)
            async with self._semaphore, asyncio.timeout(self.deadline):
                status = await driver.fetch_status()
            failed = False
            if config.pk not in self._firmware:
                await self._learn_firmware(config.pk, driver)
        except DriverError as exc:
            state = State.OFFLINE if _is_unreachable(exc) else State.ERROR
            status = PrinterStatus(state=state, message=(exc.message or str(exc))[:MESSAGE_MAX])
        except TimeoutError:
            status = PrinterStatus.offline(f"No answer within {self.deadline:g} s")
        except Exception as exc:
            # A driver bug or a reply it didn't expect: show it on the card, keep polling.
            unexpected = exc
            status = PrinterStatus(state=State.ERROR, message=_describe_unexpected(exc)[:MESSAGE_MAX])
        pk = config.pk
        if status.firmware:
            self._firmware[pk] = status.firmware
        elif pk in self._firmware:
            status = dataclasses.replace(status, firmware=self._firmware[pk])
        if failed:
            poller.failures += 1
            self.counters.errors += 1
            if poller.failures == 1:
                if status.state == State.OFFLINE:
                    logger.warning("Printer %s (%s) went offline: %s", pk, poller.name, status.message)
                else:
                    logger.warning(
                        "Printer %s (%s) is failing: %s", pk, poller.name, status.message, exc_info=unexpected
                    )
        elif poller.failures:
            logger.info(
                "Printer %s (%s) recovered after %d failed polls: %s",
                pk,
                poller.name,
                poller.failures,
                status.state.value,
            )
            poller.failures = 0
        poller.polls += 1
        poller.last = status
        self.counters.polls += 1
        self._record(pk, status)
        return status

    async def _learn_firmware(self, pk: int, driver: Driver) -> None:
        """Status replies don't name the firmware: probe once per printer (and again only after
        a restart that finds none stored), so the detail page can show it."""
        self._firmware[pk] = ""  # also on failure: one try, not one per poll
        try:
            async with self._semaphore, asyncio.timeout(self.deadline):
                self._firmware[pk] = (await driver.probe()).firmware
        except (DriverError, TimeoutError) as exc:
            logger.info("Could not identify printer %s's firmware: %s", pk, exc)

    def _record(self, pk: int, status: PrinterStatus) -> None:
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

    # -- writing ----------------------------------------------------------------------------

    async def flush(self, *, sample: bool | None = None) -> list[int]:
        """Write the pending readings (and a temperature sample when due) in one DB call."""
        async with self._flush_lock:
            now = self.clock()
            if sample is None:
                sample = now >= self._next_sample
            samples: list[tuple[int, PrinterStatus]] = []
            if sample:
                self._next_sample = now + self.sample_interval
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
                written = await sync_to_async(_write, thread_sensitive=True)(list(batch.items()), samples)
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
            self.counters.writes += len(written)
        if written:
            from printers.realtime import apublish_within

            try:
                await apublish_within(written)
            except Exception:
                logger.exception("Could not push %d status changes to dashboards", len(written))
        return written


def _write(
    readings: Sequence[tuple[int, PrinterStatus]],
    samples: Sequence[tuple[int, PrinterStatus]],
) -> list[int]:
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
