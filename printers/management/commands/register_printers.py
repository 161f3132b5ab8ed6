"""Add the printers listed in a JSON file (as written by simulate_printers --printers-file)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from printers import services
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

    def handle(self, *args, file: Path, tag: list[str], auto_clear: bool, **options):
        try:
            entries = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        existing = set(Printer.objects.values_list("name", flat=True))
        added = 0
        for entry in entries:
            if entry["name"] in existing:
                continue
            services.printer_create(
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
        self.stdout.write(f"Registered {added} printer(s); {len(entries) - added} already present.")
