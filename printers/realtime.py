"""Live dashboard updates: render changed printer cards and push them to every open socket.

What the browser receives is always HTML rendered from the `printer-card` partial of
`printers/dashboard.html` (the wall's sockets: its `wall-tile` partial), plus the
`state-counts` block, marked `hx-swap-oob="true"`; static/js/farm.js swaps exactly the cards
that changed, by id, in the grid and the wall alike. Each view has its own group (`GROUPS`),
so a wall of 1,000 tiles is never sent forms it does not show.

Writers announce changes through `printers.changes.announce()`, the only way; how they then
reach the sockets — exactly one mechanism per configuration:

* **No Redis (the default, one box, SQLite).** The channel layer is in-memory, i.e. private
  to one process, and the poller is another process: it cannot reach our sockets. So each
  web process runs a *change feed*: one asyncio task per process (per event loop), started
  by the first `FarmConsumer` that connects and stopped when the last one leaves. Every
  `PRINTFARM_FEED_INTERVAL` seconds it reads `(printer_id, revision, updated_at)` of status
  rows with `updated_at >= cursor - 2 s` (indexed column; the overlap catches a poller
  transaction that committed late with an earlier timestamp) and the printers removed since
  (`PrinterRemoval`), drops what it already pushed, renders the rest for the views that have
  sockets and `group_send`s them through the in-memory layer. Cost without sockets: nothing;
  with sockets and a quiet farm: two small indexed queries per interval per web process.
* **REDIS_URL set.** The layer is shared by all processes, so `announce()` itself renders
  (both views) and sends after commit, whichever process wrote; the web processes just
  forward. The feed is not started (it would push every change a second time).

Both send the frames of `render_pushes`: changed cards, removed cards, the state counts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connections
from django.template.loader import get_template
from django.utils import timezone

from printers.cards import render_card
from printers.changes import uses_redis
from printers.models import Printer, PrinterRemoval, PrinterStatusRow
from printers.presenters import beds_waiting_count, cards_for, state_counts

logger = logging.getLogger(__name__)

GROUP = "farm"
# What each view's sockets are sent, and through which group: cards, or the wall's tiles.
VIEWS = ("cards", "wall")
GROUPS = {"cards": GROUP, "wall": "farm-wall"}
MESSAGE_TYPE = "cards.html"  # -> FarmConsumer.cards_html
COUNTS_TEMPLATE = "printers/dashboard.html#state-counts"
FEED_OVERLAP = dt.timedelta(seconds=2)
CATCH_UP_LIMIT = dt.timedelta(minutes=1)  # how old a page's cards may be for its socket to catch up
# Cards per websocket message: a farm-wide change (poller restart) becomes several
# moderate frames instead of one multi-megabyte one.
CHUNK = 100


def render_cards(printer_ids: Iterable[int], *, wall: bool = False) -> str:
    """The printer-card (or wall-tile) partial for each printer, marked for an out-of-band
    swap (one query per kind of row). A printer that no longer exists gets an oob delete, so
    its card leaves open pages."""
    view = "wall" if wall else "cards"
    return render_views(list(dict.fromkeys(printer_ids)), (view,))[view]


def render_views(ids: list[int], views: Sequence[str]) -> dict[str, str]:
    """Each view's oob HTML for these printers, from one set of cards."""
    if not ids:
        return dict.fromkeys(views, "")
    cards = cards_for(Printer.objects.for_cards().filter(pk__in=ids))
    found = {card.pk for card in cards}
    gone = "".join(
        f'<div id="printer-card-{pk}" hx-swap-oob="delete"></div>' for pk in ids if pk not in found
    )
    return {
        view: "".join(render_card(card, wall=view == "wall", oob=True) for card in cards) + gone
        for view in views
    }


def render_state_counts() -> str:
    counts, total = state_counts()
    context = {"counts": counts, "total": total, "beds": beds_waiting_count(), "oob": True}
    return get_template(COUNTS_TEMPLATE).render(context)


def render_pushes(printer_ids: Sequence[int], views: Sequence[str] = VIEWS) -> dict[str, list[str]]:
    """Each view's websocket frames announcing these changes: cards in chunks, counts in the last."""
    ids = list(dict.fromkeys(printer_ids))
    frames: dict[str, list[str]] = {view: [] for view in views}
    for i in range(0, len(ids), CHUNK):
        for view, html in render_views(ids[i : i + CHUNK], views).items():
            frames[view].append(html)
    counts = render_state_counts()
    for view_frames in frames.values():
        if not view_frames:
            view_frames.append("")
        view_frames[-1] += counts
    return frames


def render_push(printer_ids: Sequence[int], *, wall: bool = False) -> list[str]:
    """One view's frames (see render_pushes)."""
    view = "wall" if wall else "cards"
    return render_pushes(printer_ids, (view,))[view]


async def group_send(frames: Sequence[str], group: str = GROUP) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for html in frames:
        await layer.group_send(group, {"type": MESSAGE_TYPE, "html": html})


async def send_pushes(pushes: dict[str, list[str]]) -> None:
    for view, frames in pushes.items():
        await group_send(frames, GROUPS[view])


def socket_url(view: str = "cards") -> str:
    """The page's /ws/farm/ address, naming its view and when its cards were read: call it
    before reading them. The socket first sends what changed since (`catch_up`), which the
    feed, if already running for other sockets, no longer has in its window."""
    query = {"since": f"{timezone.now().timestamp():.3f}"}
    if view != "cards":
        query = {"view": view, **query}
    return "/ws/farm/?" + urlencode(query)


def view_of(query_string: bytes) -> str:
    """The view a socket asks for (`/ws/farm/?view=wall`); cards unless it names another."""
    view = parse_qs(query_string.decode("latin-1")).get("view", ["cards"])[0]
    return view if view in VIEWS else "cards"


def since_of(query_string: bytes) -> dt.datetime | None:
    """When the socket's page read its cards, if it says and that was lately (a page reopening
    its socket much later re-reads its grid instead: static/js/farm.js)."""
    try:
        moment = float(parse_qs(query_string.decode("latin-1")).get("since", [""])[0])
        since = dt.datetime.fromtimestamp(moment, tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return since if timezone.now() - CATCH_UP_LIMIT <= since <= timezone.now() else None


def catch_up(since: dt.datetime, view: str) -> list[str]:
    """The frames a new socket needs: the cards changed (or removed) since its page read them."""
    since -= FEED_OVERLAP  # a write that committed late carries an earlier time
    rows = PrinterStatusRow.objects.filter(updated_at__gte=since)
    changed = [*rows.values_list("printer_id", flat=True)]
    changed += PrinterRemoval.objects.filter(at__gte=since).values_list("printer_id", flat=True)
    return render_pushes(changed, (view,))[view] if changed else []


# -- the change feed (no Redis) --------------------------------------------------------------


class ChangeFeed:
    """Polls status rows for changes and pushes them to this process's sockets."""

    def __init__(self) -> None:
        self.subscribers = 0
        self.views: Counter[str] = Counter()  # sockets per view: only those views are rendered
        self.task: asyncio.Task[None] | None = None
        self.cursor: dt.datetime = timezone.now()
        self.sent: dict[int, int] = {}  # printer_id -> revision already pushed (-1: its removal)
        # Its own thread, not the one every sync view of this process shares under daphne:
        # rendering a busy farm's cards each second must not queue page loads behind it.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="printfarm-feed")

    def subscribe(self, view: str = "cards") -> None:
        self.subscribers += 1
        self.views[view] += 1
        if self.task is None or self.task.done():
            self.cursor = timezone.now()
            self.task = asyncio.create_task(self._run(), name="printfarm-change-feed")

    def unsubscribe(self, view: str = "cards") -> None:
        self.subscribers = max(0, self.subscribers - 1)
        self.views[view] = max(0, self.views[view] - 1)
        if self.subscribers == 0 and self.task is not None:
            self.task.cancel()
            self.task = None
            self.executor.submit(connections.close_all)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(settings.PRINTFARM_FEED_INTERVAL)
            try:
                pushes = await sync_to_async(self._tick, thread_sensitive=False, executor=self.executor)()
                if pushes:
                    await send_pushes(pushes)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A locked database or a render bug costs one tick, not the live view.
                logger.exception("Change feed tick failed")

    def _tick(self) -> dict[str, list[str]]:
        # No request cycle closes the feed thread's connection: drop a broken or expired one.
        close_old_connections()
        return self.poll()

    def poll(self) -> dict[str, list[str]]:
        """One tick: each watched view's frames to push (empty when nothing changed). Runs in
        a thread."""
        since = self.cursor - FEED_OVERLAP
        rows = list(
            PrinterStatusRow.objects.filter(updated_at__gte=since)
            .order_by()
            .values_list("printer_id", "revision", "updated_at")
        )
        rows += [
            (pk, REMOVED, at)
            for pk, at in PrinterRemoval.objects.filter(at__gte=since)
            .order_by()
            .values_list("printer_id", "at")
        ]
        changed = [pk for pk, revision, _ in rows if self.sent.get(pk) != revision]
        # Render first: if it raises, the same changes are found again on the next tick.
        views = [view for view in VIEWS if self.views[view]] or ["cards"]
        pushes = render_pushes(changed, views) if changed else {}
        if rows:
            self.cursor = max(self.cursor, max(updated for _, _, updated in rows))
        self.sent.update((pk, revision) for pk, revision, _ in rows)
        return pushes


REMOVED = -1  # the revision the feed files a removed printer under


# One feed per event loop: daphne has one; tests and async_to_sync create others.
_feeds: dict[asyncio.AbstractEventLoop, ChangeFeed] = {}


def _feed() -> ChangeFeed:
    loop = asyncio.get_running_loop()
    for stale in [lp for lp in _feeds if lp.is_closed()]:
        del _feeds[stale]
    return _feeds.setdefault(loop, ChangeFeed())


def feed_subscribe(view: str = "cards") -> bool:
    """A socket joined a view's group; True if it now keeps this process's feed running."""
    if uses_redis():
        return False
    _feed().subscribe(view)
    return True


def feed_unsubscribe(view: str = "cards") -> None:
    """The inverse of a feed_subscribe() that returned True."""
    feed = _feeds.get(asyncio.get_running_loop())
    if feed is not None:
        feed.unsubscribe(view)
