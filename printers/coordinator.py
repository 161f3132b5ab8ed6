"""Polls every printer on its own schedule and records the readings that changed.

One printer's state, backoff and failure kinds are in `printers.polling`; which readings are
written, and the batched write, in `printers.status_writer`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import io
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings

from printers.drivers.base import Driver, DriverConfig, DriverError, PushDriver
from printers.drivers.http import make_client
from printers.health import beat_interval, poller_heartbeat_beat, poller_heartbeat_begin, poller_heartbeat_end
from printers.models import Printer
from printers.polling import (
    MESSAGE_MAX,
    PrinterConfig,
    PrinterPoller,
    describe_unexpected,
    is_unreachable,
    next_delay,
)
from printers.services import printer_certificate_pin
from printers.state import PrinterStatus, State
from printers.status_writer import StatusWriter, stored_readings

__all__ = ["Coordinator", "PrinterConfig", "PrinterPoller", "next_delay", "parse_shard"]

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.5  # seconds between two batched status writes
RELOAD_INTERVAL = 5.0  # seconds between two reads of the printer list
SAMPLE_INTERVAL = 30.0  # one temperature sample per printer this often (charts keep ~1 h)
SUMMARY_INTERVAL = 60.0
LAG_PROBE = 0.25  # seconds between event-loop lag probes
STOP_GRACE = 10.0  # seconds a background task gets to finish once cancelled at shutdown
_CONFIG_COLUMNS = (
    "pk",
    "name",
    "protocol",
    "base_url",
    "api_key",
    "username",
    "serial",
    "certificate_pin",
    "updated_at",
)
# A push connection that failed is reopened after 1-30 s (the Bambu apps' back-off), with jitter.
RECONNECT_MIN, RECONNECT_MAX = 1.0, 30.0


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


def _or_setting(value: float | None, name: str) -> float:
    return float(getattr(settings, name)) if value is None else value


class Coordinator:
    """Owns the polling of this process's share of the farm.

    One task per printer on a fixed-rate schedule (next poll = previous scheduled start +
    interval) with a random initial phase; a semaphore bounds requests in flight; readings
    that differ from what was last written are batched and flushed every FLUSH_INTERVAL in
    one transaction (`printers.services` announces the changes to open screens).

    Every schedule reads `clock` and waits with `sleep` (the event loop's by default): a test
    passes a fake pair and moves time itself. Request deadlines stay on real time.
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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        reload_interval: float = RELOAD_INTERVAL,
        sample_interval: float = SAMPLE_INTERVAL,
        summary_interval: float = SUMMARY_INTERVAL,
        heartbeat_interval: float | None = None,
    ) -> None:
        self.interval = float(_or_setting(interval, "PRINTFARM_POLL_INTERVAL"))
        self.concurrency = int(_or_setting(concurrency, "PRINTFARM_POLL_CONCURRENCY"))
        self.timeout = float(_or_setting(timeout, "PRINTFARM_POLL_TIMEOUT"))
        self.backoff_max = float(_or_setting(backoff_max, "PRINTFARM_BACKOFF_MAX"))
        if self.interval <= 0 or self.concurrency < 1 or self.timeout <= 0 or self.backoff_max <= 0:
            raise ValueError("interval, concurrency, timeout and backoff_max must be positive")
        self.shard = shard
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.flush_interval = flush_interval
        self.reload_interval = reload_interval
        self.sample_interval = sample_interval
        self.summary_interval = summary_interval
        self.heartbeat_interval = beat_interval() if heartbeat_interval is None else heartbeat_interval
        # httpx's timeouts are per phase (connect, each read); a printer trickling bytes, or a
        # driver making two requests (OctoPrint), is cut off by this overall deadline instead.
        self.deadline = 2 * self.timeout + 0.5
        self._owns_client = client is None
        self.client = client or make_client(
            timeout=httpx.Timeout(self.timeout), max_connections=max(self.concurrency, 512)
        )
        self._semaphore = asyncio.Semaphore(self.concurrency)

        self.printers: dict[int, PrinterPoller] = {}
        self.writer = StatusWriter(printers=self.printers, clock=clock, sample_interval=sample_interval)
        self.polls = 0
        self.errors = 0
        self.reloads = 0
        self.max_lag = 0.0  # worst event-loop lag since the last summary line
        self._firmware: dict[int, str] = {}
        self._background: list[asyncio.Task[None]] = []
        # Which process holds this shard's heartbeat row (printers.health); None until start().
        self._beat_as: dict[str, Any] | None = None
        self._next_beat = 0.0

    # -- counters, for tests, logs and benchmarks ------------------------------------------

    @property
    def writes(self) -> int:
        return self.writer.writes

    @property
    def flushes(self) -> int:
        return self.writer.flushes

    def failures(self, pk: int) -> int:
        return self.printers[pk].failures

    @property
    def pending(self) -> dict[int, PrinterStatus]:
        return self.writer.pending

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
        self.writer.next_sample = self.clock() + self.sample_interval
        await self.reload()
        self._beat_as = {"shard": self.shard, "host": socket.gethostname(), "pid": os.getpid()}
        await self._heartbeat(poller_heartbeat_begin)
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
            logger.exception("Final flush failed; %d readings not written", len(self.writer.pending))
        finally:
            if self._beat_as is not None:
                await self._heartbeat(poller_heartbeat_end)  # pages say "stopped" at once
                self._beat_as = None
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
            await self.sleep(period)
            try:
                await func()
            except Exception:
                # A database outage must not end the poller; the next round retries.
                logger.exception("%s failed; retrying in %g s", getattr(func, "__name__", func), period)

    async def _flush_forever(self) -> None:
        pause = self.flush_interval
        while True:
            await self.sleep(pause)
            started = self.clock()
            try:
                await self.flush()
            except Exception:
                logger.exception("Writing status changes failed; retrying")
            if self.clock() >= self._next_beat:
                # Beside the flushes: a poller whose writes hang stops beating, and shows so.
                await self._heartbeat(poller_heartbeat_beat)
            # Rest at least as long as the last write took: a slow database gets bigger
            # batches (one row per printer, however many readings) instead of a busy thread
            # that starves the polls of the GIL.
            pause = max(self.flush_interval, self.clock() - started)

    async def _heartbeat(self, write: Callable[..., None]) -> None:
        """Begin, beat or end this shard's heartbeat; a failure is logged, never raised."""
        self._next_beat = self.clock() + self.heartbeat_interval
        try:
            await sync_to_async(write, thread_sensitive=True)(**self._beat_as)
        except Exception as exc:
            logger.warning("Could not write the poller heartbeat (%s): %s", write.__name__, exc)

    async def _summaries(self) -> None:
        last = (self.polls, self.errors, self.writes)
        last_at = self.clock()
        while True:
            await self.sleep(self.summary_interval)
            now, current = self.clock(), (self.polls, self.errors, self.writes)
            elapsed = max(now - last_at, 1e-9)
            polls, errors, writes = (a - b for a, b in zip(current, last, strict=True))
            offline = sum(1 for p in self.printers.values() if p.failures)
            logger.info(
                "%d printers (%d failing): %d polls (%.0f/s), %d errors, %d writes in %.0f s; "
                "slowest flush %.2f s, worst loop lag %.2f s",
                len(self.printers),
                offline,
                polls,
                polls / elapsed,
                errors,
                writes,
                elapsed,
                self.writer.max_flush,
                self.max_lag,
            )
            last, last_at = current, now
            self.writer.max_flush = self.max_lag = 0.0

    async def _probe_lag(self) -> None:
        # How late a short sleep wakes up: a busy loop delays every printer's poll by this much.
        while True:
            before = self.clock()
            await self.sleep(LAG_PROBE)
            self.max_lag = max(self.max_lag, self.clock() - before - LAG_PROBE)

    # -- configuration ----------------------------------------------------------------------

    async def reload(self, *, start_tasks: bool = True) -> None:
        """Pick up printers added, edited, disabled or removed since the last reload."""
        known = frozenset(self.printers)
        rows, stored = await sync_to_async(self._read_config, thread_sensitive=True)(known)
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
                pk=pk,
                protocol=row["protocol"],
                base_url=row["base_url"],
                api_key=row["api_key"],
                username=row["username"],
                serial=row["serial"],
                certificate_pin=row["certificate_pin"],
            )
            current = self.printers.get(pk)
            if current is not None and current.config == config:
                current.name = row["name"]
                if current.edited_at != row["updated_at"]:
                    # The web may have rewritten the status row (disabled and re-enabled, say):
                    # what we last wrote is no longer what is stored, so write the next reading.
                    self.writer.rewritten(pk)
                    current.edited_at = row["updated_at"]
                continue
            if current is not None:
                to_cancel.append(current.task)
                self._firmware.pop(pk, None)  # a new address may be another printer
                logger.info("Printer %s (%s) changed; restarting its poll", pk, row["name"])
            elif pk in stored:
                status, age = stored[pk]
                self.writer.stored(pk, status, age=age)
                if status.firmware:
                    self._firmware[pk] = status.firmware
            poller = PrinterPoller(config=config, name=row["name"], edited_at=row["updated_at"])
            self.printers[pk] = poller
            if start_tasks:
                run = self._watch_forever if self._pushes(poller) else self._poll_forever
                poller.task = asyncio.create_task(run(poller), name=f"poll-printer-{pk}")
        await self._cancel(to_cancel)

    def _read_config(
        self, known: frozenset[int]
    ) -> tuple[list[dict[str, Any]], dict[int, tuple[PrinterStatus, float]]]:
        k, n = self.shard
        rows = list(Printer.objects.enabled().for_shard(k, n).order_by("pk").values(*_CONFIG_COLUMNS))
        new = [row["pk"] for row in rows if row["pk"] not in known]
        return rows, (stored_readings(new) if new else {})

    def _forget(self, pk: int) -> None:
        self.writer.forget(pk)
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
                await self.sleep(delay)
            scheduled = poller.next_at
            await self.poll(poller)
            now = self.clock()
            if poller.failures:
                poller.next_at = now + next_delay(poller.failures, self.interval, self.backoff_max, self.rng)
            else:
                # Fixed rate from the scheduled start, so event-loop lag doesn't accumulate;
                # a poll that overran its slot is followed at once, not by a burst.
                poller.next_at = max(scheduled + self._interval_of(poller), now)

    def _interval_of(self, poller: PrinterPoller) -> float:
        """The farm's interval, or longer where the printer's protocol asks for it."""
        minimum = type(poller.driver).poll_interval if poller.driver is not None else None
        return max(self.interval, minimum or 0.0)

    def driver_for(self, pk: int) -> Driver:
        """The driver of a printer this coordinator polls (KeyError if it doesn't)."""
        return self._driver(self.printers[pk])

    def _driver(self, poller: PrinterPoller) -> Driver:
        if poller.driver is None:
            from printers.drivers import get_driver

            config = poller.config
            driver_config = DriverConfig(
                base_url=config.base_url,
                api_key=config.api_key,
                username=config.username,
                serial=config.serial,
                certificate_pin=config.certificate_pin,
                on_certificate=functools.partial(self._pin_certificate, poller),
            )
            poller.driver = get_driver(config.protocol, driver_config, self.client)
        return poller.driver

    def _pushes(self, poller: PrinterPoller) -> bool:
        try:
            return isinstance(self._driver(poller), PushDriver)
        except DriverError:
            return False  # a bad address or protocol: the poll loop shows the error

    async def _pin_certificate(self, poller: PrinterPoller, digest: str) -> None:
        """A push printer's certificate seen for the first time: store its pin, and take it
        into the config we compare reloads with (else the stored pin reads as an edit)."""
        poller.config = dataclasses.replace(poller.config, certificate_pin=digest)
        await sync_to_async(printer_certificate_pin, thread_sensitive=True)(
            printer_id=poller.config.pk, digest=digest
        )
        logger.info("Printer %s (%s): pinned its certificate %s", poller.config.pk, poller.name, digest)

    async def _watch_forever(self, poller: PrinterPoller) -> None:
        """A push printer: keep its connection open, record each status it sends, and reopen
        the connection after a failure, 1-30 s later (more the longer it keeps failing)."""
        while True:
            unexpected: BaseException | None = None
            try:
                driver = self._driver(poller)
                assert isinstance(driver, PushDriver)
                async for status in driver.watch():
                    self._record(poller, status, failed=False)
                raise DriverError("The printer closed the connection")
            except DriverError as exc:
                state = State.OFFLINE if is_unreachable(exc) else State.ERROR
                status = PrinterStatus(state=state, message=(exc.message or str(exc))[:MESSAGE_MAX])
            except Exception as exc:
                unexpected = exc
                status = PrinterStatus(state=State.ERROR, message=describe_unexpected(exc)[:MESSAGE_MAX])
            self._record(poller, status, failed=True, unexpected=unexpected)
            await self.sleep(next_delay(poller.failures, RECONNECT_MIN, RECONNECT_MAX, self.rng))

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
            state = State.OFFLINE if is_unreachable(exc) else State.ERROR
            status = PrinterStatus(state=state, message=(exc.message or str(exc))[:MESSAGE_MAX])
        except TimeoutError:
            status = PrinterStatus.offline(f"No answer within {self.deadline:g} s")
        except Exception as exc:
            # A driver bug or a reply it didn't expect: show it on the card, keep polling.
            unexpected = exc
            status = PrinterStatus(state=State.ERROR, message=describe_unexpected(exc)[:MESSAGE_MAX])
        return self._record(poller, status, failed=failed, unexpected=unexpected)

    def _record(
        self,
        poller: PrinterPoller,
        status: PrinterStatus,
        *,
        failed: bool,
        unexpected: BaseException | None = None,
    ) -> PrinterStatus:
        """One reading (or failure) of a printer, polled or pushed: counters, the offline and
        recovered edges in the log, and the writer's change detection."""
        pk = poller.config.pk
        if status.firmware:
            self._firmware[pk] = status.firmware
        elif pk in self._firmware:
            status = dataclasses.replace(status, firmware=self._firmware[pk])
        if failed:
            poller.failures += 1
            self.errors += 1
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
        if not failed and status.state == State.ERROR:
            poller.error, poller.error_poll = status, poller.polls
        self.polls += 1
        self.writer.record(pk, status)
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

    # -- writing ----------------------------------------------------------------------------

    async def flush(self, *, sample: bool | None = None) -> list[int]:
        """Write the pending readings (and a temperature sample when due) in one DB call."""
        return await self.writer.flush(sample=sample)
