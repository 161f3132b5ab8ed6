"""The one way a change that open screens show (a card, the state counts) is announced.

Every writer — poller, dispatcher, web views, API, Django admin, management commands —
calls `announce()` inside the transaction that makes the change. It moves the printers'
status-row revisions (or records their removal) in that transaction, and after commit
hands the printer ids to the publisher:

* **No Redis.** Nothing more: each web process's change feed (`realtime.ChangeFeed`) reads
  revisions and removals from the database and pushes them to its own sockets.
* **REDIS_URL set.** The cards (and the wall's tiles) are rendered and sent to every web
  process through the shared channel layer. From a thread that asgiref runs for an event loop (async views,
  the poller's and dispatcher's database thread) the send is queued to one publisher task
  of that loop, so the writer never waits on Redis and pushes go out in order; from plain
  sync code (a management command) it is sent before `announce`'s caller goes on.

Both paths render the same frames (`realtime.render_pushes`), removals included.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import threading
from collections.abc import Iterable, Sequence

from asgiref.sync import SyncToAsync, async_to_sync, sync_to_async
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from printers.models import PrinterRemoval, PrinterStatusRow

logger = logging.getLogger(__name__)

# How long a removal is kept for the feed: far longer than its catch-up window.
REMOVAL_KEPT = dt.timedelta(hours=1)
SEND_TIMEOUT = 5.0  # seconds; a stalled Redis must not hold pushes (or shutdown) behind it


def announce(printer_ids: Iterable[int] = (), *, removed: Iterable[int] = (), bumped: bool = False) -> None:
    """Tell every open screen that these printers' cards changed, or that they are gone.

    Call it in the writing transaction (it joins it, or makes its own). `bumped`: the caller's
    own UPDATE already moved the revisions (the poller's batched status write).
    """
    ids = list(dict.fromkeys(int(pk) for pk in printer_ids))
    gone = list(dict.fromkeys(int(pk) for pk in removed))
    if not ids and not gone:
        return
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        if ids and not bumped:
            PrinterStatusRow.objects.filter(pk__in=ids).update(revision=F("revision") + 1, updated_at=now)
        if gone:
            PrinterRemoval.objects.filter(at__lt=now - REMOVAL_KEPT).delete()
            PrinterRemoval.objects.bulk_create([PrinterRemoval(printer_id=pk, at=now) for pk in gone])
        transaction.on_commit(lambda: _post(ids + gone), robust=True)


def uses_redis() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "REDIS_URL", ""))


def _post(printer_ids: list[int]) -> None:
    """After commit: push with Redis (the change feed needs nothing)."""
    if not uses_redis():
        return
    loop = _loop_of_this_thread()
    if loop is not None:
        _publisher(loop).post(printer_ids)
        return
    try:
        async_to_sync(_publish)(printer_ids, in_own_thread=False)
    except Exception:
        logger.warning("Could not push %d changes to dashboards", len(printer_ids), exc_info=True)


def _loop_of_this_thread() -> asyncio.AbstractEventLoop | None:
    """The running event loop whose sync_to_async worker this thread is, if any."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


async def _publish(printer_ids: Sequence[int], *, in_own_thread: bool) -> None:
    from printers.realtime import render_pushes, send_pushes

    render = _render_and_close if in_own_thread else render_pushes
    # Not thread-sensitive in the publisher: the request that announced may be gone.
    pushes = await sync_to_async(render, thread_sensitive=not in_own_thread)(list(printer_ids))
    await asyncio.wait_for(send_pushes(pushes), SEND_TIMEOUT)


def _render_and_close(printer_ids: list[int]) -> dict[str, list[str]]:
    from printers.realtime import render_pushes

    # A worker thread no request cycle cleans up after: give its connection back (to the
    # pool, or PostgreSQL) at once rather than leave one open per idle thread.
    try:
        return render_pushes(printer_ids)
    finally:
        connections.close_all()


class _Publisher:
    """One per event loop: pushes what was announced from its threads, in order, coalesced."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.pending: dict[int, None] = {}
        self.task: asyncio.Task[None] | None = None

    def post(self, printer_ids: Iterable[int]) -> None:  # any thread
        with self.lock:
            self.pending.update(dict.fromkeys(printer_ids))
        # A fresh context: the task must not inherit the request (and its executor) it came from.
        self.loop.call_soon_threadsafe(self._wake, context=contextvars.Context())

    def _wake(self) -> None:  # the loop's thread
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run(), name="printfarm-publisher")

    async def _run(self) -> None:
        while True:
            with self.lock:
                ids, self.pending = list(self.pending), {}
            if not ids:
                return
            try:
                await _publish(ids, in_own_thread=True)
            except Exception:
                logger.warning("Could not push %d changes to dashboards", len(ids), exc_info=True)

    async def drain(self, timeout: float) -> None:
        if self.task is not None and not self.task.done():
            await asyncio.wait({self.task}, timeout=timeout)


_publishers: dict[asyncio.AbstractEventLoop, _Publisher] = {}
_publishers_lock = threading.Lock()


def _publisher(loop: asyncio.AbstractEventLoop) -> _Publisher:
    with _publishers_lock:
        for stale in [lp for lp in _publishers if lp.is_closed()]:
            del _publishers[stale]
        if loop not in _publishers:
            _publishers[loop] = _Publisher(loop)
        return _publishers[loop]


async def drain(timeout: float = SEND_TIMEOUT) -> None:
    """Wait (bounded) until what this loop's threads announced has been pushed (shutdown)."""
    publisher = _publishers.get(asyncio.get_running_loop())
    if publisher is not None:
        await publisher.drain(timeout)
