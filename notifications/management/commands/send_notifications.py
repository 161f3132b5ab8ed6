"""Send notifications, and watch the pollers, until SIGTERM/SIGINT.

Every poller already sends; run this as a process of its own when "poller stopped" must reach
you while it happens (a dead poller can't say so itself; the next one to start can).
"""

from __future__ import annotations

import asyncio
import signal

from django.core.management.base import BaseCommand

from notifications.sender import Sender
from printers.management.arguments import positive


class Command(BaseCommand):
    help = "Route and send notifications and run the periodic checks (offline printers, queue, pollers)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=positive(float), help="seconds between looks at the outbox")

    def handle(self, *args, interval, **options):
        asyncio.run(self._run(Sender(interval=interval)))

    async def _run(self, sender: Sender) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await sender.start()
        try:
            await stop.wait()
        finally:
            await sender.aclose()
