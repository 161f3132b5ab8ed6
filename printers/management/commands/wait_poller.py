"""Wait until the poller has reported and read every enabled printer once (run_farm.sh runs it
so the login it prints comes after the start-up lines, not lost among them)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from printers.health import poller_health
from printers.models import Printer, PrinterStatusRow


class Command(BaseCommand):
    help = "Wait (at most --timeout seconds) for the poller's first report on every enabled printer."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=20.0)

    def handle(self, *args, timeout: float, **options):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            enabled = Printer.objects.filter(enabled=True).count()
            # Created at revision 1 with the printer; the first reading that says anything bumps it.
            seen = PrinterStatusRow.objects.filter(printer__enabled=True, revision__gt=1).count()
            if poller_health().ok and seen >= enabled:
                return
            time.sleep(0.5)
        self.stderr.write(f"The poller has not read every printer within {timeout:g} s; carrying on.")
