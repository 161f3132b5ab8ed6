"""Poll every enabled printer (or this poller's shard of them) and dispatch the queue to them,
until SIGTERM/SIGINT.

In jobs, not printers: the poller runs the dispatcher, and printers never imports jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import resource
import signal
from concurrent.futures import ThreadPoolExecutor

import uvloop
from django.core.management.base import BaseCommand

from jobs.dispatch import Dispatcher
from notifications.sender import Sender
from printers import changes
from printers.coordinator import Coordinator, parse_shard
from printers.management.arguments import positive

IO_THREADS = 64  # blocking connects and uploads in flight at once


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _raise_open_file_limit() -> None:
    # One keep-alive socket per printer: a large farm needs more than the common 1,024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Command(BaseCommand):
    help = (
        "Poll every enabled printer on its own schedule and record status changes. "
        "Runs until SIGTERM/SIGINT; --shard K/N splits a large farm between pollers."
    )

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=positive(float), help="seconds between polls of one printer")
        parser.add_argument("--concurrency", type=positive(int), help="requests in flight at most")
        parser.add_argument("--timeout", type=positive(float), help="per-request timeout, seconds")
        parser.add_argument(
            "--shard",
            type=_shard,
            default=(0, 1),
            metavar="K/N",
            help="poll only printers whose id %% N == K (0 <= K < N)",
        )
        parser.add_argument(
            "--once", action="store_true", help="poll every printer once, write the changes, exit"
        )

    def handle(self, *args, interval, concurrency, timeout, shard, once, **options):
        _raise_open_file_limit()
        coordinator = Coordinator(interval=interval, concurrency=concurrency, timeout=timeout, shard=shard)
        if once:
            asyncio.run(coordinator.run_once())
            self.stdout.write(
                f"Polled {len(coordinator.printers)} printer(s): {coordinator.errors} failed, "
                f"{coordinator.writes} status change(s) written."
            )
            return
        # uvloop: the poller is one event loop doing ~1,000 small HTTP exchanges a second;
        # libuv's loop takes a noticeable share off its CPU (BENCHMARKS.md).
        uvloop.run(self._run(coordinator))

    async def _run(self, coordinator: Coordinator) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Push connections connect in a thread (aiomqtt: TCP and TLS handshake, up to the poll
        # timeout for a black-holed printer) and FTPS uploads run in one: with the default
        # pool (cores + 4) a few dead printers would queue every healthy one's reconnect.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="poller-io"))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        dispatcher = Dispatcher(coordinator)
        sender = Sender()
        try:
            await sender.start(poller_shard=coordinator.shard)  # first: sees a dead predecessor's beat
            await coordinator.start()
            await dispatcher.start()
            # Django, the drivers and 1,000 pollers are alive for good: keep them out of
            # the collector's full passes, which otherwise stall every poll for ~70 ms.
            gc.collect()
            gc.freeze()
            await stop.wait()
        finally:
            try:
                await sender.aclose()
                await dispatcher.aclose()
                await coordinator.aclose()
                await changes.drain()  # the last flush's cards reach open dashboards (Redis)
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
