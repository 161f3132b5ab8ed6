"""Run the web process: uvicorn serving Django and the channels websocket."""

from __future__ import annotations

import uvicorn
from django.core.management.base import BaseCommand

from printers.management.commands.poll_printers import _positive


class Command(BaseCommand):
    help = "Serve pages, HTMX partials and the /ws/farm/ websocket (uvicorn, uvloop, httptools)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=_positive(int), default=8000)
        parser.add_argument("--workers", type=_positive(int), default=1, help="processes sharing the port")

    def handle(self, *args, host: str, port: int, workers: int, **options):
        # uvicorn, not daphne: it stops reading a request body while the app is behind
        # (flow control), so a 1 GB upload streams through a few MB of memory; daphne
        # queues the whole body in memory before the app sees a byte.
        uvicorn.run(
            "printfarm.asgi:application",
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            ws="websockets-sansio",
            lifespan="off",  # Django's ASGI handler has no lifespan events
            access_log=False,
            timeout_graceful_shutdown=5,
            log_level="info",
        )
