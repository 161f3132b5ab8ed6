"""The driver registry and the request plumbing the HTTP drivers share (no network)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from printers.drivers import DRIVERS, PROTOCOLS, DriverConfig, DriverError, UnknownProtocol, get_driver
from printers.drivers.http import make_client
from printers.drivers.moonraker import MoonrakerDriver
from printers.drivers.octoprint import OctoPrintDriver
from printers.drivers.rest import MultipartFile, check_target, error_text, http_error
from printers.models import Printer


def test_registry_covers_every_printer_protocol() -> None:
    assert set(DRIVERS) == set(Printer.Protocol.values)
    assert PROTOCOLS == [
        ("moonraker", "Klipper (Moonraker)"),
        ("octoprint", "OctoPrint"),
        ("bambu", "Bambu Lab (LAN)"),
        ("prusalink", "Prusa (PrusaLink)"),
    ]


async def test_get_driver_builds_the_protocol_driver() -> None:
    async with make_client() as client:
        config = DriverConfig(base_url="http://127.0.0.1:7125/", api_key="k")
        driver = get_driver("moonraker", config, client)
        assert isinstance(driver, MoonrakerDriver)
        assert driver.base_url == "http://127.0.0.1:7125"
        assert isinstance(get_driver("octoprint", config, client), OctoPrintDriver)


async def test_unknown_protocol_is_a_permanent_driver_error() -> None:
    async with make_client() as client:
        with pytest.raises(UnknownProtocol, match="'repetier'") as caught:
            get_driver("repetier", DriverConfig(base_url="http://127.0.0.1"), client)
    assert isinstance(caught.value, DriverError)
    assert isinstance(caught.value, LookupError)
    assert caught.value.permanent


async def test_multipart_body_streams_exactly_its_content_length(tmp_path: Path) -> None:
    path = tmp_path / "part.gcode"
    path.write_bytes(b"G28\n" * 100_000)  # 400 kB: two chunks of 256 kB
    calls: list[tuple[int, int]] = []
    body = MultipartFile(
        path,
        filename='odd "name".gcode',
        fields={"print": "true"},
        progress=lambda sent, total: calls.append((sent, total)),
    )
    with path.open("rb") as file:
        chunks = [chunk async for chunk in body.stream(file)]
    data = b"".join(chunks)
    assert len(data) == int(body.headers["Content-Length"])
    assert max(len(chunk) for chunk in chunks) <= 256 * 1024
    assert calls == [(0, 400_000), (262_144, 400_000), (400_000, 400_000)]
    boundary = body.headers["Content-Type"].split("boundary=")[1]
    assert data.startswith(
        f'--{boundary}\r\nContent-Disposition: form-data; name="print"\r\n\r\ntrue\r\n'.encode()
    )
    assert b'filename="odd %22name%22.gcode"' in data
    assert data.endswith(f"\r\n--{boundary}--\r\n".encode())


def test_missing_upload_file_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="Cannot read nope.gcode") as caught:
        MultipartFile(tmp_path / "nope.gcode", filename="nope.gcode", fields={})
    assert caught.value.permanent


@pytest.mark.parametrize(
    ("response", "text"),
    [
        (
            httpx.Response(400, json={"error": {"code": 400, "message": "Klippy Disconnected"}}),
            "Klippy Disconnected",
        ),
        (httpx.Response(409, json={"error": "Printer is not operational"}), "Printer is not operational"),
        (httpx.Response(500, text="Internal\n  error"), "Internal error"),
        (httpx.Response(500, html="<html><body>Boom</body></html>"), ""),
        (httpx.Response(500), ""),
        (httpx.Response(500, json=["x"]), ""),
    ],
    ids=["moonraker", "octoprint", "plain-text", "html", "empty", "json-list"],
)
def test_error_text_takes_the_printers_own_words(response: httpx.Response, text: str) -> None:
    assert error_text(response) == text


def test_http_error_messages() -> None:
    server = http_error(httpx.Response(500, html="<html>x</html>"))
    assert server.message == "Printer returned HTTP 500"
    assert not server.permanent
    client = http_error(httpx.Response(415, json={"error": "Could not upload the file, invalid type"}))
    assert client.message == "Printer returned HTTP 415: Could not upload the file, invalid type"
    assert client.permanent


@pytest.mark.parametrize("value", [-1, 501, float("nan"), float("inf"), True, "200"])
def test_absurd_temperature_targets_are_refused(value: object) -> None:
    with pytest.raises(DriverError, match="out of range") as caught:
        check_target("Hotend", value)  # type: ignore[arg-type]
    assert caught.value.permanent


@pytest.mark.parametrize(
    "base_url", ["", "printer.local", "127.0.0.1:7125", "ftp://127.0.0.1", "http://[::1"]
)
@pytest.mark.parametrize("protocol", ["moonraker", "octoprint"])
async def test_invalid_address_is_a_permanent_driver_error(base_url: str, protocol: str) -> None:
    async with make_client() as client:
        with pytest.raises(DriverError, match="Invalid printer address") as caught:
            await get_driver(protocol, DriverConfig(base_url=base_url), client).fetch_status()
    assert caught.value.permanent
