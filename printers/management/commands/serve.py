"""Run the web process: uvicorn serving Django and the channels websocket."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from printers.management.arguments import positive


class Command(BaseCommand):
    help = "Serve pages, HTMX partials and the /ws/farm/ websocket (uvicorn, uvloop, httptools)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=positive(int), default=8000)
        parser.add_argument("--workers", type=positive(int), default=1, help="processes sharing the port")

    def handle(self, *args, host: str, port: int, workers: int, **options):
        # This process owns uploads: what a killed one left goes before new ones arrive. By
        # command name, since printers never imports jobs; housekeeping never stops the start.
        try:
            call_command("clean_files", stdout=self.stdout)
        except Exception:
            logging.getLogger(__name__).exception("Cleaning upload leftovers failed; serving anyway")
        # uvicorn, not daphne: it stops reading a request body while the app is behind
        # (flow control), so a 1 GB upload streams through a few MB of memory; daphne
        # queues the whole body in memory before the app sees a byte.
        uvicorn.run("printfarm.asgi:application", host=host, port=port, workers=workers, **uvicorn_options())


def uvicorn_options() -> dict[str, Any]:
    """How the web process runs uvicorn (the login lockout tests start a server with these)."""
    return {
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "lifespan": "off",  # Django's ASGI handler has no lifespan events
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        "log_level": "info",
        # X-Forwarded-For / -Proto only behind a proxy (see PRINTFARM_BEHIND_PROXY in settings).
        "proxy_headers": settings.PRINTFARM_BEHIND_PROXY,
    }
