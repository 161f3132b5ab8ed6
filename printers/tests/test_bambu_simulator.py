"""The simulated Bambu printer against a third-party client (bambulabs_api, paho-mqtt + ftplib)
and raw MQTT/FTPS over real loopback TLS sockets: the wire contract drivers are written to."""

from __future__ import annotations

import ftplib
import json
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bambulabs_api import GcodeState, Printer
from bambulabs_api.ftp_client import PrinterFTPClient
from bambulabs_api.mqtt_client import PrinterMQTTClient
from cryptography import x509
from cryptography.x509.oid import NameOID

from jobs.tests.threemf_samples import SamplePlate, two_plates, write_threemf
from printers.management.commands.simulate_printers import _write_printers_file
from printers.simulator import SimulatedFarm, running_farm
from printers.simulator.bambu import DEFAULT_ACCESS_CODE, BambuDevice
from printers.simulator.bambu_state import ERR_VERIFICATION_FAILED, FUN_SIGNATURE_REQUIRED
from printers.simulator.printer import SimPrinter
from printfarm.testing import eventually_sync

WAIT = 20.0  # seconds a broken test may hang before it fails; measures nothing
X1, P1 = 0, 1  # printer indexes in a two-printer Bambu farm (X1C full pushes, P1S deltas)


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    return eventually_sync(predicate, timeout)


@pytest.fixture
def bambu_sim_2_printers() -> Iterator[SimulatedFarm]:
    with running_farm(count=2, protocol="bambu", speed=600.0) as farm:
        yield farm


# -- a raw MQTT 3.1.1 client over TLS ----------------------------------------------------------


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed; the CN is checked by hand below
    return context


def _str(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack(">H", len(raw)) + raw


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class RawClient:
    def __init__(self, printer: SimPrinter) -> None:
        raw = socket.create_connection((printer.host, printer.port), timeout=WAIT)
        self.sock = _client_context().wrap_socket(raw)
        self.buffer = b""

    def send(self, first: int, body: bytes) -> None:
        self.sock.sendall(bytes([first]) + _length(len(body)) + body)

    def connect(self, password: str, *, keepalive: int = 60, username: str = "bblp") -> int:
        body = _str("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", keepalive) + _str("test")
        self.send(0x10, body + _str(username) + _str(password))
        kind, body = self.read()
        assert kind == 2
        return body[1]

    def subscribe(self, topic: str) -> None:
        self.send(0x82, b"\x00\x01" + _str(topic) + b"\x00")
        assert self.read()[0] == 9

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        self.send(0x30, _str(topic) + json.dumps(message).encode())

    def _recv(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read(self) -> tuple[int, bytes]:
        first = self._recv(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._recv(1)[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first >> 4, self._recv(length)

    def message(self) -> bytes:
        """The payload of the next PUBLISH."""
        while True:
            kind, body = self.read()
            if kind == 3:
                (size,) = struct.unpack_from(">H", body)
                return body[2 + size :]

    def report(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            message = json.loads(self.message())
            if predicate(message):
                return message

    def closed(self) -> bool:
        try:
            while True:
                self.read()
        except (EOFError, ConnectionError, ssl.SSLError):
            return True

    def close(self) -> None:
        self.sock.close()


def mqtt_session(farm: SimulatedFarm, index: int) -> tuple[RawClient, BambuDevice]:
    device = farm.bambu(index)
    client = RawClient(farm.printers[index])
    assert client.connect(device.access_code) == 0
    client.subscribe(f"device/{device.serial}/report")
    return client, device


def request(client: RawClient, device: BambuDevice, kind: str, command: str, **fields: Any) -> dict[str, Any]:
    """Publish a command and return the printer's reply to it (matched on sequence_id)."""
    sequence = str(time.monotonic_ns())
    client.publish(
        f"device/{device.serial}/request", {kind: {"sequence_id": sequence, "command": command, **fields}}
    )
    return client.report(lambda m: m.get(kind, {}).get("sequence_id") == sequence)[kind]


def pushall(client: RawClient, device: BambuDevice) -> dict[str, Any]:
    client.publish(f"device/{device.serial}/request", {"pushing": {"sequence_id": "0", "command": "pushall"}})
    return client.report(lambda m: m.get("print", {}).get("msg") == 0)["print"]


def status_until(client: RawClient, device: BambuDevice, predicate: Callable[[dict[str, Any]], bool]) -> dict:
    """Merge pushes (deltas too) until the merged status satisfies `predicate`."""
    merged = pushall(client, device)
    while not predicate(merged):
        merged |= client.report(lambda m: m.get("print", {}).get("command") == "push_status")["print"]
    return merged


# -- an ftplib client as Bambu tools write it ---------------------------------------------------


class ImplicitFTPS(ftplib.FTP_TLS):
    """Implicit TLS on connect, TLS session reuse on data connections, no unwrap after STOR."""

    reused = False

    def connect(
        self, host: str = "", port: int = 0, timeout: float = WAIT, source_address: Any = None
    ) -> str:
        self.host, self.port = host, port
        self.sock = self.context.wrap_socket(socket.create_connection((host, port), timeout))
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        self.reused = conn.session_reused
        return conn, size

    def storbinary(
        self, cmd: str, fp: Any, blocksize: int = 65536, callback: Any = None, rest: Any = None
    ) -> str:
        self.voidcmd("TYPE I")
        with self.transfercmd(cmd, rest) as conn:
            while buf := fp.read(blocksize):
                conn.sendall(buf)
        return self.voidresp()


def ftps_login(printer: SimPrinter, password: str) -> ImplicitFTPS:
    ftp = ImplicitFTPS(context=_client_context())
    ftp.connect(printer.host, printer.ftps_port)
    ftp.login("bblp", password)
    ftp.prot_p()
    return ftp


def upload(farm: SimulatedFarm, index: int, path: Path, name: str) -> str:
    ftp = ftps_login(farm.printers[index], farm.bambu(index).access_code)
    try:
        with path.open("rb") as f:
            return ftp.storbinary(f"STOR {name}", f)
    finally:
        ftp.close()


# -- the third-party client -------------------------------------------------------------------


def test_bambulabs_api_reads_status_uploads_a_3mf_and_prints_it(tmp_path: Path) -> None:
    """bambulabs_api 2.6.6 hard-codes 8883/990 as constructor defaults; its clients take the
    port as an argument, so the simulated printer's ports are passed there (no root needed)."""
    plate = SamplePlate(1, "Cube", seconds=900)
    part = write_threemf(tmp_path / "cube.gcode.3mf", [plate])
    with running_farm(count=1, protocol="bambu", speed=300.0) as farm:
        sim, device = farm.printers[0], farm.bambu(0)
        printer = Printer(sim.host, device.access_code, device.serial)
        printer.mqtt_client = PrinterMQTTClient(sim.host, device.access_code, device.serial, port=sim.port)
        printer.ftp_client = PrinterFTPClient(sim.host, device.access_code, port=sim.ftps_port)
        printer.mqtt_start()
        try:
            wait_for(lambda: printer.mqtt_client_ready() and printer.mqtt_client.firmware_version())
            assert printer.mqtt_client.firmware_version() == "01.08.02.00"
            assert printer.get_state() is GcodeState.IDLE
            assert printer.get_nozzle_temperature() == pytest.approx(22.0)
            assert printer.get_chamber_temperature() == pytest.approx(24.0)  # an X1C has the sensor
            assert printer.get_percentage() == 0

            assert printer.upload_file(part.open("rb"), "cube.gcode.3mf").startswith("226")
            assert (sim.files_dir / "cube.gcode.3mf").read_bytes() == part.read_bytes()
            assert printer.start_print("cube.gcode.3mf", 1, ams_mapping=[0])
            wait_for(lambda: printer.get_state() is GcodeState.RUNNING)
            assert printer.subtask_name() == "cube"
            assert printer.mqtt_client.total_layer_num() == 101
            wait_for(lambda: printer.get_state() is GcodeState.FINISH)
            assert printer.get_percentage() == 100
        finally:
            printer.mqtt_stop()
            printer.mqtt_client._client.disconnect()
    assert farm.print_log()[0]["outcome"] == "completed"


# -- broker ------------------------------------------------------------------------------------


def test_certificate_names_the_serial_and_pins_per_printer(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    pins = set()
    for index in (X1, P1):
        client = RawClient(farm.printers[index])
        der = client.sock.getpeercert(binary_form=True)
        client.close()
        cert = x509.load_der_x509_certificate(der)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == farm.bambu(index).serial
        pins.add(farm.bambu(index).certificate.sha256)
    assert len(pins) == 2


def test_wrong_access_code_gets_connack_5_and_is_closed(bambu_sim_2_printers: SimulatedFarm) -> None:
    client = RawClient(bambu_sim_2_printers.printers[X1])
    assert client.connect("00000000") == 5
    assert client.closed()
    client = RawClient(bambu_sim_2_printers.printers[X1])
    assert client.connect(DEFAULT_ACCESS_CODE, username="admin") == 5


def test_garbage_closes_that_connection_and_the_broker_serves_on(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    client = RawClient(farm.printers[X1])
    client.sock.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)))
    assert client.closed()
    session, _ = mqtt_session(farm, X1)
    session.send(0x30, b"\xff\xff\x00")  # a PUBLISH whose topic runs past the packet
    assert session.closed()
    client, device = mqtt_session(farm, X1)
    assert pushall(client, device)["gcode_state"] == "IDLE"


def test_keepalive_is_enforced(bambu_sim_2_printers: SimulatedFarm) -> None:
    client = RawClient(bambu_sim_2_printers.printers[X1])
    assert client.connect(DEFAULT_ACCESS_CODE, keepalive=1) == 0
    client.send(0xC0, b"")  # PINGREQ
    assert client.read() == (13, b"")  # PINGRESP
    assert client.closed()  # then silence for 1.5 keepalives


def test_a_fifth_client_is_refused_as_server_unavailable(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    clients = [mqtt_session(farm, P1)[0] for _ in range(4)]
    extra = RawClient(farm.printers[P1])
    assert extra.connect(DEFAULT_ACCESS_CODE) == 3
    clients[0].send(0xE0, b"")  # DISCONNECT frees a place
    assert clients[0].closed()
    wait_for(lambda: len(farm.bambu(P1).broker.sessions) == 3)
    assert RawClient(farm.printers[P1]).connect(DEFAULT_ACCESS_CODE) == 0


# -- pushes --------------------------------------------------------------------------------------


def test_x1_pushes_full_status_and_p1_only_changes(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    x1, x1_device = mqtt_session(farm, X1)
    p1, p1_device = mqtt_session(farm, P1)
    full = pushall(p1, p1_device)
    assert full["gcode_state"] == "IDLE" and "ams" in full and "chamber_temper" not in full
    delta = p1.report(lambda m: m["print"].get("msg") == 1)["print"]
    assert delta["command"] == "push_status" and "gcode_state" not in delta and "ams" not in delta
    periodic = x1.report(lambda m: m.get("print", {}).get("command") == "push_status")["print"]
    assert periodic["gcode_state"] == "IDLE" and periodic["chamber_temper"] == 24.0
    assert int(periodic["fun"], 16) & FUN_SIGNATURE_REQUIRED == 0


def test_status_carries_ams_trays_in_firmware_shape(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    farm.set_trays(X1, [{"type": "PETG", "colour": "00ff00", "remain": 40}, {}], external={"type": "PLA"})
    client, device = mqtt_session(farm, X1)
    status = pushall(client, device)
    unit = status["ams"]["ams"][0]
    assert unit["id"] == "0" and isinstance(unit["humidity"], str)
    assert (
        unit["tray"][0].items()
        >= {"id": "0", "tray_type": "PETG", "tray_color": "00FF00FF", "remain": 40}.items()
    )
    assert unit["tray"][1] == {"id": "1"}  # an empty slot
    assert status["ams"]["tray_now"] == "255"
    assert status["vt_tray"]["id"] == "254" and status["vt_tray"]["tray_type"] == "PLA"


# -- commands ------------------------------------------------------------------------------------


def test_a_plate_prints_through_prepare_running_and_finish(
    bambu_sim_2_printers: SimulatedFarm, tmp_path
) -> None:
    farm = bambu_sim_2_printers
    assert upload(farm, P1, two_plates(tmp_path / "two.gcode.3mf"), "two.gcode.3mf").startswith("226")
    client, device = mqtt_session(farm, P1)
    reply = request(
        client,
        device,
        "print",
        "project_file",
        param="Metadata/plate_2.gcode",
        url="file:///sdcard/two.gcode.3mf",
        subtask_name="Lids",
        task_id="77",
        use_ams=True,
        ams_mapping=[2, 0],
    )
    assert reply["result"] == "success" and reply["param"] == "Metadata/plate_2.gcode"
    preparing = status_until(client, device, lambda s: s["gcode_state"] == "PREPARE")
    assert preparing["stg_cur"] in (1, 2, 7) and preparing["subtask_name"] == "Lids"
    assert preparing["task_id"] == "77" and preparing["bed_target_temper"] == 55.0
    running = status_until(client, device, lambda s: s["gcode_state"] == "RUNNING")
    assert running["stg_cur"] == 0 and running["ams"]["tray_now"] == "2"
    assert 0 < running["mc_remaining_time"] <= 30  # minutes of the 30-minute plate
    done = status_until(client, device, lambda s: s["gcode_state"] == "FINISH")
    assert done["mc_percent"] == 100 and done["layer_num"] == done["total_layer_num"] == 101


def test_pause_resume_stop_and_gcode_refused_while_printing(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    farm.start_print(X1, "long.gcode.3mf", duration=36_000)
    client, device = mqtt_session(farm, X1)
    refused = request(client, device, "print", "gcode_line", param="M104 S200\n")
    assert refused["result"] == "failed" and refused["reason"]
    assert request(client, device, "print", "pause", param="")["result"] == "success"
    paused = status_until(client, device, lambda s: s["gcode_state"] == "PAUSE")
    assert paused["stg_cur"] == 16
    assert request(client, device, "print", "resume", param="")["result"] == "success"
    assert request(client, device, "print", "stop", param="")["result"] == "success"
    stopped = status_until(client, device, lambda s: s["gcode_state"] == "FAILED")
    assert stopped["print_error"] == 0  # a user stop reads FAILED without an error
    assert farm.print_log(X1)[-1]["outcome"] == "cancelled"


def test_gcode_line_sets_targets_and_ledctrl_switches_the_light(bambu_sim_2_printers: SimulatedFarm) -> None:
    client, device = mqtt_session(bambu_sim_2_printers, X1)
    assert (
        request(client, device, "print", "gcode_line", param="M104 S200\nM140 S60\n")["result"] == "success"
    )
    reply = request(client, device, "system", "ledctrl", led_node="chamber_light", led_mode="off")
    assert reply["result"] == "success"
    status = status_until(client, device, lambda s: s["nozzle_target_temper"] == 200.0)
    assert status["bed_target_temper"] == 60.0
    assert {"node": "chamber_light", "mode": "off"} in status["lights_report"]


def test_missing_file_or_plate_fails_with_print_error_and_hms(
    bambu_sim_2_printers: SimulatedFarm, tmp_path
) -> None:
    farm = bambu_sim_2_printers
    upload(farm, X1, write_threemf(tmp_path / "one.gcode.3mf"), "one.gcode.3mf")
    client, device = mqtt_session(farm, X1)
    for name, plate in (("nowhere.gcode.3mf", 1), ("one.gcode.3mf", 3)):
        reply = request(
            client,
            device,
            "print",
            "project_file",
            param=f"Metadata/plate_{plate}.gcode",
            url=f"ftp:///{name}",
        )
        assert reply["result"] == "failed"
        status = status_until(client, device, lambda s: s["gcode_state"] == "FAILED")
        assert status["print_error"] and status["hms"] and set(status["hms"][0]) == {"attr", "code"}
    assert farm.print_log(X1) == []


def test_plain_gcode_by_gcode_file(bambu_sim_2_printers: SimulatedFarm, tmp_path) -> None:
    farm = bambu_sim_2_printers
    part = tmp_path / "part.gcode"
    part.write_text(";TIME:600\nM104 S215\nM140 S65\nG1 X10\n")
    upload(farm, X1, part, "part.gcode")
    client, device = mqtt_session(farm, X1)
    assert request(client, device, "print", "gcode_file", param="/sdcard/part.gcode")["result"] == "success"
    status = status_until(client, device, lambda s: s["gcode_state"] in ("RUNNING", "FINISH"))
    assert status["gcode_file"] == "/sdcard/part.gcode" and status["subtask_name"] == "part.gcode"


def test_start_print_names_the_file_as_firmware_does(bambu_sim_2_printers: SimulatedFarm) -> None:
    """Defect: farm.start_print reported the stem as subtask_name and a plate as gcode_file even
    for a plain G-code file, so no status named the file. Firmware: a gcode_file start reports
    the path it was given; a project_file start its plate and the requested subtask_name."""
    farm = bambu_sim_2_printers
    farm.start_print(X1, "parts/my part.gcode", duration=36_000)
    farm.start_print(P1, "cube v2.gcode.3mf", duration=36_000)
    client, device = mqtt_session(farm, X1)
    plain = pushall(client, device)
    client.close()
    assert plain["gcode_file"] == "/sdcard/parts/my part.gcode" and plain["subtask_name"] == "my part.gcode"
    client, device = mqtt_session(farm, P1)
    project = pushall(client, device)
    client.close()
    assert project["gcode_file"] == "/data/Metadata/plate_1.gcode"
    assert project["subtask_name"] == "cube v2.gcode.3mf"


def test_a_print_halted_by_an_error_carries_its_code(bambu_sim_2_printers: SimulatedFarm) -> None:
    """Defect: a print ended in error read FAILED with print_error 0, which is a user's stop."""
    farm = bambu_sim_2_printers
    farm.start_print(X1, "long.gcode.3mf", duration=36_000)
    sim = farm.printers[X1]
    farm._call(lambda: sim.emergency_stop(farm.sim_now(), "Heater extruder not heating at expected rate"))
    client, device = mqtt_session(farm, X1)
    status = pushall(client, device)
    client.close()
    assert status["gcode_state"] == "FAILED" and status["print_error"] != 0
    assert status["mc_print_error_code"] == str(status["print_error"]) and status["hms"]


def test_a_start_while_printing_is_refused_and_the_print_goes_on(
    bambu_sim_2_printers: SimulatedFarm, tmp_path
) -> None:
    """Defect: a gcode_file or project_file start while printing was carried out."""
    farm = bambu_sim_2_printers
    upload(farm, X1, write_threemf(tmp_path / "one.gcode.3mf"), "one.gcode.3mf")
    part = tmp_path / "part.gcode"
    part.write_text(";TIME:600\nG1 X10\n")
    upload(farm, X1, part, "part.gcode")
    farm.start_print(X1, "long.gcode.3mf", duration=36_000)
    client, device = mqtt_session(farm, X1)
    starts = (
        {"command": "gcode_file", "param": "/sdcard/part.gcode"},
        {"command": "project_file", "param": "Metadata/plate_1.gcode", "url": "ftp:///one.gcode.3mf"},
    )
    for start in starts:
        reply = request(client, device, "print", **start)
        assert reply["result"] == "failed" and "busy" in reply["reason"]
    status = pushall(client, device)
    client.close()
    assert status["gcode_state"] in ("PREPARE", "RUNNING") and status["subtask_name"] == "long.gcode.3mf"
    assert [entry["filename"] for entry in farm.print_log(X1)] == ["long.gcode.3mf"]


# -- FTPS ----------------------------------------------------------------------------------------


def test_ftps_login_size_list_and_delete(bambu_sim_2_printers: SimulatedFarm, tmp_path) -> None:
    farm = bambu_sim_2_printers
    sim = farm.printers[P1]
    with pytest.raises(ftplib.error_perm, match="530"):
        ftps_login(sim, "wrong")
    part = tmp_path / "p.gcode"
    part.write_bytes(b"G28\n" * 50_000)
    upload(farm, P1, part, "p.gcode")
    ftp = ftps_login(sim, farm.bambu(P1).access_code)
    try:
        assert ftp.size("p.gcode") == part.stat().st_size
        assert ftp.nlst() == ["p.gcode"]
        assert ftp.reused  # the data connection resumed the control connection's TLS session
        assert "p.gcode" in "\n".join(line for line in _lines(ftp))
        ftp.delete("p.gcode")
        assert ftp.nlst() == []
    finally:
        ftp.close()


def _lines(ftp: ftplib.FTP) -> list[str]:
    lines: list[str] = []
    ftp.retrlines("LIST", lines.append)
    return lines


# -- faults --------------------------------------------------------------------------------------


def test_dev_mode_off_rejects_commands_and_still_pushes(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    client, device = mqtt_session(farm, X1)
    farm.set_fault(X1, "dev_mode_off")
    reply = request(client, device, "print", "gcode_line", param="M104 S200\n")
    assert reply["result"] == "failed" and reply["err_code"] == ERR_VERIFICATION_FAILED
    status = pushall(client, device)
    assert int(status["fun"], 16) & FUN_SIGNATURE_REQUIRED
    assert status["hms"] and status["nozzle_target_temper"] == 0.0
    farm.set_fault(X1, None)
    assert request(client, device, "print", "gcode_line", param="M104 S200\n")["result"] == "success"


def test_bad_access_code_drops_clients_and_refuses_them(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    client, _ = mqtt_session(farm, P1)
    farm.set_fault(P1, "bad_access_code")
    assert client.closed()
    assert RawClient(farm.printers[P1]).connect(DEFAULT_ACCESS_CODE) == 5
    with pytest.raises(ftplib.error_perm, match="530"):
        ftps_login(farm.printers[P1], DEFAULT_ACCESS_CODE)
    farm.set_fault(P1, None)
    mqtt_session(farm, P1)


def test_offline_refuses_both_ports_until_cleared(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    client, _ = mqtt_session(farm, X1)
    farm.set_fault(X1, "offline")
    assert client.closed()
    sim = farm.printers[X1]
    for port in (sim.port, sim.ftps_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((sim.host, port), timeout=WAIT)
    farm.set_fault(X1, None)
    client, device = mqtt_session(farm, X1)
    assert pushall(client, device)["gcode_state"] == "IDLE"


@pytest.mark.parametrize("fault", ["blackhole", "no_connack"])
def test_blackhole_and_no_connack_never_answer(bambu_sim_2_printers: SimulatedFarm, fault: str) -> None:
    farm = bambu_sim_2_printers
    farm.set_fault(X1, fault)
    raw = socket.create_connection((farm.printers[X1].host, farm.printers[X1].port), timeout=0.5)
    with pytest.raises(TimeoutError):
        if fault == "blackhole":
            _client_context().wrap_socket(raw)  # the handshake never completes
        else:
            client = RawClient.__new__(RawClient)
            client.sock, client.buffer = _client_context().wrap_socket(raw), b""
            client.connect(DEFAULT_ACCESS_CODE)
    raw.close()
    farm.set_fault(X1, None)
    mqtt_session(farm, X1)


def test_push_stop_silences_until_pushall(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    client, device = mqtt_session(farm, X1)
    farm.set_fault(X1, "push_stop")
    client.sock.settimeout(1.5)  # longer than the push interval: a push would arrive
    with pytest.raises(TimeoutError):
        while True:
            client.message()
    client.sock.settimeout(WAIT)
    assert pushall(client, device)["gcode_state"] == "IDLE"
    assert farm.describe_printer(X1)["pushing"]


def test_malformed_and_huge_pushes(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    client, device = mqtt_session(farm, X1)
    farm.set_fault(X1, "malformed")
    with pytest.raises(ValueError):
        json.loads(client.message())
    farm.set_fault(X1, "huge_push")
    assert len(client.message()) > 1024 * 1024
    farm.set_fault(X1, None)


def test_reset_upload_leaves_no_file(bambu_sim_2_printers: SimulatedFarm, tmp_path) -> None:
    farm = bambu_sim_2_printers
    farm.set_fault(P1, "reset_upload")
    big = tmp_path / "big.gcode"
    big.write_bytes(b"G1 X1 Y1\n" * 200_000)
    with pytest.raises((ConnectionError, ssl.SSLError, ftplib.error_temp, OSError)):
        upload(farm, P1, big, "big.gcode")
    sim = farm.printers[P1]
    assert list(sim.files_dir.glob("*")) == []
    farm.set_fault(P1, None)
    assert upload(farm, P1, big, "big.gcode").startswith("226")


def test_runout_pauses_a_running_print(bambu_sim_2_printers: SimulatedFarm) -> None:
    farm = bambu_sim_2_printers
    farm.start_print(P1, "long.gcode.3mf", duration=36_000)
    client, device = mqtt_session(farm, P1)
    status_until(client, device, lambda s: s["gcode_state"] == "RUNNING")
    farm.set_fault(P1, "runout")
    paused = status_until(client, device, lambda s: s["gcode_state"] == "PAUSE")
    assert paused["stg_cur"] == 6 and paused["hms"]


def test_http_faults_are_refused_for_bambu_printers(bambu_sim_2_printers: SimulatedFarm) -> None:
    with pytest.raises(ValueError, match="does not apply to bambu"):
        bambu_sim_2_printers.set_fault(X1, "http500")


# -- the farm ------------------------------------------------------------------------------------


def test_mixed_farm_adds_bambu_after_three_http_pairs(tmp_path) -> None:
    farm = SimulatedFarm(count=11, protocol="mixed")
    assert [p.protocol for p in farm.printers] == [
        *("moonraker", "octoprint") * 3,
        "bambu",
        "bambu",
        "prusalink",
        "prusalink",
        "moonraker",
    ]


def test_printers_file_lists_serial_and_access_code(tmp_path) -> None:
    with running_farm(count=8, protocol="mixed", api_key="s3cret") as farm:
        _write_printers_file(tmp_path / "printers.json", farm)
        entries = json.loads((tmp_path / "printers.json").read_text())
        bambu = entries[6]
        assert bambu == {
            "name": "sim-bambu-7",
            "protocol": "bambu",
            "base_url": f"mqtts://127.0.0.1:{farm.printers[6].port}?ftps={farm.printers[6].ftps_port}",
            "serial": farm.bambu(6).serial,
            "api_key": "s3cret",
        }
        assert "serial" not in entries[0]
