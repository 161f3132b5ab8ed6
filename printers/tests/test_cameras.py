"""Printer webcams (printers.cameras): found from the printer, fetched by the server only,
coalesced and cached, bounded when a camera hangs or answers garbage, and never shown to a
browser. Against the simulator's cameras over real sockets."""

from __future__ import annotations

import asyncio
import concurrent.futures

import httpx
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from printers import camera_views, cameras
from printers.cameras import (
    STREAMS_PER_CAMERA,
    SnapshotCache,
    StreamsFull,
    camera_discover,
    camera_url_problem,
    resolve_reported,
    stream_open,
)
from printers.cards import render_card
from printers.models import Printer
from printers.presenters import card_for
from printers.simulator import running_farm
from printers.tests.factories import PrinterFactory, UserFactory
from printfarm.accounts.models import Role
from printfarm.testing import eventually, eventually_sync, web_server

PASSWORD = "cam-Pa55-DO-NOT-LEAK"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
async def camera_client():
    """The cameras' pooled client is per event loop: close the test loop's before it ends.
    The web process's caches start empty (a reused pk must not find another test's camera)."""
    camera_views._urls.clear()
    cameras.snapshots.clear()
    yield
    await cameras.close_client()


def snapshot_url(sim) -> str:
    return f"{sim.base_url}/webcam/?action=snapshot"


def stream_url(sim) -> str:
    return f"{sim.base_url}/webcam/?action=stream"


def with_password(url: str) -> str:
    return url.replace("http://", f"http://viewer:{PASSWORD}@", 1)


# -- what a printer reports ------------------------------------------------------------------


def test_reported_urls_are_made_absolute_on_the_printers_host():
    # Mainsail's nginx serves /webcam/ on port 80, not on Moonraker's own 7125.
    assert (
        resolve_reported("http://10.0.0.5:7125", "/webcam/?action=snapshot", protocol="moonraker")
        == "http://10.0.0.5/webcam/?action=snapshot"
    )
    assert (
        resolve_reported("http://octopi.local", "/webcam/?action=stream", protocol="octoprint")
        == "http://octopi.local/webcam/?action=stream"
    )
    # OctoPrint's default snapshotUrl is the Pi's own loopback: from here, the printer's host.
    assert (
        resolve_reported("http://10.0.0.7", "http://127.0.0.1:8080/?action=snapshot", protocol="octoprint")
        == "http://10.0.0.7:8080/?action=snapshot"
    )
    assert resolve_reported("http://10.0.0.7", "http://169.254.169.254/latest/", protocol="octoprint") == ""
    assert resolve_reported("http://10.0.0.7", "file:///etc/passwd", protocol="octoprint") == ""
    assert resolve_reported("http://10.0.0.7", None, protocol="octoprint") == ""


def test_camera_urls_are_http_and_never_metadata():
    assert camera_url_problem(f"http://cam:{PASSWORD}@10.0.0.9:8080/snap.jpg") == ""
    assert camera_url_problem("https://cam.example/snap.jpg") == ""
    for bad in (
        "ftp://10.0.0.9/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/x",
        "http://0xA9FEA9FE/x",
        "http://10.0.0.9:99999/x",
        "http://host\\@evil/x",
        "gopher://x",
    ):
        assert camera_url_problem(bad), bad


async def test_the_camera_is_found_from_moonraker_and_octoprint(make_farm):
    farm = await make_farm("mixed", count=2)
    for sim in farm.printers:
        found = await camera_discover(protocol=sim.protocol, base_url=sim.base_url)
        assert found is not None, sim.protocol
        assert found.snapshot_url == snapshot_url(sim)
        assert found.stream_url == stream_url(sim)


async def test_a_printer_that_reports_no_camera_gives_none(make_farm):
    farm = await make_farm("prusalink")
    sim = farm.printers[0]
    assert await camera_discover(protocol=sim.protocol, base_url=sim.base_url) is None
    assert await camera_discover(protocol="moonraker", base_url="http://127.0.0.1:9") is None


# -- snapshots: coalesced, cached, bounded ---------------------------------------------------------


async def test_twenty_viewers_cost_one_upstream_fetch(make_farm):
    farm = await make_farm("moonraker")
    cache = SnapshotCache()
    url = snapshot_url(farm.printers[0])
    shots = await asyncio.gather(*(cache.get(url) for _ in range(20)))
    assert all(s.ok and s.content_type == "image/jpeg" and s.body[:3] == b"\xff\xd8\xff" for s in shots)
    assert farm.cameras.snapshots == 1 and cache.fetches == 1
    assert (await cache.get(url)).ok and farm.cameras.snapshots == 1  # within the TTL: cached


async def test_a_snapshot_older_than_the_ttl_is_fetched_again(make_farm, monkeypatch):
    monkeypatch.setattr(cameras, "SNAPSHOT_TTL", 0.05)
    farm = await make_farm("octoprint")
    cache = SnapshotCache()
    url = snapshot_url(farm.printers[0])
    assert (await cache.get(url)).ok

    async def fetched_again() -> bool:
        return (await cache.get(url)).ok and farm.cameras.snapshots >= 2

    await eventually(fetched_again)


async def test_a_camera_with_a_stream_only_gives_its_first_frame(make_farm):
    farm = await make_farm("moonraker")
    shot = await SnapshotCache().get(stream_url(farm.printers[0]))
    assert shot.ok and shot.content_type == "image/jpeg"
    assert shot.body.startswith(b"\xff\xd8\xff") and shot.body.endswith(b"\xff\xd9")
    assert farm.cameras.streams_started == 1
    await eventually(lambda: farm.cameras.streams_open == 0)  # and the stream is let go


async def test_a_password_in_the_url_goes_as_basic_auth_and_the_fetch_works(make_farm):
    farm = await make_farm("moonraker")
    shot = await SnapshotCache().get(with_password(snapshot_url(farm.printers[0])))
    assert shot.ok


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("garbage", "not an image"), ("down", "camera answered HTTP 502"), ("hang", "camera timed out")],
)
async def test_a_broken_camera_gets_a_placeholder_with_its_reason(make_farm, monkeypatch, fault, reason):
    monkeypatch.setattr(cameras, "FETCH_TIMEOUT", 0.5)  # "hang": the bound, whatever it is
    farm = await make_farm("moonraker")
    farm.set_camera_fault(0, fault)
    cache = SnapshotCache()
    url = snapshot_url(farm.printers[0])
    shot = await cache.get(url)
    assert not shot.ok and shot.problem == reason
    assert shot.content_type == "image/svg+xml" and reason.encode() in shot.body
    # The next viewer is answered with the known placeholder; a retry runs behind it.
    again = await cache.get(url)
    assert again.problem == reason
    farm.set_camera_fault(0, None)


async def test_a_printer_that_is_offline_has_its_camera_unreachable(make_farm):
    farm = await make_farm("octoprint")
    farm.set_fault(0, "offline")
    shot = await SnapshotCache().get(snapshot_url(farm.printers[0]))
    assert shot.problem == "camera unreachable"


async def test_a_camera_recovers_after_its_fault_clears(make_farm, monkeypatch):
    monkeypatch.setattr(cameras, "RETRY_FAILED", 0.05)
    farm = await make_farm("moonraker")
    farm.set_camera_fault(0, "down")
    cache = SnapshotCache()
    url = snapshot_url(farm.printers[0])
    assert not (await cache.get(url)).ok
    farm.set_camera_fault(0, None)

    async def back() -> bool:
        return (await cache.get(url)).ok

    await eventually(back)


# -- streams -------------------------------------------------------------------------------------


async def _frames(relay, wanted: int) -> int:
    seen = 0
    async for chunk in relay.chunks():
        seen += chunk.count(b"--frame")
        if seen >= wanted:
            break
    return seen


async def test_a_stream_is_relayed_and_closed_when_the_viewer_goes(make_farm):
    farm = await make_farm("moonraker")
    relay = await stream_open(stream_url(farm.printers[0]))
    assert relay.content_type.startswith("multipart/x-mixed-replace")
    assert await _frames(relay, 2) >= 2
    await relay.close()
    await eventually(lambda: farm.cameras.streams_open == 0)


async def test_streams_per_camera_are_capped(make_farm):
    farm = await make_farm("octoprint")
    url = stream_url(farm.printers[0])
    relays = [await stream_open(url) for _ in range(STREAMS_PER_CAMERA)]
    with pytest.raises(StreamsFull):
        await stream_open(url)
    await relays[0].close()
    relays[0] = await stream_open(url)  # a place freed is a place taken
    for relay in relays:
        await relay.close()
    await eventually(lambda: farm.cameras.streams_open == 0)


async def test_a_stream_that_is_down_says_so(make_farm):
    farm = await make_farm("moonraker")
    farm.set_camera_fault(0, "down")
    with pytest.raises(cameras.CameraDown, match="502"):
        await stream_open(stream_url(farm.printers[0]))


# -- the form, the pages and who sees what -----------------------------------------------------------


@pytest.fixture
def farm():
    with running_farm(count=2, protocol="mixed", speed=60) as farm:
        yield farm


def form_data(sim, **overrides) -> dict:
    data = {
        "name": sim.name,
        "protocol": sim.protocol,
        "base_url": sim.base_url,
        "enabled": "on",
        "nozzle_diameter": "0.4",
        "build_x": "220",
        "build_y": "220",
        "build_z": "250",
        "camera_on_card": "on",
    }
    return {**data, **overrides}


@pytest.mark.django_db
def test_saving_a_printer_fills_in_the_camera_it_reports(web, farm):
    for sim in farm.printers:
        response = web.post(reverse("printers:add"), form_data(sim))
        assert response.status_code == 302, response.content.decode()[:2000]
        printer = Printer.objects.get(name=sim.name)
        assert printer.camera_snapshot_url == snapshot_url(sim)
        assert printer.camera_stream_url == stream_url(sim)
        assert printer.events.filter(message__startswith="Found the printer's camera").exists()


@pytest.mark.django_db
def test_camera_urls_are_stored_encrypted_and_write_only(web, farm):
    sim = farm.printers[0]
    secret = with_password(snapshot_url(sim))
    response = web.post(reverse("printers:add"), form_data(sim, camera_snapshot_url=secret))
    assert response.status_code == 302
    printer = Printer.objects.get(name=sim.name)
    assert printer.camera_snapshot_url == secret
    # An admin's camera is not topped up from the printer's (it may be another camera).
    assert printer.camera_stream_url == ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT camera_snapshot_url FROM printers_printer WHERE id = %s", [printer.pk])
        assert cursor.fetchone()[0].startswith("gAAAAA")
    edit = web.get(reverse("printers:edit", args=[printer.pk])).content.decode()
    assert PASSWORD not in edit and snapshot_url(sim).partition("//")[2] not in edit
    assert "Stored (camera at 127.0.0.1:" in edit
    # Blank keeps it; the tick removes it.
    web.post(reverse("printers:edit", args=[printer.pk]), form_data(sim, name="renamed"))
    assert Printer.objects.get(pk=printer.pk).camera_snapshot_url == secret
    web.post(reverse("printers:edit", args=[printer.pk]), form_data(sim, name="renamed", clear_camera="on"))
    printer.refresh_from_db()
    assert printer.camera_snapshot_url == "" and printer.camera_stream_url == ""
    assert printer.events.filter(message__contains="camera").exists()


@pytest.mark.django_db
def test_a_metadata_camera_url_is_refused(web):
    response = web.post(
        reverse("printers:add"),
        {
            **form_data(
                type("S", (), {"name": "p", "protocol": "moonraker", "base_url": "http://127.0.0.1:9"})(),
                camera_snapshot_url="http://169.254.169.254/latest/meta-data/",
            )
        },
    )
    assert response.status_code == 200 and "cloud metadata" in response.content.decode()
    assert not Printer.objects.exists()


@pytest.mark.django_db
def test_the_card_shows_a_snapshot_only_with_a_camera_and_its_cache_key_knows(farm):
    sim = farm.printers[0]
    printer = PrinterFactory(name="cam", base_url=sim.base_url)
    plain = card_for(Printer.objects.with_status().get(pk=printer.pk))
    assert plain.camera_url == "" and "card-camera" not in render_card(plain)
    Printer.objects.filter(pk=printer.pk).update(camera_snapshot_url=snapshot_url(sim))
    with_camera = card_for(Printer.objects.with_status().get(pk=printer.pk))
    assert with_camera.camera_url == reverse("printers:camera_snapshot", args=[printer.pk])
    assert with_camera != plain  # the Card is the render cache's key
    html = render_card(with_camera)
    assert 'class="card-camera"' in html and with_camera.camera_url in html and "/webcam/" not in html
    stream_only = {"camera_snapshot_url": "", "camera_stream_url": stream_url(sim)}
    Printer.objects.filter(pk=printer.pk).update(**stream_only)
    assert card_for(Printer.objects.with_status().get(pk=printer.pk)).camera_url == with_camera.camera_url
    Printer.objects.filter(pk=printer.pk).update(camera_on_card=False)
    assert card_for(Printer.objects.with_status().get(pk=printer.pk)).camera_url == ""


def _session_cookie(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {name: morsel.value for name, morsel in client.cookies.items()}


@pytest.mark.django_db(transaction=True)
def test_over_a_real_server_viewers_see_the_camera_and_never_its_address(farm):
    sims = farm.printers
    secret = with_password(snapshot_url(sims[0]))
    cam = PrinterFactory(name="cam", protocol=sims[0].protocol, base_url=sims[0].base_url)
    Printer.objects.filter(pk=cam.pk).update(
        camera_snapshot_url=secret, camera_stream_url=stream_url(sims[0])
    )
    broken = PrinterFactory(name="broken", protocol=sims[1].protocol, base_url=sims[1].base_url)
    Printer.objects.filter(pk=broken.pk).update(camera_snapshot_url=snapshot_url(sims[1]))
    farm.set_camera_fault(1, "garbage")
    viewer = UserFactory(role=Role.VIEWER)
    snap = reverse("printers:camera_snapshot", args=[cam.pk])
    before = farm.cameras.snapshots
    with web_server() as url, httpx.Client(base_url=url, cookies=_session_cookie(viewer)) as http:
        anonymous = httpx.get(url + snap)
        assert anonymous.status_code == 302 and "/login/" in anonymous.headers["location"]

        def fetch(_: int) -> httpx.Response:
            return http.get(snap)

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(fetch, range(20)))
        assert all(a.status_code == 200 and a.headers["content-type"] == "image/jpeg" for a in answers)
        assert all(a.headers["x-camera-status"] == "ok" for a in answers)
        assert farm.cameras.snapshots - before == 1  # 20 viewers, one upstream fetch

        garbage = http.get(reverse("printers:camera_snapshot", args=[broken.pk]))
        assert garbage.status_code == 200 and garbage.headers["content-type"] == "image/svg+xml"
        assert garbage.headers["x-camera-status"] == "offline; not an image"

        with http.stream("GET", reverse("printers:camera_stream", args=[cam.pk])) as stream:
            assert stream.headers["content-type"].startswith("multipart/x-mixed-replace")
            frames = 0
            for chunk in stream.iter_bytes():
                frames += chunk.count(b"--frame")
                if frames >= 2:
                    break
        eventually_sync(lambda: farm.cameras.streams_open == 0)  # the relay closes once the viewer went

        pages = [
            reverse("printers:dashboard"),
            reverse("printers:dashboard") + "?view=wall",
            reverse("printers:detail", args=[cam.pk]),
            reverse("printers:cameras"),
            "/api/v1/printers",
            f"/api/v1/printers/{cam.pk}",
        ]
        for page in pages:
            response = http.get(page)
            assert response.status_code == 200, page
            body = response.text
            assert PASSWORD not in body and "/webcam/" not in body and "action=snapshot" not in body, page
        wall = http.get(reverse("printers:cameras")).text
        assert wall.count('data-testid="camera-tile"') == 2 and snap in wall
        detail = http.get(reverse("printers:detail", args=[cam.pk])).text
        assert reverse("printers:camera_stream", args=[cam.pk]) in detail
    farm.set_camera_fault(1, None)


@pytest.mark.django_db
def test_a_printer_without_a_camera_has_no_camera_endpoints(web):
    printer = PrinterFactory()
    assert web.get(reverse("printers:camera_snapshot", args=[printer.pk])).status_code == 404
    assert web.get(reverse("printers:camera_stream", args=[printer.pk])).status_code == 404
    assert web.get(reverse("printers:cameras")).status_code == 200


async def test_camera_faults_are_set_over_the_control_api(make_farm):
    farm = await make_farm("octoprint", count=2)
    async with httpx.AsyncClient(base_url=farm.control_url) as control:
        answer = await control.post("/printers/1/camera-fault", json={"fault": "garbage"})
        assert answer.json() == {"index": 1, "camera_fault": "garbage"}
        assert (await control.post("/printers/1/camera-fault", json={"fault": "bogus"})).status_code == 400
        shot = await SnapshotCache().get(snapshot_url(farm.printers[1]))
        assert shot.problem == "not an image"
        counts = (await control.get("/cameras")).json()
        assert counts["snapshots"] == 1 and counts["faults"] == {"1": "garbage"}
