"""Simulated Bambu Lab printers: each its own MQTT-over-TLS broker and implicit-TLS FTPS server.

Farm-level API (for drivers and tests):

    farm = SimulatedFarm(count=1, protocol="bambu", speed=600)   # or running_farm(...)
    p = farm.printers[0]              # SimPrinter: p.port = MQTT port, p.ftps_port = FTPS port,
    p.base_url                        # "mqtts://127.0.0.1:<mqtt>?ftps=<ftps>" (P1S: "&camera=<port>")
    info = farm.bambu(0)              # BambuDevice: .serial ("00M09A000000001"), .access_code
                                      # (the farm's api_key, else "12345678"), .model ("X1C"
                                      # full pushes / "P1S" delta pushes, alternating by index),
                                      # .certificate.sha256 / .certificate.pem (CN = serial)
    farm.describe_printer(0)          # adds serial, access_code, model, ftps_port, pushing,
                                      # cert_sha256, gcode_state
    farm.set_fault(0, "dev_mode_off") # one of BAMBU_FAULTS (printer.py), None clears; also
                                      # POST /printers/0/fault {"fault": "dev_mode_off"}
    farm.set_trays(0, [{"type": "PETG", "colour": "00FF00FF", "remain": 40}, {}, ...],
                   external={"type": "PLA", "colour": "FFFFFFFF"})   # POST /printers/0/trays
    farm.start_print(0, "cube.gcode.3mf", duration=600)  # a print without MQTT (demo, tests)

Wire behaviour (rules10.md contract): user `bblp`, password = access code (else CONNACK 5),
at most 4 clients (CONNACK 3), topics device/<serial>/report and /request. Replies carry the
request's `sequence_id`, `command`, `result` ("success"/"failed"), `reason` (and `err_code`
84033543 when Developer Mode is off). `pushall` answers with a full push_status (msg 0) to
every subscriber; X1C pushes the full object every second, P1S only changed keys (msg 1) every
second, on real-time seconds regardless of --speed. `fun` is a hex string; bit 0x20000000 set
means Developer Mode is off. A project_file print spends PREPARE_SECONDS (simulated) in PREPARE
(stg_cur 2, 7, 1, gcode_file_prepare_percent), then RUNNING for the plate's sliced time; a
missing file or plate ends FAILED with print_error and an HMS entry. A print halted by a fault
reads FAILED with a non-zero print_error and an HMS entry; a user stop FAILED with print_error 0.
A start while a print runs or is paused is refused (result "failed"); the print goes on. A
gcode_file print reports gcode_file "/sdcard/<name>" and subtask_name the file's name; a
project_file print gcode_file "/data/Metadata/plate_N.gcode" and the subtask_name it was sent.
Faults: BAMBU_FAULTS in printer.py; HTTP-only faults are refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from printers.simulator import bambu_state as bs
from printers.simulator.bambu_mqtt import Broker, Session
from printers.simulator.bambu_tls import FarmKey, PrinterCertificate
from printers.simulator.printer import ERROR, PAUSED, PRINTING, SimPrinter

if TYPE_CHECKING:
    from printers.simulator.bambu_camera import CameraServer
    from printers.simulator.bambu_ftps import FtpsServer
    from printers.simulator.farm import SimulatedFarm

logger = logging.getLogger(__name__)

DEFAULT_ACCESS_CODE = "12345678"
# A serial number starts with its model's code (X1 Carbon 00M, P1S 01P), as a real one does.
SERIAL_PREFIX = {"X1C": "00M09A", "P1S": "01P00A"}
PUSH_INTERVAL = 1.0  # real seconds between pushes
HUGE_PUSH_BYTES = 2 * 1024 * 1024
FIRMWARE = {"X1C": "01.08.02.00", "P1S": "01.07.00.00"}
HARDWARE = {"X1C": "AP05", "P1S": "AP04"}
DEFAULT_PLATE_SECONDS = 600.0
CONTROL_COMMANDS = {
    "print": {"pause", "resume", "stop", "gcode_line", "project_file", "gcode_file"},
    "system": {"ledctrl"},
}
_TEMP = re.compile(r"^(M104|M109|M140|M190)\b.*?\bS(-?\d+(?:\.\d+)?)", re.I)
_LAYERS = re.compile(rb"total layer number:\s*(\d+)")
# Bambu Studio: "; model printing time: 52m 30s; total estimated time: 1h 2m 3s"
_ESTIMATE = re.compile(rb"total estimated time:\s*([0-9dhms ]+)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _duration(text: str) -> int:
    return sum(int(n) * _UNITS[unit] for n, unit in re.findall(r"(\d+)\s*([dhms])", text))


_NOZZLE = re.compile(rb"nozzle_temperature_initial_layer\s*=\s*(\d+)")
_BED = re.compile(rb"(?:hot_plate|textured_plate|cool_plate|eng_plate)_temp_initial_layer\s*=\s*(\d+)")


class PrintRefused(Exception):
    """A start that fails on the printer: FAILED with this print_error and HMS entry."""

    def __init__(self, reason: str, print_error: int, hms: tuple[int, int]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.print_error = print_error
        self.hms = hms


class BambuDevice:
    """One simulated Bambu printer: identity, its broker and FTPS server, firmware behaviour."""

    def __init__(self, farm: SimulatedFarm, printer: SimPrinter, key: FarmKey, access_code: str) -> None:
        self.farm = farm
        self.printer = printer
        self.index = printer.index
        self.access_code = access_code
        self.model = "X1C" if printer.index % 2 == 0 else "P1S"
        self.serial = f"{SERIAL_PREFIX[self.model]}{printer.index + 1:09d}"
        self._key = key
        self._certificates = [key.certificate(self.serial)]
        self.broker = Broker(self)
        self.ftps: FtpsServer | None = None
        self.mqtt_server: asyncio.AbstractServer | None = None
        self.ftps_server: asyncio.AbstractServer | None = None
        # P1/A1: JPEG frames over TLS (printers.simulator.bambu_camera); None on an X1.
        self.camera: CameraServer | None = None
        self.camera_server: asyncio.AbstractServer | None = None
        self.job = bs.BambuJob()
        self.trays = bs.default_trays(printer.index)
        self.external = bs.TraySpec()
        self.light_on = True
        self.pushing = True  # False after "push_stop" until a pushall
        self.verification_failed = False  # a command was rejected while Developer Mode was off
        self.hms: list[tuple[int, int]] = []
        self.sequence = 0
        self.last_pushed: dict[str, Any] = {}
        self.wifi = 40 + printer.index % 20

    # -- identity and faults -----------------------------------------------------------------

    @property
    def fault(self) -> str | None:
        return self.printer.fault

    @property
    def x1(self) -> bool:
        return self.model.startswith("X1")

    @property
    def current_access_code(self) -> str:
        if self.fault == "bad_access_code":
            return "".join(str((int(c) + 1) % 10) if c.isdigit() else c for c in self.access_code) + "x"
        return self.access_code

    @property
    def dev_mode(self) -> bool:
        return self.fault != "dev_mode_off"

    @property
    def certificate(self) -> PrinterCertificate:
        if self.fault == "cert_changed":
            if len(self._certificates) == 1:
                self._certificates.append(self._key.certificate(self.serial, generation=1))
            return self._certificates[1]
        return self._certificates[0]

    def fault_changed(self, old: str | None, new: str | None, drop: Any) -> None:
        """Apply a fault switch to live connections (called by the farm on its loop)."""
        if new in ("no_connack", "bad_access_code", "cert_changed") or old == "cert_changed":
            self.broker.drop_all(drop)  # clients reconnect and meet the new behaviour
        if old in ("blackhole", "no_connack"):
            self.broker.drop_all(drop)  # a printer that comes back drops what it held
        if new == "push_stop":
            self.pushing = False
        elif old == "push_stop":
            self.pushing = True
        if old == "dev_mode_off":
            self.verification_failed = False
        if old == "runout" and self.job.pause_stage == bs.STAGE_FILAMENT_RUNOUT:
            self.hms = [h for h in self.hms if h != bs.HMS_FILAMENT_RUNOUT]

    def describe(self) -> dict[str, Any]:
        now = self.farm.sim_now()
        self.advance(now)
        return {
            "serial": self.serial,
            "access_code": self.access_code,
            "model": self.model,
            "ftps_port": self.printer.ftps_port,
            "camera_port": self.printer.camera_port,
            "pushing": self.pushing,
            "cert_sha256": self.certificate.sha256,
            "gcode_state": bs.gcode_state(self.printer, self.job, now),
            "trays": [t.as_dict(i) for i, t in enumerate(self.trays)],
        }

    # -- time ----------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        printer = self.printer
        printer.advance(now)
        if (
            self.fault == "runout"
            and printer.job_state == PRINTING
            and printer.print_duration(now) >= self.job.prepare_seconds
        ):
            printer.pause(now)
            self.job.pause_stage = bs.STAGE_FILAMENT_RUNOUT
            if bs.HMS_FILAMENT_RUNOUT not in self.hms:
                self.hms.append(bs.HMS_FILAMENT_RUNOUT)

    def status(self, now: float) -> dict[str, Any]:
        hms = list(self.hms)
        if self.verification_failed and bs.HMS_VERIFICATION_FAILED not in hms:
            hms.append(bs.HMS_VERIFICATION_FAILED)
        if self.printer.job_state == ERROR and bs.HMS_NOZZLE_HEATER not in hms:
            hms.append(bs.HMS_NOZZLE_HEATER)
        return bs.print_status(
            self.printer,
            self.job,
            now,
            x1=self.x1,
            trays=self.trays,
            external=self.external,
            light_on=self.light_on,
            dev_mode=self.dev_mode,
            hms=hms,
            wifi=self.wifi,
        )

    # -- pushes --------------------------------------------------------------------------

    def push(self, *, full: bool) -> None:
        """One push_status to every subscriber: the whole object, or (P1) what changed."""
        if self.fault in ("blackhole", "offline") or not self.broker.sessions:
            return
        now = self.farm.sim_now()
        self.advance(now)
        status = self.status(now)
        if full or self.x1:
            body = dict(status)
        else:
            body = {k: v for k, v in status.items() if self.last_pushed.get(k) != v}
        self.last_pushed = status
        self.sequence += 1
        body.update(command="push_status", msg=0 if full or self.x1 else 1, sequence_id=str(self.sequence))
        if self.fault == "huge_push":
            body["sim_padding"] = "x" * HUGE_PUSH_BYTES
        payload = json.dumps({"print": body}, separators=(",", ":")).encode()
        if self.fault == "malformed":
            payload = payload[: len(payload) // 2]
        if self.broker.publish(payload):
            self.farm.stats_counters.note_status(self.index)

    def tick(self) -> None:
        """The periodic push (the farm calls it every PUSH_INTERVAL real seconds)."""
        if self.pushing:
            self.push(full=False)

    # -- requests ------------------------------------------------------------------------

    def on_request(self, payload: bytes, session: Session) -> None:
        """A PUBLISH on device/<serial>/request. Garbage is ignored, as firmware does."""
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        # bambulabs_api sends several requests in one message ({"pushing":..,"info":..}).
        for kind, request in message.items():
            if isinstance(request, dict):
                self._request(kind, request)

    def _request(self, kind: str, request: dict[str, Any]) -> None:
        command = request.get("command")
        if kind == "system" and command is None and "led_mode" in request:
            command = "ledctrl"  # bambulabs_api omits the command for the light
        if kind == "pushing":
            if command in ("pushall", "start"):
                self.pushing = True
            if command == "pushall":
                self.push(full=True)
            return
        if kind == "info" and command == "get_version":
            self._reply(kind, request, module=self._modules())
            return
        if kind == "upgrade" and command == "get_history":
            self._reply(kind, request, firmware_optional=[])
            return
        if command not in CONTROL_COMMANDS.get(kind, ()):
            if kind in CONTROL_COMMANDS:
                self._reply(kind, request, result="failed", reason=f"unsupported command {command!r}")
            return
        if not self.dev_mode:
            # 2025+ firmware without LAN-only + Developer Mode: unsigned commands are refused.
            self.verification_failed = True
            self._reply(
                kind,
                request,
                result="failed",
                reason="MQTT command verification failed",
                err_code=bs.ERR_VERIFICATION_FAILED,
            )
            self.push(full=False)
            return
        if command == "project_file":
            self.farm.spawn(self._project_file(request))
            return
        if command == "gcode_file":
            self.farm.spawn(self._gcode_file(request))
            return
        handler = getattr(self, f"_cmd_{command}")
        reason = handler(request)
        if reason:
            self._reply(kind, request, result="failed", reason=reason)
        else:
            self._reply(kind, request)
        self.push(full=False)

    def _reply(self, kind: str, request: dict[str, Any], *, result: str = "success", **extra: Any) -> None:
        body = {**request, "sequence_id": str(request.get("sequence_id", "0")), "result": result}
        body.setdefault("reason", "")
        body.update(extra)
        payload = json.dumps({kind: body}, separators=(",", ":")).encode()
        if self.fault == "garbled":
            payload = payload[: len(payload) // 2]
        self.broker.publish(payload)

    def _modules(self) -> list[dict[str, str]]:
        return [
            {"name": "ota", "hw_ver": "", "sn": "", "sw_ver": FIRMWARE[self.model]},
            {
                "name": "rv1126" if self.x1 else "esp32",
                "hw_ver": HARDWARE[self.model],
                "sn": self.serial,
                "sw_ver": "00.00.32.14",
            },
            {"name": "mc", "hw_ver": "MC07", "sn": self.serial, "sw_ver": "00.00.20.51/00.00.20.51"},
            {"name": "ams/0", "hw_ver": "AMS08", "sn": f"006{self.serial[6:]}", "sw_ver": "00.00.06.40"},
        ]

    # -- control commands (a reason string refuses) -------------------------------------

    def _now(self) -> float:
        now = self.farm.sim_now()
        self.advance(now)
        return now

    def _cmd_pause(self, request: dict[str, Any]) -> str:
        now = self._now()
        if self.printer.job_state != PRINTING:
            return "printer is not printing"
        self.printer.pause(now)
        self.job.pause_stage = bs.STAGE_PAUSED_BY_USER
        return ""

    def _cmd_resume(self, request: dict[str, Any]) -> str:
        now = self._now()
        if self.printer.job_state != PAUSED:
            return "printer is not paused"
        self.printer.resume(now)
        self.hms = [h for h in self.hms if h != bs.HMS_FILAMENT_RUNOUT]
        return ""

    def _cmd_stop(self, request: dict[str, Any]) -> str:
        now = self._now()
        if self.printer.busy:
            self.printer.cancel(now)
        return ""

    def _cmd_gcode_line(self, request: dict[str, Any]) -> str:
        now = self._now()
        if self.printer.busy:
            return "the printer is busy printing; G-code is refused"  # firmware 01.06+
        for line in str(request.get("param", "")).splitlines():
            match = _TEMP.match(line.strip())
            if match:
                value = max(0.0, float(match.group(2)))
                if match.group(1).upper() in ("M104", "M109"):
                    self.printer.set_targets(now, hotend=value)
                else:
                    self.printer.set_targets(now, bed=value)
        return ""

    def _cmd_ledctrl(self, request: dict[str, Any]) -> str:
        if request.get("led_node", "chamber_light") == "chamber_light":
            self.light_on = request.get("led_mode") != "off"
        return ""

    # -- starting prints -----------------------------------------------------------------

    async def _project_file(self, request: dict[str, Any]) -> None:
        if self._refused_while_busy(request):
            return
        param = str(request.get("param", ""))
        url = str(request.get("url", ""))
        name = _sdcard_name(url) or str(request.get("file", ""))
        try:
            path = self._stored(name)
            plate = _plate_number(param)
            seconds, layers, hotend, bed = await asyncio.to_thread(_read_plate, path, plate)
        except PrintRefused as exc:
            self._refuse(request, exc)
            return
        if self._refused_while_busy(request):  # another start got in while the plate was read
            return
        mapping = request.get("ams_mapping")
        self._start(
            name,
            gcode_file=f"/data/{param}",  # the plate member as firmware reports it
            # Firmware shows the subtask_name it was sent (bambulabs_api sends none: the name).
            subtask=str(request.get("subtask_name") or PurePosixPath(name).name.split(".")[0]),
            task_id=str(request.get("task_id", "0")),
            seconds=seconds,
            layers=layers,
            temps=(hotend, bed),
            ams_mapping=mapping if isinstance(mapping, list) else [],
        )
        self._reply("print", request)
        self.push(full=False)

    async def _gcode_file(self, request: dict[str, Any]) -> None:
        if self._refused_while_busy(request):
            return
        param = str(request.get("param", ""))
        name = param.removeprefix("/sdcard/").removeprefix("/")
        try:
            self._stored(name)
        except PrintRefused as exc:
            self._refuse(request, exc)
            return
        info = self.printer.files.get(name)
        seconds = info.estimated_time if info and info.estimated_time else DEFAULT_PLATE_SECONDS
        hotend = info.hotend_temp if info and info.hotend_temp else None
        bed = info.bed_temp if info and info.bed_temp is not None else None
        self._start(
            name,
            gcode_file=param,  # the absolute path it was given, "/sdcard/<name>"
            subtask=PurePosixPath(name).name,
            task_id="0",
            seconds=seconds,
            layers=0,
            temps=(hotend, bed),
            ams_mapping=[],
        )
        self._reply("print", request)
        self.push(full=False)

    def _stored(self, name: str) -> Path:
        if not name or ".." in PurePosixPath(name).parts:
            raise PrintRefused("no file given", bs.PRINT_ERROR_FILE_MISSING, bs.HMS_FILE_MISSING)
        path = self.printer.files_dir / name
        if not path.is_file():
            raise PrintRefused(f"file {name} not found", bs.PRINT_ERROR_FILE_MISSING, bs.HMS_FILE_MISSING)
        return path

    def _refused_while_busy(self, request: dict[str, Any]) -> bool:
        """Firmware takes no second print while one runs (or is paused): it answers failed and
        the print goes on untouched."""
        self._now()
        if not self.printer.busy:
            return False
        self._reply("print", request, result="failed", reason="the printer is busy with another print")
        return True

    def _refuse(self, request: dict[str, Any], exc: PrintRefused) -> None:
        """A start the printer cannot carry out: FAILED with an error, as firmware reports it."""
        if self._refused_while_busy(request):
            return
        self.printer.job_state = "standby"
        self.printer.job_file = ""
        self.job = bs.BambuJob(
            subtask_name=str(request.get("subtask_name", "")),
            gcode_file=str(request.get("param", "")),
            print_error=exc.print_error,
        )
        self.hms = [exc.hms]
        self._reply("print", request, result="failed", reason=exc.reason)
        self.push(full=False)

    def _start(
        self,
        name: str,
        *,
        gcode_file: str,
        subtask: str,
        task_id: str,
        seconds: float,
        layers: int,
        temps: tuple[float | None, float | None],
        ams_mapping: list[Any],
    ) -> None:
        now = self._now()
        self.job = bs.BambuJob(
            subtask_name=subtask,
            gcode_file=gcode_file,
            task_id=task_id,
            total_layers=layers,
            plate_seconds=seconds,
            ams_mapping=[t for t in ams_mapping if isinstance(t, int)],
        )
        self.hms = []
        self.printer.start(now, name, duration=self.job.prepare_seconds + seconds)
        hotend, bed = temps
        self.printer.set_targets(now, hotend=hotend or 220.0, bed=bed if bed is not None else 55.0)

    def start_now(self, name: str, duration: float | None) -> None:
        """The farm's start_print for a Bambu printer: a print of `name` without MQTT, reported
        as printfarm's driver starts it: a 3MF's plate 1 with the file's name as subtask_name,
        any other file by gcode_file and its path on the card."""
        project = name.lower().endswith(".3mf")
        self._start(
            name,
            gcode_file="/data/Metadata/plate_1.gcode" if project else f"/sdcard/{name}",
            subtask=name if project else PurePosixPath(name).name,
            task_id="0",
            seconds=duration if duration is not None else DEFAULT_PLATE_SECONDS,
            layers=100 if project else 0,
            temps=(None, None),
            ams_mapping=[0] if project else [],
        )


def _sdcard_name(url: str) -> str:
    for prefix in ("file:///sdcard/", "file:///mnt/sdcard/", "ftp:///", "ftp://"):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return ""


def _plate_number(param: str) -> int:
    match = re.fullmatch(r"Metadata/plate_(\d+)\.gcode", param)
    if not match:
        raise PrintRefused(f"no plate {param!r}", bs.PRINT_ERROR_PLATE_MISSING, bs.HMS_FILE_MISSING)
    return int(match.group(1))


def _read_plate(path: Path, plate: int) -> tuple[float, int, float | None, float | None]:
    """(sliced seconds, layers, first-layer nozzle and bed temperature) of a plate of a 3MF."""
    # As the firmware does: from the plate's own header, not from the farm's library code.
    member = f"Metadata/plate_{plate}.gcode"
    try:
        with zipfile.ZipFile(path) as archive:
            if member not in archive.namelist():
                raise PrintRefused(
                    f"{member} not in the file", bs.PRINT_ERROR_PLATE_MISSING, bs.HMS_FILE_MISSING
                )
            with archive.open(member) as f:
                head = f.read(64 * 1024)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PrintRefused(
            f"cannot read {path.name}: {exc}", bs.PRINT_ERROR_FILE_MISSING, bs.HMS_FILE_MISSING
        ) from exc
    estimate = _ESTIMATE.search(head)
    seconds = float(_duration(estimate.group(1).decode())) if estimate else 0.0
    seconds = seconds or DEFAULT_PLATE_SECONDS
    layers = _LAYERS.search(head)
    nozzle = _NOZZLE.search(head)
    bed = _BED.search(head)
    return (
        seconds,
        int(layers.group(1)) if layers else 0,
        float(nozzle.group(1)) if nozzle else None,
        float(bed.group(1)) if bed else None,
    )


def new_device(farm: SimulatedFarm, printer: SimPrinter, key: FarmKey) -> BambuDevice:
    return BambuDevice(farm, printer, key, farm.api_key or DEFAULT_ACCESS_CODE)


def jitter() -> float:
    """A printer's first push lands somewhere in the first interval, so 1,000 don't align."""
    return random.random() * PUSH_INTERVAL
