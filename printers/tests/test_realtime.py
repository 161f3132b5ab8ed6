"""The farm websocket: who may connect, and how status changes reach it in each mode."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from printers import changes, realtime
from printers.models import PrinterStatusRow
from printers.services import printer_delete, printer_status_record_many
from printers.state import PrinterStatus, State
from printers.tests.factories import PrinterFactory, UserFactory, set_status
from printfarm.asgi import application
from printfarm.testing import redis_channel_layer

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
async def close_thread_connections():
    """The feed queries from sync_to_async's worker thread; close that thread's connection so
    PostgreSQL can drop the test database afterwards."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def feed_mode(settings):
    """The default one-box setup: no Redis, in-memory layer, the change feed (ticking fast)."""
    settings.REDIS_URL = ""
    settings.CHANNEL_LAYERS = IN_MEMORY
    settings.PRINTFARM_FEED_INTERVAL = 0.05
    return settings


async def open_socket(user=None, path: str = "/ws/farm/") -> tuple[WebsocketCommunicator, bool]:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if user is not None:
        client = Client()
        await sync_to_async(client.force_login)(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def settle() -> None:
    """Age every status row past the feed's catch-up window, as in a farm that has been quiet.

    (A feed that just started re-sends the last couple of seconds of changes.)
    """
    await sync_to_async(PrinterStatusRow.objects.update)(updated_at=timezone.now() - dt.timedelta(minutes=1))


async def record(printer_id: int, status: PrinterStatus) -> list[int]:
    return await sync_to_async(printer_status_record_many)(
        readings=[(printer_id, status)], now=timezone.now()
    )


@pytest.mark.django_db(transaction=True)
async def test_anonymous_socket_is_refused(feed_mode):
    communicator, connected = await open_socket()
    assert not connected
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_foreign_origin_is_refused(feed_mode):
    user = await sync_to_async(UserFactory)()
    client = Client()
    await sync_to_async(client.force_login)(user)
    communicator = WebsocketCommunicator(
        application,
        "/ws/farm/",
        headers=[
            (b"origin", b"http://evil.example"),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        ],
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_status_change_reaches_the_socket_through_the_feed(feed_mode):
    user = await sync_to_async(UserFactory)()
    printer = await sync_to_async(PrinterFactory)()
    quiet = await sync_to_async(PrinterFactory)()
    await settle()
    communicator, connected = await open_socket(user)
    assert connected
    try:
        await record(printer.pk, PrinterStatus(state=State.PRINTING, progress=12.0, file="benchy.gcode"))
        html = await communicator.receive_from(timeout=5)
        assert f'<article id="printer-card-{printer.pk}" class="card st-printing" hx-swap-oob="true">' in html
        assert "benchy.gcode" in html
        assert f"printer-card-{quiet.pk}" not in html
        assert '<nav id="state-counts"' in html and 'hx-swap-oob="true"' in html
        assert "<b>1</b> printing" in html
        assert "csrfmiddlewaretoken" not in html  # pushed cards rely on <body hx-headers>

        # The same revision is pushed once, whatever the overlap window re-reads.
        assert await communicator.receive_nothing(timeout=0.3)

        await record(printer.pk, PrinterStatus(state=State.PRINTING, progress=13.0, file="benchy.gcode"))
        html = await communicator.receive_from(timeout=5)
        assert "13%" in html
    finally:
        await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_feed_stops_when_the_last_socket_leaves(feed_mode):
    user = await sync_to_async(UserFactory)()
    first, _ = await open_socket(user)
    second, _ = await open_socket(user)
    feed = realtime._feed()
    assert feed.subscribers == 2 and feed.task is not None
    await first.disconnect()
    assert feed.task is not None and not feed.task.done()
    task = feed.task
    await second.disconnect()
    assert feed.subscribers == 0 and feed.task is None
    assert task.cancelled() or task.cancelling()


@pytest.mark.django_db(transaction=True)
async def test_a_deleted_printer_leaves_open_dashboards_through_the_feed(feed_mode):
    # The feed reads status rows; a deleted printer has none left, only its removal.
    user = await sync_to_async(UserFactory)()
    printer = await sync_to_async(PrinterFactory)()
    await settle()
    communicator, connected = await open_socket(user)
    assert connected
    try:
        assert await communicator.receive_nothing(timeout=0.3)
        pk = printer.pk
        await sync_to_async(printer_delete)(printer=printer)
        html = await communicator.receive_from(timeout=5)
        assert f'<div id="printer-card-{pk}" hx-swap-oob="delete"></div>' in html
        assert '<nav id="state-counts"' in html
        assert await communicator.receive_nothing(timeout=0.3)  # once, not on every tick
    finally:
        await communicator.disconnect()


@pytest.mark.django_db
def test_render_cards_is_one_query_and_deletes_missing_printers():
    printers = [set_status(PrinterFactory(), State.IDLE) for _ in range(5)]
    ids = [p.pk for p in printers]
    with CaptureQueriesContext(connection) as ctx:
        html = realtime.render_cards([*ids, 99999])
    # printers + status (joined), their tags, their jobs, the pollers' heartbeats (stale marks),
    # every printer's name (the cards' place in name order)
    assert len(ctx.captured_queries) == 5
    for pk in ids:
        assert f'<article id="printer-card-{pk}" class="card st-idle" hx-swap-oob="true">' in html
    assert '<div id="printer-card-99999" hx-swap-oob="delete"></div>' in html


@pytest.mark.django_db
def test_render_push_splits_big_changes_into_frames():
    ids = [PrinterFactory().pk for _ in range(realtime.CHUNK + 3)]
    frames = realtime.render_push(ids)
    assert len(frames) == 2
    assert frames[0].count("<article ") == realtime.CHUNK
    assert frames[1].count("<article ") == 3
    assert 'id="state-counts"' in frames[1] and 'id="state-counts"' not in frames[0]


@pytest.mark.django_db(transaction=True)
async def test_a_status_write_reaches_the_socket_through_redis(settings):
    # A real Redis (127.0.0.1:6379 on these machines and in CI), in both runs of the suite.
    settings.REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    settings.CHANNEL_LAYERS = redis_channel_layer(settings.REDIS_URL)
    settings.PRINTFARM_FEED_INTERVAL = 0.05
    user = await sync_to_async(UserFactory)()
    printer = await sync_to_async(PrinterFactory)()
    await changes.drain()  # the printer's creation is pushed before the sockets open
    communicator, connected = await open_socket(user)
    wall, wall_connected = await open_socket(user, "/ws/farm/?view=wall")
    assert connected and wall_connected
    try:
        # With Redis the feed stays off: the write's announcement pushes the card itself,
        # and the wall's tile to the wall's group.
        changed = await record(printer.pk, PrinterStatus(state=State.PAUSED, progress=40.0))
        assert changed == [printer.pk]
        html = await communicator.receive_from(timeout=5)
        assert f'<article id="printer-card-{printer.pk}" class="card st-paused" hx-swap-oob="true">' in html
        assert '<nav id="state-counts"' in html
        tile = await wall.receive_from(timeout=5)
        assert f'id="printer-card-{printer.pk}" class="card tile st-paused" hx-swap-oob="true">' in tile
    finally:
        await communicator.disconnect()
        await wall.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_starting_feed_catches_up_on_the_last_seconds(feed_mode):
    # Covers the gap between rendering the page and opening its socket.
    user = await sync_to_async(UserFactory)()
    printer = await sync_to_async(PrinterFactory)()
    communicator, connected = await open_socket(user)
    assert connected
    try:
        html = await communicator.receive_from(timeout=5)
        assert f'id="printer-card-{printer.pk}"' in html
    finally:
        await communicator.disconnect()


@pytest.mark.django_db
def test_feed_retries_changes_whose_render_failed(monkeypatch):
    printer = PrinterFactory()
    feed = realtime.ChangeFeed()
    feed.cursor = timezone.now() - dt.timedelta(seconds=1)
    set_status(printer, State.PRINTING, progress=10.0)

    def broken(ids, views):
        raise RuntimeError("template blew up")

    monkeypatch.setattr(realtime, "render_pushes", broken)
    with pytest.raises(RuntimeError):
        feed.poll()
    monkeypatch.undo()
    frames = feed.poll()["cards"]
    assert f'id="printer-card-{printer.pk}"' in "".join(frames)


@pytest.mark.django_db(transaction=True)
async def test_a_wall_socket_is_pushed_tiles_and_a_dashboard_cards(feed_mode):
    # One change, two views: each socket gets its own markup, rendered from the same card.
    user = await sync_to_async(UserFactory)()
    printer = await sync_to_async(PrinterFactory)()
    await settle()
    wall, wall_ok = await open_socket(user, "/ws/farm/?view=wall")
    cards, cards_ok = await open_socket(user)
    assert wall_ok and cards_ok
    try:
        await record(printer.pk, PrinterStatus(state=State.PAUSED, progress=40.0, file="part.gcode"))
        tile = await wall.receive_from(timeout=5)
        card = await cards.receive_from(timeout=5)
        pk = printer.pk
        assert f'<article id="printer-card-{pk}" class="card tile st-paused" hx-swap-oob="true">' in tile
        assert "<form" not in tile and '<nav id="state-counts"' in tile
        assert f'<article id="printer-card-{printer.pk}" class="card st-paused" hx-swap-oob="true">' in card
        assert "hx-post" in card  # the dashboard's buttons
        assert await wall.receive_nothing(timeout=0.3) and await cards.receive_nothing(timeout=0.1)
    finally:
        await wall.disconnect()
        await cards.disconnect()


@pytest.mark.django_db
def test_the_feed_renders_only_the_views_someone_watches(monkeypatch):
    printer = PrinterFactory()
    feed = realtime.ChangeFeed()
    feed.cursor = timezone.now() - dt.timedelta(seconds=1)
    feed.views["wall"] = 1
    set_status(printer, State.PRINTING, progress=10.0)
    pushes = feed.poll()
    assert list(pushes) == ["wall"] and 'class="card tile st-printing"' in pushes["wall"][0]


def test_a_socket_asks_for_its_view():
    assert realtime.view_of(b"view=wall") == "wall"
    assert realtime.view_of(b"") == "cards"
    assert realtime.view_of(b"view=%3Cscript%3E") == "cards"  # anything else: the cards


@pytest.mark.django_db(transaction=True)
async def test_a_new_socket_gets_what_changed_since_its_page_read_the_cards(feed_mode):
    # The feed already runs for another screen, and its window has moved past the change that
    # came between this page's read and its socket opening (a slow page of 1,000 tiles).
    user = await sync_to_async(UserFactory)()
    printer, quiet = await sync_to_async(PrinterFactory)(), await sync_to_async(PrinterFactory)()
    await settle()
    other, _ = await open_socket(user)
    try:
        url = await sync_to_async(realtime.socket_url)("wall")  # the page reads its cards now
        await record(printer.pk, PrinterStatus(state=State.PAUSED, progress=40.0))
        assert 'class="card st-paused"' in await other.receive_from(timeout=5)  # the feed had it
        late = timezone.now() - dt.timedelta(seconds=5)
        await sync_to_async(PrinterStatusRow.objects.filter(printer_id=printer.pk).update)(updated_at=late)
        url = url.replace(url.rsplit("=", 1)[1], f"{(late - dt.timedelta(seconds=1)).timestamp():.3f}")
        wall, connected = await open_socket(user, url)
        assert connected
        try:
            html = await wall.receive_from(timeout=5)
            assert f'id="printer-card-{printer.pk}" class="card tile st-paused"' in html
            assert f"printer-card-{quiet.pk}" not in html
            assert await wall.receive_nothing(timeout=0.3)
        finally:
            await wall.disconnect()
    finally:
        await other.disconnect()


def test_a_socket_catches_up_only_on_a_recent_page():
    now = timezone.now()
    assert realtime.since_of(f"since={now.timestamp() - 5:.3f}".encode()) is not None
    assert realtime.since_of(f"since={now.timestamp() - 600:.3f}".encode()) is None  # re-reads instead
    for junk in (b"since=", b"since=nan", b"since=1e400", b"since=-1", b"view=wall"):
        assert realtime.since_of(junk) is None
