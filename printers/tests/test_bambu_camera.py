"""A Bambu Lab P1/A1 printer's own camera (JPEG frames over TLS, printers.drivers.bambu_camera):
read by the server one frame per snapshot from the simulated printer over loopback, with its
LAN access code, bounded when the camera hangs or refuses, shown on the card, the camera wall,
the printer page and the API like any camera, and never its address or code. An X1's RTSPS
camera is not read, and the printer page says so."""

from __future__ import annotations

import asyncio
import io
import struct
import time
from collections.abc import Iterator

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from printers import camera_views, cameras
from printers.camera_sources import camera_source
from printers.drivers import bambu_camera
from printers.forms import BambuAddressField
from printers.models import Printer
from printers.presenters import card_for
from printers.simulator import SimulatedFarm, running_farm
from printers.tests.factories import PrinterFactory, UserFactory
from printfarm.testing import web_server

X1, P1 = 0, 1  # the simulator's Bambu printers alternate: X1 Carbon, P1S
ACCESS_CODE = "Zq8camXY"


@pytest.fixture(autouse=True)
def fresh_caches():
    camera_views._urls.clear()
    cameras.snapshots.clear()
    yield
    camera_views._urls.clear()
    cameras.snapshots.clear()


@pytest.fixture
def farm() -> Iterator[SimulatedFarm]:
    with running_farm(count=2, protocol="bambu", speed=60, api_key=ACCESS_CODE) as farm:
        yield farm


def registered(farm: SimulatedFarm, index: int, **fields) -> Printer:
    sim, device = farm.printers[index], farm.bambu(index)
    values = {
        "name": sim.name,
        "protocol": "bambu",
        "base_url": sim.base_url,
        "serial": device.serial,
        "api_key": device.access_code,
    }
    return PrinterFactory(**(values | fields))


def camera_of(farm: SimulatedFarm, index: int = P1, code: str | None = None) -> str:
    device = farm.bambu(index)
    return bambu_camera.camera_url(
        farm.printers[index].base_url, device.access_code if code is None else code
    )


def shot(url: str) -> cameras.Snapshot:
    return asyncio.run(cameras.fetch_snapshot(url))


# -- the wire ------------------------------------------------------------------------------------


def test_the_sign_in_packet_is_80_bytes_as_the_printer_reads_it():
    packet = bambu_camera.auth_packet("12345678")
    assert len(packet) == 80
    assert struct.unpack_from("<4I", packet) == (0x40, 0x3000, 0, 0)
    assert packet[16:48] == b"bblp".ljust(32, b"\0") and packet[48:80] == b"12345678".ljust(32, b"\0")


def test_which_bambu_lab_models_have_a_camera_read_here():
    assert bambu_camera.camera_kind("01P00A123456789", "") == "jpeg"  # P1S, by its serial
    assert bambu_camera.camera_kind("03919A123456789", "") == "jpeg"  # A1
    assert bambu_camera.camera_kind("00M09A123456789", "Bambu Lab P1S") == "rtsps"  # the serial wins
    assert bambu_camera.camera_kind("", "Bambu Lab X1 Carbon") == "rtsps"
    assert bambu_camera.camera_kind("XYZ", "Bambu Lab A1 mini") == "jpeg"
    assert bambu_camera.camera_kind("09400A123456789", "") == ""  # H2D: not known here


def test_the_camera_address_comes_from_the_printers():
    url = bambu_camera.camera_url("mqtts://10.0.0.9", "8765 4/@")
    assert url == "bambu-camera://bblp:8765%204%2F%40@10.0.0.9:6000"
    assert bambu_camera.camera_url("mqtts://127.0.0.1:18883?ftps=10990&camera=16000", "c").endswith(
        "@127.0.0.1:16000"
    )
    assert bambu_camera.camera_url("mqtts://10.0.0.9", "") == ""
    assert bambu_camera.camera_url("http://10.0.0.9", "code") == ""
    assert bambu_camera.camera_url("mqtts://10.0.0.9?camera=99999", "code") == ""
    field = BambuAddressField()
    assert (
        field.clean("127.0.0.1:18883?ftps=10990&camera=16000")
        == "mqtts://127.0.0.1:18883?ftps=10990&camera=16000"
    )
    assert field.clean("127.0.0.1?camera=16000") == "mqtts://127.0.0.1?camera=16000"


# -- snapshots from the simulated printer ----------------------------------------------------------


def test_a_p1_snapshot_is_one_jpeg_frame_from_its_camera(farm):
    started = time.monotonic()
    snapshot = shot(camera_of(farm))
    assert snapshot.ok and snapshot.content_type == "image/jpeg", snapshot.problem
    assert Image.open(io.BytesIO(snapshot.body)).format == "JPEG"
    assert time.monotonic() - started < cameras.FETCH_TIMEOUT
    camera = farm.bambu(P1).camera
    assert camera is not None and (camera.signed_in, camera.refused) == (1, 0)
    assert farm.bambu(X1).camera is None and farm.printers[X1].camera_port == 0  # an X1 has no port 6000


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("wrong code", bambu_camera.NO_FRAME),
        ("bad_access_code", bambu_camera.NO_FRAME),  # the printer's code was changed
        ("garbage", "not an image"),
        ("down", bambu_camera.NO_FRAME),  # closed after TLS: to a client, as a wrong code
        ("hang", "camera timed out"),
        ("blackhole", "camera timed out"),
        ("offline", "camera unreachable"),
    ],
)
def test_a_camera_that_refuses_hangs_or_is_gone_gets_a_placeholder_in_bounded_time(
    farm, monkeypatch, fault, problem
):
    monkeypatch.setattr(cameras, "FETCH_TIMEOUT", 0.5)
    url = camera_of(farm)
    if fault == "wrong code":
        url = camera_of(farm, code="00000000")
    elif fault in ("garbage", "down", "hang"):
        farm.set_camera_fault(P1, fault)
    else:
        farm.set_fault(P1, fault)
    started = time.monotonic()
    snapshot = shot(url)
    assert (snapshot.ok, snapshot.problem, snapshot.content_type) == (False, problem, "image/svg+xml")
    assert problem.encode() in snapshot.body
    assert time.monotonic() - started < 0.5 + 1.5  # the bound, plus closing the socket
    farm.set_camera_fault(P1, None)
    farm.set_fault(P1, None)


def test_many_viewers_cost_one_camera_connection(farm):
    async def twenty() -> list[cameras.Snapshot]:
        cache = cameras.SnapshotCache()
        return await asyncio.gather(*(cache.get(camera_of(farm)) for _ in range(20)))

    assert all(s.ok for s in asyncio.run(twenty()))
    assert farm.bambu(P1).camera.signed_in == 1


# -- where it shows -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_x1_has_no_camera_read_and_its_page_says_why(farm):
    x1 = registered(farm, X1)
    source = camera_source(x1)
    assert (source.snapshot, source.note) == ("", bambu_camera.RTSPS_NOT_READ)
    assert card_for(Printer.objects.with_status().get(pk=x1.pk)).camera_url == ""
    web = Client()
    web.force_login(UserFactory())
    page = web.get(reverse("printers:detail", args=[x1.pk])).content.decode()
    assert "X1 RTSPS streams are not supported yet" in page and "camera-live" not in page
    assert web.get(reverse("printers:camera_snapshot", args=[x1.pk])).status_code == 404
    assert 'data-testid="camera-tile"' not in web.get(reverse("printers:cameras")).content.decode()
    # A snapshot URL an admin sets (say a webcam beside it) is used as for any printer.
    Printer.objects.filter(pk=x1.pk).update(camera_snapshot_url="http://127.0.0.1:9/snap.jpg")
    assert camera_source(Printer.objects.get(pk=x1.pk)).kind == "url"


@pytest.mark.django_db(transaction=True)
def test_over_a_real_server_the_p1_camera_shows_everywhere_and_never_its_code(farm):
    device = farm.bambu(P1)
    assert device.access_code == ACCESS_CODE
    p1 = registered(farm, P1)
    registered(farm, X1)
    viewer = UserFactory()
    web = Client()
    web.force_login(viewer)
    cookies = {name: morsel.value for name, morsel in web.cookies.items()}
    snap = reverse("printers:camera_snapshot", args=[p1.pk])
    assert card_for(Printer.objects.with_status().get(pk=p1.pk)).camera_url == snap

    with web_server() as url, httpx.Client(base_url=url, cookies=cookies) as http:
        answer = http.get(snap)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert answer.headers["x-camera-status"] == "ok" and answer.content[:3] == b"\xff\xd8\xff"
        api = http.get(f"/api/v1/printers/{p1.pk}").json()["camera"]
        assert (api["snapshot"], api["stream"], api["source"]) == (True, False, "printer")
        assert http.get(api["snapshot_url"]).content[:3] == b"\xff\xd8\xff"
        assert device.camera.signed_in == 1  # the page, then the API: one camera read, cached
        wall = http.get(reverse("printers:cameras")).text
        assert wall.count('data-testid="camera-tile"') == 1 and snap in wall
        detail = http.get(reverse("printers:detail", args=[p1.pk])).text
        assert 'data-testid="camera-snapshot"' in detail
        for page in (reverse("printers:dashboard"), reverse("printers:cameras"), "/api/v1/printers", detail):
            body = http.get(page).text if page.startswith("/") else page
            assert ACCESS_CODE not in body and "bambu-camera" not in body
