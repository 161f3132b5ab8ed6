"""The printer simulator over real loopback HTTP: API shapes, print physics, faults, control, stats."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from printers.simulator import FAULTS, SimulatedFarm, running_farm

STATUS_QUERY = (
    "/printer/objects/query?webhooks&print_stats&virtual_sdcard&display_status"
    "&extruder=temperature,target&heater_bed=temperature,target"
)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def farm():
    """One Moonraker (index 0) and one OctoPrint (index 1) printer, 60x speed."""
    with running_farm(count=2, protocol="mixed", speed=60.0) as farm:
        yield farm


@pytest.fixture
def client():
    with httpx.Client(timeout=3.0) as client:
        yield client


def moonraker_status(client: httpx.Client, url: str) -> dict:
    response = client.get(url + STATUS_QUERY)
    assert response.status_code == 200
    return response.json()["result"]["status"]


def gcode(body: str, size: int = 0) -> bytes:
    data = body.encode()
    return data + b"G1 X1 Y1\n" * max(0, (size - len(data)) // 9)


# -- shapes -------------------------------------------------------------------------------


def test_farm_layout_and_names(farm):
    moon, octo = farm.printers
    assert (moon.index, moon.name, moon.protocol) == (0, "sim-moonraker-1", "moonraker")
    assert (octo.index, octo.name, octo.protocol) == (1, "sim-octoprint-2", "octoprint")
    assert moon.base_url == f"http://127.0.0.1:{moon.port}"
    assert farm.control_url.startswith("http://127.0.0.1:")
    assert len({moon.port, octo.port, int(farm.control_url.rsplit(":", 1)[1])}) == 3
    assert FAULTS == (
        "offline",
        "blackhole",
        "slow",
        "http500",
        "malformed",
        "not_ready",
        "reset_upload",
        "stall_upload",
        "disconnect",
        "garbled",
    )


def test_moonraker_status_query_returns_requested_objects_only(farm, client):
    url = farm.printers[0].base_url
    response = client.get(url + STATUS_QUERY)
    body = response.json()["result"]
    assert isinstance(body["eventtime"], float)
    status = body["status"]
    assert set(status) == {
        "webhooks",
        "print_stats",
        "virtual_sdcard",
        "display_status",
        "extruder",
        "heater_bed",
    }
    assert status["webhooks"] == {"state": "ready", "state_message": "Printer is ready"}
    assert status["print_stats"]["state"] == "standby"
    assert status["print_stats"]["filename"] == ""
    assert status["extruder"] == {"temperature": 22.0, "target": 0.0}
    assert status["heater_bed"] == {"temperature": 22.0, "target": 0.0}

    posted = client.post(
        url + "/printer/objects/query",
        json={"objects": {"print_stats": ["state", "bogus"], "extruder": None, "no_such_object": None}},
    )
    status = posted.json()["result"]["status"]
    assert status["print_stats"] == {"state": "standby"}
    assert {"temperature", "target", "power"} <= set(status["extruder"])
    assert "no_such_object" not in status

    info = client.get(url + "/server/info").json()["result"]
    assert info["klippy_connected"] is True
    assert info["klippy_state"] == "ready"
    assert "moonraker_version" in info and "api_version" in info
    printer_info = client.get(url + "/printer/info").json()["result"]
    assert printer_info["state"] == "ready"
    assert printer_info["software_version"]
    missing = client.get(url + "/no/such/endpoint")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == 404


def test_octoprint_printer_and_job_shapes(farm, client):
    url = farm.printers[1].base_url
    version = client.get(url + "/api/version").json()
    assert version["text"] == "OctoPrint 1.11.8"
    printer = client.get(url + "/api/printer?exclude=sd").json()
    assert "sd" not in printer
    assert printer["temperature"]["tool0"] == {"actual": 22.0, "target": 0.0, "offset": 0}
    assert printer["temperature"]["bed"]["actual"] == 22.0
    assert printer["state"]["text"] == "Operational"
    assert printer["state"]["flags"]["operational"] is True
    assert printer["state"]["flags"]["ready"] is True
    assert "sd" in client.get(url + "/api/printer").json()
    job = client.get(url + "/api/job").json()
    assert job["state"] == "Operational"
    assert job["job"]["file"]["name"] is None
    assert job["progress"]["completion"] is None
    connection = client.get(url + "/api/connection").json()
    assert connection["current"]["state"] == "Operational"


def test_idle_printer_reads_identical_values_on_consecutive_polls(farm, client):
    moon, octo = farm.printers
    first = moonraker_status(client, moon.base_url)
    time.sleep(0.05)
    assert moonraker_status(client, moon.base_url) == first
    a = client.get(octo.base_url + "/api/printer").json()
    b = client.get(octo.base_url + "/api/printer").json()
    assert a == b


# -- printing -----------------------------------------------------------------------------


def test_print_advances_with_speed_then_completes_and_persists(client):
    with running_farm(count=2, protocol="mixed", speed=600.0) as farm:
        moon, octo = farm.printers
        farm.start_print(0, "cube.gcode", duration=300)  # 0.5 s real
        farm.start_print(1, "cube.gcode", duration=300)
        first = moonraker_status(client, moon.base_url)
        assert first["print_stats"]["state"] == "printing"
        assert first["print_stats"]["filename"] == "cube.gcode"
        assert first["extruder"]["target"] == 210.0
        assert first["heater_bed"]["target"] == 60.0
        time.sleep(0.15)
        later = moonraker_status(client, moon.base_url)
        assert later["virtual_sdcard"]["progress"] > first["virtual_sdcard"]["progress"]
        job = client.get(octo.base_url + "/api/job").json()
        assert job["state"] == "Printing"
        assert 0 < job["progress"]["completion"] < 100  # a percentage
        assert job["progress"]["printTimeLeft"] > 0
        time.sleep(0.5)
        done = moonraker_status(client, moon.base_url)
        assert done["print_stats"]["state"] == "complete"
        assert done["print_stats"]["filename"] == "cube.gcode"
        assert done["virtual_sdcard"]["progress"] == 1.0
        assert done["extruder"]["target"] == 0.0
        assert moonraker_status(client, moon.base_url)["print_stats"]["state"] == "complete"
        job = client.get(octo.base_url + "/api/job").json()
        assert job["state"] == "Operational"
        assert job["progress"]["completion"] == 100
        assert job["job"]["file"]["name"] == "cube.gcode"


def test_temperatures_ramp_and_settle_on_target(client):
    # heater time constants shrink with sqrt(speed): 15 s / 1000 = 15 ms here
    with running_farm(count=1, protocol="moonraker", speed=1_000_000.0) as farm:
        url = farm.printers[0].base_url
        response = client.post(url + "/printer/gcode/script", json={"script": "M104 S200\nM140 S60"})
        assert response.json() == {"result": "ok"}
        time.sleep(0.25)
        status = moonraker_status(client, url)
        assert status["extruder"] == {"temperature": 200.0, "target": 200.0}
        assert status["heater_bed"] == {"temperature": 60.0, "target": 60.0}
        client.post(
            url + "/printer/gcode/script",
            json={"script": "SET_HEATER_TEMPERATURE HEATER=extruder TARGET=0"},
        )
        status = moonraker_status(client, url)
        assert status["extruder"]["target"] == 0.0
        assert status["extruder"]["temperature"] <= 200.0


def test_moonraker_pause_resume_cancel_and_busy_rules(farm, client):
    url = farm.printers[0].base_url
    assert client.post(url + "/printer/print/pause").status_code == 400  # nothing printing
    farm.start_print(0, "part.gcode", duration=3600)
    assert client.post(url + "/printer/print/start?filename=part.gcode").status_code == 400  # busy
    assert client.post(url + "/printer/print/pause").json() == {"result": "ok"}
    paused = moonraker_status(client, url)
    assert paused["print_stats"]["state"] == "paused"
    time.sleep(0.1)
    assert (
        moonraker_status(client, url)["print_stats"]["print_duration"]
        == paused["print_stats"]["print_duration"]
    )
    assert client.post(url + "/printer/print/pause").status_code == 400  # already paused
    assert client.post(url + "/printer/print/resume").status_code == 200
    assert moonraker_status(client, url)["print_stats"]["state"] == "printing"
    assert client.post(url + "/printer/print/cancel").status_code == 200
    cancelled = moonraker_status(client, url)
    assert cancelled["print_stats"]["state"] == "cancelled"
    assert cancelled["extruder"]["target"] == 0.0
    assert moonraker_status(client, url)["print_stats"]["state"] == "cancelled"  # persists
    missing = client.post(url + "/printer/print/start", json={"filename": "nope.gcode"})
    assert missing.status_code == 400
    assert "error" in missing.json()


def test_octoprint_pause_resume_cancel(farm, client):
    url = farm.printers[1].base_url
    assert client.post(url + "/api/job", json={"command": "cancel"}).status_code == 409
    farm.start_print(1, "part.gcode", duration=3600)
    assert client.post(url + "/api/job", json={"command": "start"}).status_code == 409
    assert client.post(url + "/api/job", json={"command": "pause", "action": "pause"}).status_code == 204
    state = client.get(url + "/api/printer").json()["state"]
    assert state["text"] == "Paused"
    assert state["flags"]["paused"] is True
    assert client.post(url + "/api/job", json={"command": "pause"}).status_code == 204  # toggle
    assert client.get(url + "/api/job").json()["state"] == "Printing"
    assert client.post(url + "/api/job", json={"command": "cancel"}).status_code == 204
    job = client.get(url + "/api/job").json()
    assert job["state"] == "Operational"
    assert job["job"]["file"]["name"] == "part.gcode"
    assert client.post(url + "/api/job", json={"command": "pause", "action": "resume"}).status_code == 409


def test_set_temperatures_on_octoprint(farm, client):
    url = farm.printers[1].base_url
    tool = client.post(url + "/api/printer/tool", json={"command": "target", "targets": {"tool0": 215}})
    assert tool.status_code == 204
    assert client.post(url + "/api/printer/bed", json={"command": "target", "target": 60}).status_code == 204
    temps = client.get(url + "/api/printer").json()["temperature"]
    assert temps["tool0"]["target"] == 215.0
    assert temps["bed"]["target"] == 60.0
    bad = client.post(url + "/api/printer/tool", json={"command": "target", "targets": {"tool0": "hot"}})
    assert bad.status_code == 400
    assert "error" in bad.json()


def test_moonraker_emergency_stop_then_firmware_restart(farm, client):
    url = farm.printers[0].base_url
    farm.start_print(0, "part.gcode", duration=3600)
    assert client.post(url + "/printer/emergency_stop").json() == {"result": "ok"}
    webhooks = moonraker_status(client, url)["webhooks"]
    assert webhooks == {"state": "shutdown", "state_message": "Emergency stop"}
    assert client.get(url + "/server/info").json()["result"]["klippy_state"] == "shutdown"
    assert client.post(url + "/printer/print/start?filename=part.gcode").status_code == 400
    assert client.post(url + "/printer/gcode/script", json={"script": "M104 S200"}).status_code == 400
    assert client.post(url + "/printer/firmware_restart").status_code == 200
    time.sleep(0.1)  # 2 simulated seconds at 60x
    status = moonraker_status(client, url)
    assert status["webhooks"]["state"] == "ready"
    assert status["print_stats"]["state"] == "standby"


def test_octoprint_m112_disconnects_until_reconnect(farm, client):
    url = farm.printers[1].base_url
    farm.start_print(1, "part.gcode", duration=3600)
    assert client.post(url + "/api/printer/command", json={"command": "M112"}).status_code == 204
    refused = client.get(url + "/api/printer")
    assert refused.status_code == 409
    assert refused.json() == {"error": "Printer is not operational"}
    job = client.get(url + "/api/job").json()
    assert job["state"] == "Offline after error"
    assert job["error"]
    assert client.get(url + "/api/printer/error").json()["error"]
    assert client.post(url + "/api/job", json={"command": "start"}).status_code == 409
    assert client.post(url + "/api/connection", json={"command": "connect"}).status_code == 204
    assert client.get(url + "/api/printer").json()["state"]["text"] == "Operational"


def test_api_key_required_when_configured(client):
    with running_farm(count=2, protocol="mixed", api_key="s3cret") as farm:
        moon, octo = (p.base_url for p in farm.printers)
        denied = client.get(moon + STATUS_QUERY)
        assert denied.status_code == 401
        assert denied.json()["error"]["code"] == 401
        assert client.get(moon + STATUS_QUERY, headers={"X-Api-Key": "wrong"}).status_code == 401
        assert client.get(moon + "/access/info").json()["result"]["login_required"] is True
        assert client.get(moon + STATUS_QUERY, headers={"X-Api-Key": "s3cret"}).status_code == 200
        assert client.get(octo + "/api/printer").status_code == 403
        assert client.get(octo + "/api/printer", headers={"X-Api-Key": "s3cret"}).status_code == 200


# -- files --------------------------------------------------------------------------------


def test_moonraker_upload_streams_to_disk_with_metadata(farm, client):
    moon = farm.printers[0]
    body = gcode(
        "; generated by PrusaSlicer 2.8.1 on 2026-01-01 at 10:00:00 UTC\nM104 S215\nM140 S65\n", 300_000
    )
    body += b"; estimated printing time (normal mode) = 1h 2m 3s\n"
    response = client.post(
        moon.base_url + "/server/files/upload",
        files={"file": ("benchy.gcode", body, "application/octet-stream")},
        data={
            "root": "gcodes",
            "path": "parts",
            "checksum": hashlib.sha256(body).hexdigest(),
            "print": "true",
        },
    )
    assert response.status_code == 201
    result = response.json()["result"]
    assert result["item"]["path"] == "parts/benchy.gcode"
    assert result["item"]["size"] == len(body)
    assert result["print_started"] is True
    assert result["action"] == "create_file"
    assert response.headers["Location"] == "/server/files/gcodes/parts/benchy.gcode"
    assert moon.file_path("parts/benchy.gcode").read_bytes() == body
    assert not list(moon.storage.glob(".tmp/.sim-upload-*"))

    listed = client.get(moon.base_url + "/server/files/list?root=gcodes").json()["result"]
    assert [f["path"] for f in listed] == ["parts/benchy.gcode"]
    meta = client.get(moon.base_url + "/server/files/metadata?filename=parts/benchy.gcode").json()["result"]
    assert meta["estimated_time"] == 3723
    assert meta["size"] == len(body)
    assert meta["slicer"] == "PrusaSlicer"
    status = moonraker_status(client, moon.base_url)
    assert status["print_stats"]["filename"] == "parts/benchy.gcode"
    assert status["extruder"]["target"] == 215.0
    assert status["heater_bed"]["target"] == 65.0

    overwrite = client.post(
        moon.base_url + "/server/files/upload",
        files={"file": ("benchy.gcode", b"G28\n")},
        data={"path": "parts"},
    )
    assert overwrite.status_code == 403
    assert overwrite.json()["error"]["message"] == "File is loaded, upload not permitted"
    bad_sum = client.post(
        moon.base_url + "/server/files/upload",
        files={"file": ("other.gcode", b"G28\n")},
        data={"checksum": "0" * 64},
    )
    assert bad_sum.status_code == 422
    assert not moon.file_path("other.gcode").exists()
    busy = client.post(
        moon.base_url + "/server/files/upload",
        files={"file": ("next.gcode", b";TIME:60\nG28\n")},
        data={"print": "true"},
    )
    assert busy.status_code == 201
    assert busy.json()["result"]["print_started"] is False


def test_octoprint_upload_select_and_print(farm, client):
    octo = farm.printers[1]
    body = gcode(";FLAVOR:Marlin\n;TIME:900\nM140 S55\nM104 S205\n", 100_000)
    response = client.post(
        octo.base_url + "/api/files/local",
        files={"file": ("cube.gcode", body)},
        data={"print": "true"},
    )
    assert response.status_code == 201
    data = response.json()
    assert data["files"]["local"]["path"] == "cube.gcode"
    assert data["done"] is True
    assert (data["effectiveSelect"], data["effectivePrint"]) == (True, True)
    assert octo.file_path("cube.gcode").read_bytes() == body
    job = client.get(octo.base_url + "/api/job").json()
    assert job["state"] == "Printing"
    assert job["job"]["estimatedPrintTime"] == 900
    assert job["job"]["file"]["size"] == len(body)

    second = client.post(
        octo.base_url + "/api/files/local", files={"file": ("b.gcode", b"G28\n")}, data={"print": "true"}
    )
    assert second.status_code == 201
    assert second.json()["effectivePrint"] is False  # busy: stored, not started
    assert (
        client.post(
            octo.base_url + "/api/files/local/b.gcode", json={"command": "select", "print": True}
        ).status_code
        == 409
    )
    assert (
        client.post(octo.base_url + "/api/files/local/none.gcode", json={"command": "select"}).status_code
        == 404
    )
    overwrite = client.post(octo.base_url + "/api/files/local", files={"file": ("cube.gcode", b"G28\n")})
    assert overwrite.status_code == 409
    names = [f["name"] for f in client.get(octo.base_url + "/api/files").json()["files"]]
    assert names == ["b.gcode", "cube.gcode"]
    client.post(octo.base_url + "/api/job", json={"command": "cancel"})
    assert (
        client.post(
            octo.base_url + "/api/files/local/b.gcode", json={"command": "select", "print": True}
        ).status_code
        == 204
    )
    assert client.get(octo.base_url + "/api/job").json()["job"]["file"]["name"] == "b.gcode"


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1])
def test_offline_refuses_connections_then_recovers_on_same_port(farm, client, index):
    printer = farm.printers[index]
    port = printer.port
    path = STATUS_QUERY if index == 0 else "/api/printer"
    assert client.get(printer.base_url + path).status_code == 200  # leaves a keep-alive connection
    farm.set_fault(index, "offline")
    with pytest.raises(httpx.ConnectError):
        client.get(printer.base_url + path)
    with pytest.raises(httpx.ConnectError):
        httpx.get(printer.base_url + path, timeout=1)
    farm.set_fault(index, None)
    assert printer.port == port
    assert client.get(printer.base_url + path).status_code == 200


def test_blackhole_hangs_until_client_gives_up(farm):
    url = farm.printers[0].base_url
    farm.set_fault(0, "blackhole")
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url + STATUS_QUERY, timeout=httpx.Timeout(0.3, connect=1.0))
    assert 0.25 < time.monotonic() - started < 2
    farm.set_fault(0, "none")
    assert httpx.get(url + STATUS_QUERY, timeout=2).status_code == 200


def test_blackhole_resets_held_requests_once_cleared(farm):
    url = farm.printers[1].base_url
    farm.set_fault(1, "blackhole")
    with httpx.Client(timeout=httpx.Timeout(20.0, connect=1.0)) as slow_client, ThreadPoolExecutor(1) as pool:
        held = pool.submit(slow_client.get, url + "/api/printer")
        time.sleep(0.3)
        assert not held.done()
        farm.set_fault(1, None)
        with pytest.raises(httpx.TransportError):
            held.result(timeout=5)
    assert httpx.get(url + "/api/printer", timeout=2).status_code == 200


def test_print_listener_hears_starts_and_ends_before_the_reply(farm, client):
    heard = []
    farm.add_print_listener(lambda entry: heard.append((entry["filename"], entry["outcome"])))
    farm.add_upload_listener(lambda index, path: heard.append((index, path)))
    url = farm.printers[0].base_url
    client.post(url + "/server/files/upload", files={"file": ("l.gcode", b"G28\n")}, data={"print": "true"})
    assert heard == [(0, "l.gcode"), ("l.gcode", "in_progress")]
    heard.clear()
    client.post(url + "/printer/print/cancel")
    assert heard == [("l.gcode", "cancelled")]


def test_a_fault_set_by_an_upload_listener_hits_the_next_request(farm, client):
    farm.add_upload_listener(lambda index, path: farm.set_fault(index, "garbled"))
    url = farm.printers[1].base_url
    upload = client.post(url + "/api/files/local", files={"file": ("n.gcode", b"G28\n")})
    assert upload.status_code == 201  # this reply is intact
    start = client.post(url + "/api/files/local/n.gcode", json={"command": "select", "print": True})
    assert start.status_code == 200 and start.content == b'{"temperature": {"tool0": {"actual": 21'
    assert farm.print_log(1)[0]["outcome"] == "in_progress"


def test_slow_replies_after_delay(farm, client):
    url = farm.printers[1].base_url
    farm.set_fault(1, "slow", delay=0.4)
    started = time.monotonic()
    response = client.get(url + "/api/printer")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4


@pytest.mark.parametrize("index", [0, 1])
def test_http500_and_malformed(farm, client, index):
    printer = farm.printers[index]
    path = STATUS_QUERY if index == 0 else "/api/printer"
    farm.set_fault(index, "http500")
    response = client.get(printer.base_url + path)
    assert response.status_code == 500
    assert "<html>" in response.text
    farm.set_fault(index, "malformed")
    response = client.get(printer.base_url + path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_not_ready(farm, client):
    moon, octo = farm.printers
    farm.set_fault(0, "not_ready")
    farm.set_fault(1, "not_ready")
    info = client.get(moon.base_url + "/server/info").json()["result"]
    assert info["klippy_connected"] is False
    assert info["klippy_state"] == "disconnected"
    # Klippy never connected since Moonraker started: the endpoints Klippy registers are not
    # routed yet, Moonraker's own print commands say it has no Klippy.
    for path in (STATUS_QUERY, "/printer/info"):
        query = client.get(moon.base_url + path)
        assert query.status_code == 404
        assert query.json() == {"error": {"code": 404, "message": "Not Found"}}
    for path in ("/printer/emergency_stop", "/printer/gcode/script?script=M104%20S200"):
        assert client.post(moon.base_url + path).status_code == 404
    pause = client.post(moon.base_url + "/printer/print/pause")
    assert pause.status_code == 503
    assert pause.json() == {"error": {"code": 503, "message": "Klippy Host not connected"}}
    printer = client.get(octo.base_url + "/api/printer")
    assert printer.status_code == 409
    assert printer.json() == {"error": "Printer is not operational"}
    job = client.get(octo.base_url + "/api/job")
    assert job.status_code == 200
    assert job.json()["state"] == "Offline"
    farm.set_fault(0, None)
    assert client.get(moon.base_url + STATUS_QUERY).status_code == 200


@pytest.mark.parametrize(("index", "path"), [(0, "/server/files/upload"), (1, "/api/files/local")])
def test_reset_upload_drops_connection_and_stores_nothing(farm, client, index, path):
    printer = farm.printers[index]
    farm.set_fault(index, "reset_upload")
    with pytest.raises(httpx.TransportError):
        client.post(printer.base_url + path, files={"file": ("big.gcode", b"G1 X1\n" * 400_000)})
    assert not printer.file_path("big.gcode").exists()
    assert not [p for p in printer.storage.rglob("*") if p.is_file()]
    status_path = STATUS_QUERY if index == 0 else "/api/printer"
    assert client.get(printer.base_url + status_path).status_code == 200  # only uploads are hit


@pytest.mark.parametrize("index", [0, 1])
def test_garbled_carries_out_the_request_then_answers_garbage(farm, client, index):
    printer = farm.printers[index]
    farm.set_fault(index, "garbled")
    if index == 0:
        response = client.post(
            printer.base_url + "/server/files/upload",
            files={"file": ("g.gcode", b";TIME:600\nG28\n")},
            data={"print": "true"},
        )
    else:
        response = client.post(
            printer.base_url + "/api/files/local",
            files={"file": ("g.gcode", b";TIME:600\nG28\n")},
            data={"print": "true"},
        )
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    # It really stored the file and started the print.
    assert printer.file_path("g.gcode").is_file()
    assert [(p["filename"], p["outcome"]) for p in farm.print_log(index)] == [("g.gcode", "in_progress")]
    cancel = ("/printer/print/cancel", None) if index == 0 else ("/api/job", {"command": "cancel"})
    garbage = client.post(printer.base_url + cancel[0], json=cancel[1])
    assert garbage.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        garbage.json()
    assert farm.print_log(index)[0]["outcome"] == "cancelled"
    farm.set_fault(index, "malformed")  # malformed, unlike garbled, does nothing
    client.post(printer.base_url + "/printer/print/start?filename=g.gcode")
    client.post(printer.base_url + "/api/files/local/g.gcode", json={"command": "select", "print": True})
    assert len(farm.print_log(index)) == 1


def test_moonraker_disconnect_ends_the_print_and_comes_back_without_it(farm, client):
    moon = farm.printers[0]
    url = moon.base_url
    upload = client.post(
        url + "/server/files/upload",
        files={"file": ("d.gcode", b";TIME:3600\nG28\n")},
        data={"print": "true"},
    )
    assert upload.json()["result"]["print_started"] is True
    farm.set_fault(0, "disconnect")
    info = client.get(url + "/server/info").json()["result"]
    assert (info["klippy_connected"], info["klippy_state"]) == (False, "disconnected")
    query = client.get(url + STATUS_QUERY)
    assert query.status_code == 503
    assert query.json() == {"error": {"code": 503, "message": "Klippy Host not connected"}}
    assert client.post(url + "/printer/print/start?filename=d.gcode").status_code == 503
    assert client.get(url + "/server/files/list").status_code == 200  # Moonraker itself answers
    (entry,) = farm.print_log(0)
    assert entry["outcome"] == "klippy_disconnect"
    assert entry["ended"] is not None
    farm.set_fault(0, None)
    info = client.get(url + "/server/info").json()["result"]
    assert (info["klippy_connected"], info["klippy_state"]) == (True, "ready")
    status = moonraker_status(client, url)
    assert status["webhooks"]["state"] == "ready"
    assert status["print_stats"]["state"] == "standby"
    assert status["print_stats"]["filename"] == ""
    assert len(farm.print_log(0)) == 1  # back without the print


def test_octoprint_disconnect_ends_the_print_and_comes_back_without_it(farm, client):
    octo = farm.printers[1]
    url = octo.base_url
    client.post(
        url + "/api/files/local", files={"file": ("d.gcode", b";TIME:3600\nG28\n")}, data={"print": "true"}
    )
    farm.set_fault(1, "disconnect")
    printer = client.get(url + "/api/printer")
    assert printer.status_code == 409
    assert printer.json() == {"error": "Printer is not operational"}
    job = client.get(url + "/api/job").json()
    assert job["state"] == "Offline after error"
    assert job["error"].startswith("SerialException: ")
    assert client.post(url + "/api/job", json={"command": "start"}).status_code == 409
    assert client.post(url + "/api/connection", json={"command": "connect"}).status_code == 204
    assert client.get(url + "/api/printer").status_code == 409  # the port is still gone
    assert farm.print_log(1)[0]["outcome"] == "error"
    farm.set_fault(1, None)
    state = client.get(url + "/api/printer").json()["state"]
    assert state["text"] == "Operational"
    assert state["flags"]["error"] is False and state["flags"]["closedOrError"] is False
    job = client.get(url + "/api/job").json()
    assert job["state"] == "Operational"
    assert job["job"]["file"]["name"] == "d.gcode"  # still selected
    assert (job["progress"]["completion"] or 0) < 100
    assert "error" not in job
    assert len(farm.print_log(1)) == 1


def test_disconnect_while_idle_keeps_the_finished_print(client):
    with running_farm(count=2, protocol="mixed", speed=600.0) as farm:
        farm.start_print(0, "a.gcode", duration=60)  # 0.1 s real
        farm.start_print(1, "a.gcode", duration=60)
        deadline = time.monotonic() + 10
        while any(p["outcome"] == "in_progress" for p in farm.print_log()) and time.monotonic() < deadline:
            time.sleep(0.05)
        farm.set_fault(0, "disconnect")
        farm.set_fault(1, "disconnect")
        assert [p["outcome"] for p in farm.print_log()] == ["completed", "completed"]


def test_print_log_records_every_start_and_end(client):
    with running_farm(count=2, protocol="mixed", speed=600.0) as farm:
        moon, octo = (p.base_url for p in farm.printers)
        before = time.time()
        farm.start_print(0, "done.gcode", duration=60)  # ends in 0.1 s real
        farm.start_print(1, "cancel.gcode", duration=36_000)
        assert client.post(octo + "/api/job", json={"command": "cancel"}).status_code == 204
        farm.start_print(1, "estop.gcode", duration=36_000)
        assert client.post(octo + "/api/printer/command", json={"command": "M112"}).status_code == 204
        deadline = time.monotonic() + 10
        while farm.print_log(0)[0]["outcome"] == "in_progress" and time.monotonic() < deadline:
            time.sleep(0.05)
        farm.start_print(0, "estop.gcode", duration=36_000)
        assert client.post(moon + "/printer/emergency_stop").status_code == 200
        client.post(moon + "/printer/firmware_restart")
        deadline = time.monotonic() + 10
        while moonraker_status(client, moon)["webhooks"]["state"] != "ready" and time.monotonic() < deadline:
            time.sleep(0.05)
        farm.start_print(0, "restart.gcode", duration=36_000)
        client.post(moon + "/printer/gcode/script", json={"script": "FIRMWARE_RESTART"})
        log = farm.print_log()
        assert [(p["index"], p["filename"], p["outcome"]) for p in log] == [
            (0, "done.gcode", "completed"),
            (1, "cancel.gcode", "cancelled"),
            (1, "estop.gcode", "error"),
            (0, "estop.gcode", "klippy_shutdown"),
            (0, "restart.gcode", "klippy_disconnect"),
        ]
        assert {p["protocol"] for p in log} == {"moonraker", "octoprint"}
        assert all(before - 0.01 <= p["started"] <= p["ended"] <= time.time() + 0.01 for p in log)
        done = log[0]
        assert done["ended"] - done["started"] == pytest.approx(0.1, abs=0.02)  # 60 sim s at 600x
        farm.set_fault(1, None)
        assert client.post(octo + "/api/connection", json={"command": "connect"}).status_code == 204
        farm.start_print(1, "running.gcode", duration=36_000)
        running = farm.print_log(1)[-1]
        assert (running["outcome"], running["ended"]) == ("in_progress", None)
        over_http = client.get(farm.control_url + "/prints").json()
        assert [p["filename"] for p in over_http] == [p["filename"] for p in farm.print_log()]
        one = client.get(farm.control_url + "/printers/1/prints").json()
        assert [(p["job_id"], p["outcome"]) for p in one] == [
            (1, "cancelled"),
            (2, "error"),
            (3, "in_progress"),
        ]
        assert client.get(farm.control_url + "/printers/7/prints").status_code == 404


def test_moonraker_job_history_as_a_client_reads_it(client):
    with running_farm(count=1, protocol="moonraker", speed=600.0) as farm:
        url = farm.printers[0].base_url
        assert client.get(url + "/server/history/list").json() == {"result": {"count": 0, "jobs": []}}
        body = b"; generated by PrusaSlicer 2.8.1 on 2026-01-01\nM104 S215\n;TIME:60\nG28\n"
        for name in ("first.gcode", "second.gcode"):
            response = client.post(
                url + "/server/files/upload", files={"file": (name, body)}, data={"print": "true"}
            )
            assert response.json()["result"]["print_started"] is True
            if name == "first.gcode":
                time.sleep(0.3)  # 60 sim s take 0.1 s: done
        history = client.get(url + "/server/history/list").json()["result"]
        assert history["count"] == 2
        newest, oldest = history["jobs"]
        assert (newest["job_id"], newest["filename"], newest["status"]) == (
            "000002",
            "second.gcode",
            "in_progress",
        )
        assert newest["end_time"] is None
        assert (oldest["job_id"], oldest["status"], oldest["exists"]) == ("000001", "completed", True)
        assert oldest["print_duration"] == pytest.approx(60.0)
        assert oldest["total_duration"] >= 60.0
        assert oldest["filament_used"] > 0
        assert oldest["start_time"] < oldest["end_time"] <= newest["start_time"]
        assert oldest["metadata"]["estimated_time"] == 60
        assert "job_id" not in oldest["metadata"] and "print_start_time" not in oldest["metadata"]
        assert set(oldest) >= {
            "job_id",
            "exists",
            "filename",
            "status",
            "start_time",
            "end_time",
            "print_duration",
            "total_duration",
            "filament_used",
            "metadata",
        }
        client.post(url + "/printer/print/cancel")
        asc = client.get(url + "/server/history/list", params={"order": "asc", "limit": 1}).json()["result"]
        assert [j["job_id"] for j in asc["jobs"]] == ["000001"]
        assert asc["count"] == 1
        page = client.get(url + "/server/history/list", params={"start": 1}).json()["result"]
        assert [j["job_id"] for j in page["jobs"]] == ["000001"]
        since = client.get(url + "/server/history/list", params={"since": oldest["start_time"]}).json()
        assert [j["job_id"] for j in since["result"]["jobs"]] == ["000002"]
        before = client.get(url + "/server/history/list", params={"before": newest["start_time"]}).json()
        assert [j["job_id"] for j in before["result"]["jobs"]] == ["000001"]
        job = client.get(url + "/server/history/job", params={"uid": "000002"}).json()["result"]["job"]
        assert (job["status"], job["filename"]) == ("cancelled", "second.gcode")
        assert job["end_time"] is not None
        missing = client.get(url + "/server/history/job", params={"uid": "00000F"})
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "Invalid job uid: 00000F"
        assert client.get(url + "/server/history/list", params={"limit": "x"}).status_code == 400
        # The history is Moonraker's own: it answers while Klippy is disconnected.
        farm.set_fault(0, "disconnect")
        assert client.get(url + "/server/history/list").json()["result"]["count"] == 2


def test_set_fault_rejects_unknown_names(farm):
    with pytest.raises(ValueError):
        farm.set_fault(0, "on_fire")
    with pytest.raises(ValueError):
        farm.set_fault(5, "offline")


def test_non_loopback_host_refused():
    with pytest.raises(ValueError, match="loopback"):
        SimulatedFarm(count=1, host="0.0.0.0")


# -- control API and stats ----------------------------------------------------------------


def test_control_api(farm, client):
    control = farm.control_url
    printers = client.get(control + "/printers").json()
    assert [p["name"] for p in printers] == ["sim-moonraker-1", "sim-octoprint-2"]
    assert {"index", "name", "protocol", "port", "base_url", "state", "fault"} <= set(printers[0])
    assert printers[0]["state"] == "idle"
    assert printers[0]["fault"] is None

    fault = client.post(control + "/printers/1/fault", json={"fault": "http500", "delay": 1.0})
    assert fault.status_code == 200
    assert fault.json()["fault"] == "http500"
    assert client.get(farm.printers[1].base_url + "/api/printer").status_code == 500
    assert client.post(control + "/printers/1/fault", json={"fault": None}).json()["fault"] is None
    assert client.post(control + "/printers/1/fault", json={"fault": "bogus"}).status_code == 400
    for name in ("disconnect", "garbled"):
        assert client.post(control + "/printers/1/fault", json={"fault": name}).json()["fault"] == name
    assert client.post(control + "/printers/1/fault", json={"fault": None}).json()["state"] == "idle"
    assert client.post(control + "/printers/9/fault", json={"fault": None}).status_code == 404

    started = client.post(control + "/printers/0/print", json={"filename": "x.gcode", "duration": 1000})
    assert started.status_code == 200
    assert started.json()["state"] == "printing"
    assert moonraker_status(client, farm.printers[0].base_url)["print_stats"]["filename"] == "x.gcode"

    stats = client.get(control + "/stats").json()
    assert stats["status_requests"] >= 1
    reset = client.post(control + "/stats/reset").json()
    assert reset["requests"] == 0


def test_klippers_print_clock_starts_at_the_first_extrusion(farm, client):
    """klippy/extras/print_stats.py: print_duration leaves out the time before the first
    extrusion (all of it on a host without an extruder); total_duration does not."""
    control = farm.control_url
    assert client.post(control + "/printers/0/extrusion", json={"first_after": -1}).status_code == 400
    assert client.post(control + "/printers/0/extrusion", json={}).status_code == 400
    later = client.post(control + "/printers/0/extrusion", json={"first_after": 1e9})
    assert later.json()["first_extrusion"] == 1e9
    client.post(control + "/printers/0/print", json={"filename": "x.gcode", "duration": 36000})
    stats = moonraker_status(client, farm.printers[0].base_url)["print_stats"]
    assert stats["print_duration"] == 0.0 and stats["filament_used"] == 0.0
    never = client.post(control + "/printers/0/extrusion", json={"first_after": None})
    assert never.json()["first_extrusion"] is None
    at_once = client.post(control + "/printers/0/extrusion", json={"first_after": 0})
    assert at_once.json()["first_extrusion"] == 0
    stats = moonraker_status(client, farm.printers[0].base_url)["print_stats"]
    assert 0 < stats["print_duration"] <= stats["total_duration"]


def test_stats_count_status_polls_and_split_faulted_ages(client):
    with running_farm(count=3, protocol="moonraker") as farm:
        farm.reset_stats()
        for p in farm.printers:
            client.get(p.base_url + STATUS_QUERY)
            client.get(p.base_url + "/server/info")
        farm.set_fault(2, "http500")
        client.get(farm.printers[2].base_url + STATUS_QUERY)
        time.sleep(0.6)  # two or more sampler ticks
        stats = farm.stats()
        assert stats["requests"] == 7
        assert stats["status_requests"] == 4
        assert stats["status_per_s"] > 0
        assert stats["elapsed"] >= 0.6
        assert stats["age"]["samples"] >= 6
        assert stats["age_healthy"]["samples"] == stats["age"]["samples"] - stats["age_faulted"]["samples"]
        assert stats["age_faulted"]["samples"] >= 2
        assert 0.2 < stats["age"]["max"] < 2
        assert stats["age_healthy"]["p50"] <= stats["age_healthy"]["p99"] <= stats["age_healthy"]["max"]


# -- lifecycle ----------------------------------------------------------------------------


async def test_stop_releases_hung_requests_without_leaking_tasks():
    farm = SimulatedFarm(count=2, protocol="mixed")
    await farm.start()
    farm.set_fault(0, "blackhole")
    farm.set_fault(1, "slow", delay=30)
    before = len(asyncio.all_tasks())
    async with httpx.AsyncClient(timeout=10) as client:
        hung = [
            asyncio.create_task(client.get(farm.printers[0].base_url + STATUS_QUERY)),
            asyncio.create_task(client.get(farm.printers[1].base_url + "/api/printer")),
        ]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await farm.stop()
        assert time.monotonic() - started < 1.5
        results = await asyncio.gather(*hung, return_exceptions=True)
    assert all(isinstance(r, httpx.TransportError) for r in results)
    assert len(asyncio.all_tasks()) <= before - 1  # only this test's task; the sampler is gone


async def find_free_range(count: int) -> SimulatedFarm:
    """A farm on a fixed base port; retried because a port free a moment ago can be taken."""
    for _ in range(5):
        probe = SimulatedFarm(count=1, protocol="moonraker")
        await probe.start()
        base = probe.printers[0].port
        await probe.stop()
        farm = SimulatedFarm(count=count, protocol="octoprint", base_port=base, control_port=0)
        try:
            await farm.start()
        except OSError:
            continue
        return farm
    raise AssertionError("no free range of ports found in 5 tries")


async def test_fixed_base_port_layout():
    farm = await find_free_range(3)
    base = farm.printers[0].port
    try:
        assert [p.port for p in farm.printers] == [base, base + 1, base + 2]
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"http://127.0.0.1:{base + 2}/api/version")
            assert response.status_code == 200
    finally:
        await farm.stop()


def test_management_command_writes_printers_file_and_stops_on_sigterm(tmp_path):
    printers_file = tmp_path / "printers.json"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "printfarm.test_settings"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "simulate_printers",
            "--count",
            "3",
            "--port",
            "0",
            "--printers-file",
            str(printers_file),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not printers_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert printers_file.exists(), proc.stderr.read() if proc.poll() is not None else "timed out"
        printers = json.loads(printers_file.read_text())
        assert [p["protocol"] for p in printers] == ["moonraker", "octoprint", "moonraker"]
        assert httpx.get(printers[1]["base_url"] + "/api/version", timeout=2).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "sim-octoprint-2" in out
    assert "control API: http://127.0.0.1:" in out


def test_management_command_refuses_non_loopback_host():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "printfarm.test_settings"}
    proc = subprocess.run(
        [sys.executable, "manage.py", "simulate_printers", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "loopback" in proc.stderr
