"""The printers' own thumbnails of the files they print, kept on the server's disk.

A print started outside printfarm (from Mainsail, OctoPrint, the printer's screen) has no
library file and so no image of ours; the printer often has one (Moonraker's `.thumbs/`,
OctoPrint's PrusaSlicer Thumbnails plugin). The poller's driver fetches it once per file, in
the background (printers.drivers.thumbnail_fetch), and stores it here under a key made from
the printer's address, the file's path, size and time: the status row carries the key, the
card an URL with it, and printers.views.printer_thumbnail serves the bytes. So a browser never
talks to a printer, a page never waits on one, and an image is fetched once, not per viewer.

Bounded: an image is at most MAX_BYTES and must really be a PNG or JPEG (Pillow reads it);
the directory keeps the MAX_FILES newest images.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

from django.conf import settings
from PIL import Image, UnidentifiedImageError

MAX_BYTES = 1024 * 1024
MAX_FILES = 500  # a farm's prints in flight and recently done; the oldest go first
MAX_SIDE = 2048  # slicers write a few hundred pixels a side
# Of a printer's several sizes, the largest up to this many pixels a side (a card shows 40 px,
# the printer page more; 300x300 is PrusaSlicer's and Orca's usual big one).
WANTED_SIDE = 300

_KEY = re.compile(r"[0-9a-f]{32}")
_TYPES = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg")}
_CONTENT_TYPES = dict(_TYPES.values())


class NotAnImage(ValueError):
    """The printer's bytes are not a PNG or JPEG we show (or too big)."""


def cache_dir() -> Path:
    default = settings.DATA_DIR / "printer-thumbnails"
    return Path(getattr(settings, "PRINTFARM_PRINTER_THUMBNAILS_DIR", default))


def thumbnail_key(*parts: object) -> str:
    """The cache key of one image: a printer's address, the file's path and what tells its
    versions apart (size, modification time)."""
    return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:32]


def is_key(value: object) -> bool:
    return isinstance(value, str) and _KEY.fullmatch(value) is not None


def choose_size(sizes: list[tuple[int, int]]) -> int | None:
    """Which of (width, height) to fetch: the largest up to WANTED_SIDE, else the smallest."""
    if not sizes:
        return None
    fitting = [i for i, (w, h) in enumerate(sizes) if max(w, h) <= WANTED_SIDE]
    if fitting:
        return max(fitting, key=lambda i: sizes[i][0] * sizes[i][1])
    return min(range(len(sizes)), key=lambda i: sizes[i][0] * sizes[i][1])


def checked_image(data: bytes) -> str:
    """The file extension ("png", "jpg") of a thumbnail fit to show; NotAnImage otherwise.
    Pillow reads the header first: only a PNG or JPEG of a sane size is then decoded whole
    (a truncated or corrupt one fails there, not in the browser)."""
    if len(data) > MAX_BYTES:
        raise NotAnImage(f"{len(data)} bytes, more than {MAX_BYTES}")
    try:
        with Image.open(io.BytesIO(data), formats=tuple(_TYPES)) as image:
            kind, (width, height) = image.format, image.size
            if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
                raise NotAnImage(f"{width}x{height} pixels")
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, NotAnImage):
            raise
        raise NotAnImage(f"not a readable PNG or JPEG image: {exc}") from exc
    if kind not in _TYPES:
        raise NotAnImage(f"a {kind} image, not PNG or JPEG")
    return _TYPES[kind][0]


def cached(key: str) -> tuple[Path, str] | None:
    """The stored image of `key` and its content type, or None."""
    if not is_key(key):
        return None
    for ext, kind in _CONTENT_TYPES.items():
        path = cache_dir() / f"{key}.{ext}"
        if path.is_file():
            return path, kind
    return None


def store(key: str, data: bytes) -> Path:
    """Check and keep an image under `key` (NotAnImage when it isn't one); blocking, so the
    poller calls it in a thread."""
    if not is_key(key):
        raise ValueError(f"bad thumbnail key {key!r}")
    ext = checked_image(data)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        path = folder / f"{key}.{ext}"
        os.replace(tmp, path)  # a reader sees the whole image or none
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    prune(folder)
    return path


def prune(folder: Path, keep: int = MAX_FILES) -> None:
    """Drop all but the `keep` newest images."""
    try:
        entries = [(e.stat().st_mtime, e.path) for e in os.scandir(folder) if not e.name.startswith(".")]
    except OSError:
        return
    if len(entries) <= keep:
        return
    entries.sort(reverse=True)
    for _, path in entries[keep:]:
        with contextlib.suppress(OSError):
            os.unlink(path)
