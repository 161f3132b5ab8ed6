"""A driver's fetch of the printer's thumbnail of the file it prints: once per file, in a task
of its own, so a poll never waits on an image (printers.thumbnails keeps them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

import httpx

from printers import thumbnails
from printers.drivers.base import DriverError
from printers.drivers.rest import TRANSPORT_ERRORS, RestDriver, http_error

logger = logging.getLogger(__name__)

# An image is small and the printer is near; one that takes longer is given up (the card
# simply shows none) rather than holding one of the shared client's connections.
DOWNLOAD_TIMEOUT = httpx.Timeout(10.0)

# Which image a file has: its key (printers.thumbnails.thumbnail_key) and how to get its bytes;
# None when the printer has none.
Find = Callable[[], Awaitable["tuple[str, Callable[[], Awaitable[bytes]]] | None"]]


def printer_path(found: str) -> str | None:
    """An image's address as a printer names it ("/thumb/l/usb/A~1.BGC", "plugin/…/cube.png?1"),
    without its leading slash, when it is a path under the printer's own address: never
    another host's, never climbing out of it. None otherwise."""
    path = found.split("?", 1)[0]
    if not found or "://" in found or found.startswith(("//", "\\")) or ".." in path.split("/"):
        return None
    return found.lstrip("/")


class ThumbnailFetch:
    """Which file's image a driver fetched, and whether it is stored."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.file = ""  # the file last looked at ("" before any)
        self.key = ""  # its image's key once stored, else ""
        self.task: asyncio.Task[None] | None = None
        self.fetches = 0  # images asked of the printer (for tests and benchmarks)

    def shown(self, file: str) -> str:
        """The key to report for `file`: "" until its image is stored."""
        return self.key if file and file == self.file else ""

    def wanted(self, file: str) -> bool:
        """True the first time `file` is asked about (then `start` it or let it be)."""
        if not file or file == self.file:
            return False
        if self.task is not None:
            self.task.cancel()  # a print that changed before its image came
        self.file, self.key, self.task = file, "", None
        return True

    def start(self, file: str, find: Find) -> None:
        """Fetch `file`'s image in the background (`find`: which, and how), unless it is
        stored already."""
        self.task = asyncio.create_task(self._run(file, find), name=f"thumbnail {self.base_url}")

    async def _run(self, file: str, find: Find) -> None:
        try:
            found = await find()
            if found is None:
                return
            key, get = found
            if not await self.stored(key):
                data = await get()
                await asyncio.to_thread(thumbnails.store, key, data)
            if file == self.file:
                self.key = key
        except (DriverError, thumbnails.NotAnImage, OSError) as exc:
            # The card shows no image; the file is not asked again (the next print is).
            logger.info("No thumbnail of %s from %s: %s", file, self.base_url, exc)
        except RuntimeError as exc:  # httpx: the driver's client was closed (a poller stopping)
            logger.debug("No thumbnail of %s from %s: %s", file, self.base_url, exc)

    async def stored(self, key: str) -> bool:
        """Is this image kept already (a poller restarted mid-print)? Refreshes its age."""
        found = await asyncio.to_thread(thumbnails.cached, key)
        if found is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(os.utime, found[0])
        return found is not None

    async def download(self, driver: RestDriver, url: httpx.URL, *, auth: httpx.Auth | None = None) -> bytes:
        """GET an image of at most thumbnails.MAX_BYTES, streamed: a bigger one is refused
        after MAX_BYTES, never read whole. `auth`: the driver's own (PrusaLink's digest)."""
        self.fetches += 1
        limit = thumbnails.MAX_BYTES
        extra = {"auth": auth} if auth is not None else {}
        try:
            async with driver.client.stream(
                "GET", url, headers=driver._headers, timeout=DOWNLOAD_TIMEOUT, **extra
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise http_error(response)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise thumbnails.NotAnImage(f"{declared} bytes, more than {limit}")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > limit:
                        raise thumbnails.NotAnImage(f"more than {limit} bytes")
                return bytes(data)
        except TRANSPORT_ERRORS as exc:
            raise DriverError(f"Could not fetch the thumbnail: {type(exc).__name__}") from exc
