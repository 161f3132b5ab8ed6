"""Add the printers listed in a JSON file (as written by simulate_printers --printers-file)."""

from __future__ import annotations

import json
from pathlib import Path

from asgiref.sync import async_to_sync
from django.core.management.base import BaseCommand, CommandError

from printers import services
from printers.cameras import camera_discover, camera_host
from printers.models import Printer


class Command(BaseCommand):
    help = (
        "Register printers from a JSON list of {name, protocol, base_url[, api_key, username, serial, "
        "tags]}; "
        "skips names that exist."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--tag", action="append", default=[], help="tag every printer added")
        parser.add_argument(
            "--auto-clear",
            action="store_true",
            help="take the next job without a person confirming the bed (the demo farm: nobody "
            "is there to clear simulated beds)",
        )
        parser.add_argument(
            "--find-cameras",
            action="store_true",
            help="ask each printer for its webcam (Moonraker's list, OctoPrint's settings), as saving "
            "it on the web does",
        )

    def handle(self, *args, file: Path, tag: list[str], auto_clear: bool, find_cameras: bool, **options):
        try:
            entries = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        existing = set(Printer.objects.values_list("name", flat=True))
        added = 0
        for entry in entries:
            if entry["name"] in existing:
                continue
            printer = services.printer_create(
                fields={
                    "name": entry["name"],
                    "protocol": entry["protocol"],
                    "base_url": entry["base_url"],
                    "api_key": entry.get("api_key", ""),
                    "serial": entry.get("serial", ""),  # Bambu printers
                    "username": entry.get("username", ""),  # PrusaLink printers (digest)
                    "location": entry.get("location", ""),
                    "auto_clear": auto_clear,
                },
                tags=[*tag, *entry.get("tags", [])],
                by="register_printers",
            )
            added += 1
            if find_cameras:
                _find_camera(printer)
        self.stdout.write(f"Registered {added} printer(s); {len(entries) - added} already present.")


def _find_camera(printer: Printer) -> None:
    found = async_to_sync(camera_discover)(
        protocol=printer.protocol, base_url=printer.base_url, api_key=printer.api_key
    )
    if found is not None:
        services.printer_camera_found(
            printer_id=printer.pk,
            snapshot_url=found.snapshot_url,
            stream_url=found.stream_url,
            shown=camera_host(found.snapshot_url or found.stream_url),
        )
