"""Poller health: the real poller's heartbeat, the banner on every page, stale cards, the API."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import re
import signal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs.management.commands.poll_printers import Command as PollCommand
from printers import realtime
from printers.coordinator import Coordinator
from printers.health import poller_health, poller_heartbeat_begin
from printers.models import PollerHeartbeat
from printers.simulator import SimulatedFarm, running_farm
from printers.tests.browser_support import launch_chromium, log_in, running_site
from printers.tests.factories import PrinterFactory, UserFactory
from printers.tests.test_coordinator import add_printers
from printfarm.accounts.models import Role
from printfarm.api.snapshot import snapshot
from printfarm.api.tests.clients import api_client
from printfarm.testing import eventually

HX = {"HTTP_HX_REQUEST": "true"}
CARD = re.compile(r'<article id="printer-card-(\d+)".*?</article>', re.S)


def heartbeat(shard: tuple[int, int] = (0, 1), *, age: float = 0.0, stopped: bool = False) -> None:
    """A shard's heartbeat as a poller leaves it, `age` seconds ago."""
    poller_heartbeat_begin(shard=shard, host="test-host", pid=4242)
    at = timezone.now() - dt.timedelta(seconds=age)
    PollerHeartbeat.objects.filter(shard_index=shard[0], shard_count=shard[1]).update(
        beat_at=at, stopped_at=at if stopped else None
    )


def stale_cards(html: str) -> dict[int, bool]:
    """printer pk -> whether its card carries the stale mark."""
    return {int(m.group(1)): 'data-testid="stale"' in m.group(0) for m in CARD.finditer(html)}


def banner(html: str) -> str:
    match = re.search(r'data-testid="poller-banner">(.*?)</div>', html, re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split()) if match else ""


def farm_status(client: Client) -> dict:
    snapshot.invalidate()  # served from a snapshot up to a second old
    response = client.get("/api/v1/status")
    assert response.status_code == 200, response.content
    return response.json()["poller"]


@pytest.fixture
def web(client):
    """Signed in as a viewer, not the root conftest's admin: every role sees the banner."""
    client.force_login(UserFactory(role=Role.VIEWER))
    return client


@pytest.fixture
async def sim_farm():
    farm = SimulatedFarm(6, protocol="moonraker")
    await farm.start()
    yield farm
    await farm.stop()


def fast(**kwargs) -> Coordinator:
    options = {"interval": 0.1, "timeout": 0.5, "backoff_max": 0.4, "flush_interval": 0.05}
    return Coordinator(**(options | {"heartbeat_interval": 0.05} | kwargs))


async def heartbeat_row(shard: tuple[int, int] = (0, 1)) -> PollerHeartbeat | None:
    return await PollerHeartbeat.objects.filter(shard_index=shard[0], shard_count=shard[1]).afirst()


# -- the poller writes it -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_poller_beats_while_polling_and_marks_itself_stopped_at_shutdown(sim_farm):
    printers = await add_printers(sim_farm, 2)
    coordinator = fast()
    task = asyncio.create_task(PollCommand()._run(coordinator))
    try:
        await eventually(lambda: coordinator.polls >= 4)
        first = await heartbeat_row()
        assert first is not None and first.stopped_at is None and first.pid == os.getpid()

        async def beat_again() -> bool:
            row = await heartbeat_row()
            return row.beat_at > first.beat_at

        await eventually(beat_again)  # not just at start: every few seconds while polling
        health = await sync_to_async(poller_health)()
        assert health.ok and health.lines == []
        html = await sync_to_async(realtime.render_cards)([p.pk for p in printers])
        assert stale_cards(html) == {p.pk: False for p in printers}
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # the command's own clean shutdown
        await asyncio.wait_for(task, 15)
        gc.unfreeze()  # the command froze the test process's heap
    row = await heartbeat_row()
    assert row.stopped_at is not None
    health = await sync_to_async(poller_health)()
    assert not health.ok and health.shards[0].clean_stop
    assert re.fullmatch(r"Live status stopped \d+ s ago — is the poller running\?", health.lines[0])
    html = await sync_to_async(realtime.render_cards)([p.pk for p in printers])
    assert stale_cards(html) == {p.pk: True for p in printers}  # what a push would carry


# -- what every page says -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_stale_heartbeat_shows_the_banner_everywhere_marks_cards_and_the_api(web):
    printer = PrinterFactory()
    heartbeat(age=90)
    expected = "Live status stopped 1 min ago — is the poller running?"
    dashboard = web.get(reverse("printers:dashboard")).content.decode()
    assert banner(dashboard) == expected
    assert stale_cards(dashboard) == {printer.pk: True}
    assert banner(web.get(reverse("jobs:queue")).content.decode()) == expected
    detail = web.get(reverse("printers:detail", args=[printer.pk])).content.decode()
    assert banner(detail) == expected and stale_cards(detail) == {printer.pk: True}
    # The banner's own refresh, and the grid's, say the same.
    refreshed = web.get(reverse("printers:poller_health"), **HX).content.decode()
    assert banner(refreshed) == expected and 'data-health="stopped:0/1"' in refreshed
    grid = web.get(reverse("printers:dashboard"), **HX).content.decode()
    assert stale_cards(grid) == {printer.pk: True}

    poller = farm_status(api_client(Role.VIEWER)[0])
    assert (poller["ok"], poller["never_reported"]) == (False, False)
    assert 90 <= poller["stopped_seconds"] < 120
    (shard,) = poller["shards"]
    assert (shard["shard"], shard["ok"], shard["host"], shard["pid"]) == ("0/1", False, "test-host", 4242)

    heartbeat(age=0)  # the poller is back
    dashboard = web.get(reverse("printers:dashboard")).content.decode()
    assert banner(dashboard) == "" and stale_cards(dashboard) == {printer.pk: False}
    refreshed = web.get(reverse("printers:poller_health"), **HX).content.decode()
    assert 'data-health="ok"' in refreshed and "poller-banner" not in refreshed
    assert farm_status(api_client(Role.VIEWER)[0])["ok"] is True


@pytest.mark.django_db
def test_a_clean_shutdown_counts_at_once_not_after_the_stale_limit(web):
    printer = PrinterFactory()
    heartbeat(age=1, stopped=True)
    dashboard = web.get(reverse("printers:dashboard")).content.decode()
    assert banner(dashboard) == "Live status stopped 1 s ago — is the poller running?"
    assert stale_cards(dashboard) == {printer.pk: True}


@pytest.mark.django_db
def test_never_heard_from_a_poller_says_so(web):
    printer = PrinterFactory()
    disabled = PrinterFactory(enabled=False)
    dashboard = web.get(reverse("printers:dashboard")).content.decode()
    assert banner(dashboard) == "No live status yet: no poller has reported — is the poller running?"
    # A disabled printer is not polled anyway: its card says maintenance, not stale.
    assert stale_cards(dashboard) == {printer.pk: True, disabled.pk: False}
    poller = farm_status(api_client(Role.VIEWER)[0])
    assert poller == {"ok": False, "never_reported": True, "stopped_seconds": None, "shards": []}


@pytest.mark.django_db
def test_signed_out_tabs_stop_refreshing_the_banner(client):
    heartbeat(age=90)
    response = client.get(reverse("printers:poller_health"), **HX)
    assert response.status_code == 286 and response.content == b""  # htmx: stop polling
    assert "poller-banner" not in client.get(reverse("login")).content.decode()


# -- shards ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_stopped_shard_marks_only_its_printers_stale(sim_farm):
    printers = await add_printers(sim_farm, 6)
    owned = {k: sorted(p.pk for p in printers if p.pk % 3 == k) for k in range(3)}
    assert all(owned.values())
    # Shards 0/3 and 1/3 are real pollers; 2/3 last beat 90 s ago.
    await sync_to_async(heartbeat)((2, 3), age=90)
    async with fast(shard=(0, 3)) as first, fast(shard=(1, 3)) as second:
        await eventually(lambda: first.polls >= 2 and second.polls >= 2)
        health = await sync_to_async(poller_health)()
        assert [s.ok for s in health.shards] == [True, True, False]
        assert health.lines == [
            f"Live status for {len(owned[2])} printers stopped 1 min ago (poller 2/3) — is it running?"
        ]

        web = Client()
        await sync_to_async(web.force_login)(await sync_to_async(UserFactory)(role=Role.VIEWER))
        dashboard = (await sync_to_async(web.get)(reverse("printers:dashboard"))).content.decode()
        assert banner(dashboard) == health.lines[0]
        assert stale_cards(dashboard) == {p.pk: p.pk % 3 == 2 for p in printers}
        pushed = await sync_to_async(realtime.render_cards)([p.pk for p in printers])
        assert stale_cards(pushed) == {p.pk: p.pk % 3 == 2 for p in printers}

        viewer = (await sync_to_async(api_client)(Role.VIEWER))[0]
        poller = await sync_to_async(farm_status)(viewer)
        assert poller["ok"] is False and 90 <= poller["stopped_seconds"] < 120
        assert [(s["shard"], s["ok"], s["printers"]) for s in poller["shards"]] == [
            ("0/3", True, None),
            ("1/3", True, None),
            ("2/3", False, len(owned[2])),
        ]
    # Both real pollers shut down cleanly: now the whole farm is stale.
    health = await sync_to_async(poller_health)()
    assert not any(s.ok for s in health.shards)
    assert re.fullmatch(
        r"Live status stopped \d+ s ago \(pollers 0/3, 1/3, 2/3\) — are the pollers running\?",
        health.lines[0],
    )


@pytest.mark.django_db
def test_a_shard_of_the_layout_that_never_reported_is_named():
    printers = [PrinterFactory() for _ in range(4)]
    heartbeat((0, 2))
    health = poller_health()
    missing = sum(1 for p in printers if p.pk % 2 == 1)
    assert health.lines == [
        f"No live status for {missing} printer{'s' if missing != 1 else ''}: "
        "poller 1/2 has not reported — is it running?"
    ]
    assert [health.is_stale(p.pk) for p in printers] == [p.pk % 2 == 1 for p in printers]


@pytest.mark.django_db
def test_a_layout_the_farm_moved_away_from_does_not_count():
    PrinterFactory()
    heartbeat((0, 1), age=3600, stopped=True)  # one poller, before the farm was split
    heartbeat((0, 2))
    heartbeat((1, 2))
    health = poller_health()
    assert health.ok and health.count == 2 and health.key == "ok"


@pytest.mark.django_db
def test_reading_health_is_one_query_while_the_pollers_run():
    PrinterFactory()
    heartbeat((0, 2))
    heartbeat((1, 2))
    with CaptureQueriesContext(connection) as queries:
        assert poller_health().ok
    assert len(queries.captured_queries) == 1


# -- an open dashboard, in a real browser -----------------------------------------------------


@pytest.mark.browser
def test_an_open_dashboard_learns_that_the_poller_died_without_a_reload(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    # The real poller and web server; the poller is killed (no clean shutdown: only its
    # heartbeat's age can tell), and the page must say so by itself.
    with (
        running_farm(count=2, protocol="moonraker") as farm,
        running_site(tmp_path, farm, PRINTFARM_POLLER_STALE_SECONDS="2") as site,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            log_in(page, site)
            cards = page.locator("[id^=printer-card-]")
            expect(cards).to_have_count(2)
            expect(cards.locator("[data-testid=state]")).to_have_text(["Idle", "Idle"], timeout=15_000)
            expect(page.locator("[data-testid=poller-banner]")).to_have_count(0, timeout=15_000)
            expect(cards.locator("[data-testid=stale]")).to_have_count(0)
            page.evaluate("window.__noReload = true")

            site["poller"].kill()
            site["poller"].wait(timeout=10)
            # The banner asks again every 10 s; then the grid is re-read for the stale marks.
            expect(page.locator("[data-testid=poller-banner]")).to_have_text(
                re.compile(r"Live status stopped \d+ s ago — is the poller running\?"), timeout=30_000
            )
            expect(cards.locator("[data-testid=stale]")).to_have_count(2, timeout=15_000)
            assert page.evaluate("window.__noReload") is True
        finally:
            browser.close()
