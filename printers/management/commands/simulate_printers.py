"""Run simulated Moonraker/OctoPrint/Bambu/PrusaLink printers on loopback ports until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from printers.simulator import FAULTS, SimulatedFarm
from printers.simulator.farm import check_loopback
from printers.simulator.printer import BAMBU_FAULTS, PRUSALINK_FAULTS

SUMMARY_OVER = 20  # list printers one per line up to this many


def raise_nofile_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit: each printer needs a listening socket plus
    its client connections, so 1,000 printers need more than the usual 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


class Command(BaseCommand):
    help = (
        "Run N simulated printers (Moonraker/OctoPrint/PrusaLink HTTP APIs, Bambu MQTT+FTPS over TLS) on "
        "loopback: printer i on port P+i (a Bambu printer's FTPS on P+N+i, a P1S's camera on P+2N+i), "
        "the control API on "
        "--control-port (default P-1). Runs until interrupted. "
        "Control API: GET /printers, /printers/{i}, /prints (every print start and end), "
        '/printers/{i}/prints, /stats; POST /printers/{i}/fault {"fault": F} with F one of '
        f"{', '.join(FAULTS)} (Bambu: {', '.join(BAMBU_FAULTS)}; PrusaLink adds "
        f"{', '.join(f for f in PRUSALINK_FAULTS if f not in FAULTS)}) or null; "
        "POST /printers/{i}/print, /printers/{i}/trays, /printers/{i}/ready (PrusaLink Set Ready). "
        "PrusaLink printers take user maker and the password in GET /printers/{i}. "
        "Moonraker printers also serve their job history at /server/history/list and /server/history/job."
    )
    requires_system_checks: list[str] = []  # pure aiohttp; needs neither models nor the database

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=3, help="number of printers (default 3)")
        parser.add_argument(
            "--protocol",
            choices=["moonraker", "octoprint", "bambu", "prusalink", "mixed"],
            default="mixed",
            help="mixed: three Moonraker/OctoPrint pairs, two Bambu, then two PrusaLink printers, repeated",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=7125,
            help="first printer port; printers use P..P+N-1 (0: an ephemeral port each). Default 7125",
        )
        parser.add_argument(
            "--control-port",
            type=int,
            default=None,
            help="control API port (default P-1; ephemeral when --port 0)",
        )
        parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
        parser.add_argument("--api-key", default="", help="require this X-Api-Key on printer APIs")
        parser.add_argument(
            "--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)"
        )
        parser.add_argument("--upload-dir", default=None, help="keep uploaded files here (default: temp dir)")
        parser.add_argument(
            "--printers-file",
            default=None,
            help="write a JSON list of {name, protocol, base_url} here once listening",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            host = check_loopback(options["host"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        count: int = options["count"]
        port: int = options["port"]
        if count < 1:
            raise CommandError("--count must be at least 1")
        # Bambu printers take more ports (FTPS: P+N+i; a P1S's camera: P+2N+i)
        ports = count if options["protocol"] in ("moonraker", "octoprint", "prusalink") else 3 * count
        if port and not 1 <= port <= 65535 - ports + 1:
            raise CommandError(f"--port {port} with --count {count} runs past port 65535")
        control_port = options["control_port"]
        if control_port is None:
            control_port = port - 1 if port else 0
        if control_port and port and port <= control_port < port + ports:
            raise CommandError(f"--control-port {control_port} overlaps the printer ports")
        if options["speed"] <= 0:
            raise CommandError("--speed must be > 0")
        soft, _hard = raise_nofile_limit()
        if soft < 2 * count + 64:
            self.stderr.write(
                f"warning: only {soft} file descriptors allowed; {count} printers may need {2 * count + 64}"
            )
        farm = SimulatedFarm(
            count=count,
            protocol=options["protocol"],
            host=host,
            base_port=port,
            control_port=control_port,
            speed=options["speed"],
            api_key=options["api_key"],
            upload_dir=options["upload_dir"],
        )
        try:
            asyncio.run(self._run(farm, options["printers_file"]))
        except OSError as exc:
            raise CommandError(f"could not start the simulator: {exc}") from exc

    async def _run(self, farm: SimulatedFarm, printers_file: str | None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await farm.start()
        try:
            self._announce(farm)
            if printers_file:
                _write_printers_file(Path(printers_file), farm)
                self.stdout.write(f"printers file: {printers_file}")
            self.stdout.write("running; Ctrl-C to stop")
            self.stdout.flush()
            await stop.wait()
        finally:
            await farm.stop()
        self.stdout.write("simulator stopped")

    def _announce(self, farm: SimulatedFarm) -> None:
        printers = farm.printers
        if len(printers) <= SUMMARY_OVER:
            width = max(len(p.name) for p in printers)
            for p in printers:
                self.stdout.write(f"{p.name:<{width}}  {p.protocol:<9}  {p.base_url}")
        else:
            kinds = sorted({p.protocol for p in printers})
            ports = [p.port for p in printers]
            self.stdout.write(
                f"{len(printers)} printers ({', '.join(kinds)}) on {farm.host} "
                f"ports {min(ports)}..{max(ports)}: {printers[0].base_url} .. {printers[-1].base_url}"
            )
        self.stdout.write(f"speed x{farm.speed:g}, uploads in {farm.upload_dir}")
        self.stdout.write(f"control API: {farm.control_url}  (GET /printers, /prints, /stats)")


def _write_printers_file(path: Path, farm: SimulatedFarm) -> None:
    """Atomically, so a script polling for the file never reads half of it."""
    data: list[dict[str, Any]] = []
    for p in farm.printers:
        entry = {"name": p.name, "protocol": p.protocol, "base_url": p.base_url}
        if p.protocol == "bambu":
            device = farm.bambu(p.index)
            entry |= {"serial": device.serial, "api_key": device.access_code}
        elif p.protocol == "prusalink":
            entry |= {"username": "maker", "api_key": farm.prusalink_password(p.index)}
        data.append(entry)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
