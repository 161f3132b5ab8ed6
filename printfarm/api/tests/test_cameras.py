"""Cameras in the API: an admin sets a printer's camera URLs (write-only, checked as the web form
checks them), everyone reads what camera it has and this server's relay of it, never the
camera's address or password; the relay itself answers a token over a real server."""

from __future__ import annotations

import json

import httpx
import pytest

from printers import camera_views, cameras
from printers.models import Printer
from printers.simulator import running_farm
from printers.state import State
from printers.tests.factories import PrinterFactory, set_status
from printfarm.accounts.models import Role
from printfarm.api.snapshot import snapshot
from printfarm.api.tests.clients import api_client, assert_error, patch, post
from printfarm.testing import eventually_sync, web_server

PASSWORD = "api-cam-Pa55-DO-NOT-LEAK"
SNAPSHOT = f"http://viewer:{PASSWORD}@127.0.0.1:8080/private-cam/?action=snapshot"
STREAM = "http://127.0.0.1:8080/private-cam/?action=stream"
NO_CAMERA = {
    "snapshot": False,
    "stream": False,
    "source": "",
    "on_card": True,
    "snapshot_url": None,
    "stream_url": None,
    "note": "",
}


@pytest.fixture(autouse=True)
def fresh_camera_caches():
    camera_views._urls.clear()
    cameras.snapshots.clear()
    yield
    camera_views._urls.clear()


def relay(pk: int, what: str) -> str:
    return f"/api/v1/printers/{pk}/camera/{what}"


def stored(pk: int) -> tuple[str, str, bool]:
    p = Printer.objects.get(pk=pk)
    return p.camera_snapshot_url, p.camera_stream_url, p.camera_on_card


@pytest.mark.django_db
def test_an_admin_sets_changes_and_removes_a_camera_and_reads_only_the_relay(admin):
    body = {"name": "cam", "protocol": "moonraker", "base_url": "http://127.0.0.1:7125"}
    created = post(admin, "/api/v1/printers", body | {"camera_snapshot_url": SNAPSHOT})
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["camera"] == NO_CAMERA | {
        "snapshot": True,
        "source": "url",
        "snapshot_url": relay(pk, "snapshot"),
    }
    assert stored(pk) == (SNAPSHOT, "", True)

    url = f"/api/v1/printers/{pk}"
    changed = patch(admin, url, {"camera_stream_url": STREAM, "camera_on_card": False})
    assert changed.status_code == 200, changed.content
    camera = changed.json()["camera"]
    assert (camera["stream"], camera["stream_url"], camera["on_card"]) == (True, relay(pk, "stream"), False)
    assert stored(pk) == (SNAPSHOT, STREAM, False)

    # Left out: kept (it is never sent back, so a client can't send it again).
    assert patch(admin, url, {"location": "shelf"}).status_code == 200
    assert stored(pk) == (SNAPSHOT, STREAM, False)
    # null removes the one named; the stream's first frame is the snapshot then.
    camera = patch(admin, url, {"camera_snapshot_url": None}).json()["camera"]
    assert stored(pk) == ("", STREAM, False)
    assert (camera["snapshot"], camera["snapshot_url"], camera["source"]) == (
        True,
        relay(pk, "snapshot"),
        "url",
    )
    camera = patch(admin, url, {"camera_stream_url": ""}).json()["camera"]
    assert stored(pk) == ("", "", False)
    assert camera == NO_CAMERA | {"on_card": False}
    assert admin.get(url).json()["camera"] == camera


@pytest.mark.django_db
def test_a_url_without_a_scheme_is_taken_as_http_as_on_the_form(admin):
    p = PrinterFactory()
    response = patch(admin, f"/api/v1/printers/{p.pk}", {"camera_snapshot_url": "127.0.0.1:8080/snap.jpg"})
    assert response.status_code == 200, response.content
    assert stored(p.pk)[0] == "http://127.0.0.1:8080/snap.jpg"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fe80::1]/snap", "link-local"),
        ("ftp://127.0.0.1/snap.jpg", "http://"),
        ("http://127.0.0.1:99999/snap", "port"),
        ("http://cam/a b", "spaces"),
        ("http://cam/" + "x" * 500, "500"),
    ],
)
@pytest.mark.django_db
def test_camera_urls_follow_the_forms_rules(admin, value, words):
    p = PrinterFactory()
    Printer.objects.filter(pk=p.pk).update(camera_snapshot_url=SNAPSHOT)
    for name in ("camera_snapshot_url", "camera_stream_url"):
        changed = patch(admin, f"/api/v1/printers/{p.pk}", {name: value, "location": "moved"})
        messages = assert_error(changed, 422, "invalid")["fields"][name]
        assert words in " ".join(messages), messages
        body = {"name": "n", "protocol": "moonraker", "base_url": "http://127.0.0.1:7125", name: value}
        assert name in assert_error(post(admin, "/api/v1/printers", body), 422, "invalid")["fields"]
    assert stored(p.pk) == (SNAPSHOT, "", True)
    assert Printer.objects.get(pk=p.pk).location == p.location
    assert Printer.objects.count() == 1


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
@pytest.mark.django_db
def test_only_an_admin_changes_a_camera(role):
    client, _ = api_client(role)
    p = PrinterFactory()
    for body in ({"camera_snapshot_url": SNAPSHOT}, {"camera_on_card": False}, {"camera_stream_url": None}):
        assert_error(patch(client, f"/api/v1/printers/{p.pk}", body), 403, "forbidden")
    assert stored(p.pk) == ("", "", True)
    assert client.get(f"/api/v1/printers/{p.pk}").json()["camera"] == NO_CAMERA


@pytest.mark.django_db
def test_the_cameras_address_and_password_are_in_no_api_response(admin):
    p = set_status(PrinterFactory(), State.IDLE)
    response = patch(
        admin, f"/api/v1/printers/{p.pk}", {"camera_snapshot_url": SNAPSHOT, "camera_stream_url": STREAM}
    )
    assert response.status_code == 200
    snapshot.invalidate()
    answers = [response] + [
        admin.get(url)
        for url in ("/api/v1/printers", f"/api/v1/printers/{p.pk}", "/api/v1/status", "/api/v1/openapi.json")
    ]
    for answer in answers:
        text = answer.content.decode()
        assert PASSWORD not in text and "private-cam" not in text and ":8080" not in text, answer.request
    listed = admin.get("/api/v1/printers").json()["items"][0]["camera"]
    assert listed["snapshot_url"] == relay(p.pk, "snapshot") and listed["stream_url"] == relay(p.pk, "stream")


@pytest.mark.django_db(transaction=True)
def test_the_relay_answers_a_token_over_a_real_server():
    with running_farm(count=1, protocol="moonraker", speed=60) as farm:
        sim = farm.printers[0]
        cam = PrinterFactory(name="cam", base_url=sim.base_url)
        Printer.objects.filter(pk=cam.pk).update(
            camera_snapshot_url=f"{sim.base_url}/webcam/?action=snapshot",
            camera_stream_url=f"{sim.base_url}/webcam/?action=stream",
        )
        bare = PrinterFactory(name="bare")
        _, user = api_client(Role.VIEWER)
        from printfarm.accounts.tokens import token_create

        token = token_create(user, "camera script").secret
        with (
            web_server() as url,
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http,
        ):
            nobody = httpx.get(url + relay(cam.pk, "snapshot"))
            assert nobody.status_code == 401 and nobody.json()["code"] == "unauthorized"

            shot = http.get(relay(cam.pk, "snapshot"))
            assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
            assert shot.content[:3] == b"\xff\xd8\xff" and shot.headers["x-camera-status"] == "ok"
            assert http.get(relay(cam.pk, "snapshot")).content == shot.content  # cached: one fetch
            assert farm.cameras.snapshots == 1

            with http.stream("GET", relay(cam.pk, "stream")) as stream:
                assert stream.headers["content-type"].startswith("multipart/x-mixed-replace")
                for chunk in stream.iter_bytes():
                    if b"\xff\xd8\xff" in chunk:
                        break
            eventually_sync(lambda: farm.cameras.streams_open == 0)

            for missing in (relay(bare.pk, "snapshot"), relay(bare.pk, "stream"), relay(99999, "snapshot")):
                answer = http.get(missing)
                assert answer.status_code == 404 and answer.json()["code"] == "not_found", missing

            farm.set_camera_fault(0, "down")  # the camera answers 502
            down = http.get(relay(cam.pk, "stream"))
            assert down.status_code == 502 and down.json()["detail"] == "camera answered HTTP 502"
            assert down.headers["x-camera-status"] == "offline; camera answered HTTP 502"
            farm.set_camera_fault(0, None)


def test_the_schema_has_no_key_twice(admin):
    # Swagger UI refused the whole schema ("duplicated mapping key"): the camera endpoints'
    # extra "200" (a string) sat beside ninja's 200 (an integer) in one responses object.
    twice = []

    def keep(pairs):
        keys = [key for key, _ in pairs]
        twice.extend(key for key in set(keys) if keys.count(key) > 1)
        return dict(pairs)

    json.loads(admin.get("/api/v1/openapi.json").content, object_pairs_hook=keep)
    assert twice == []


@pytest.mark.django_db
def test_a_printer_added_or_moved_through_the_api_gets_the_camera_it_reports(admin):
    # As the form's "Saved" does: Moonraker's webcam list, OctoPrint's webcam settings.
    with running_farm(count=2, protocol="mixed", speed=60) as farm:
        moonraker, octoprint = farm.printers
        body = {"name": "cam-api", "protocol": moonraker.protocol, "base_url": moonraker.base_url}
        created = post(admin, "/api/v1/printers", body)
        assert created.status_code == 201, created.content
        pk = created.json()["id"]
        snapshot_url, stream_url, _ = stored(pk)
        assert snapshot_url.startswith(moonraker.base_url.rsplit(":", 1)[0]) and stream_url
        assert created.json()["camera"]["source"] == "url"  # the relay, never the address
        assert (
            Printer.objects.get(pk=pk)
            .events.filter(message__startswith="Found the printer's camera")
            .exists()
        )

        # Moved to another printer: still the camera found, not the new one's (an admin's
        # own, or one found, is never replaced)…
        moved = patch(
            admin, f"/api/v1/printers/{pk}", {"protocol": "octoprint", "base_url": octoprint.base_url}
        )
        assert moved.status_code == 200, moved.content
        assert stored(pk)[:2] == (snapshot_url, stream_url)
        # …unless it was removed first: then the new printer's is filled in.
        patch(admin, f"/api/v1/printers/{pk}", {"camera_snapshot_url": None, "camera_stream_url": None})
        patch(admin, f"/api/v1/printers/{pk}", {"base_url": moonraker.base_url, "protocol": "moonraker"})
        assert stored(pk)[:2] == (snapshot_url, stream_url)
