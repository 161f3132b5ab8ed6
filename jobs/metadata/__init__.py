"""Slicer metadata (time, filament, temperatures, thumbnails) read from G-code, binary G-code
and 3MF print files.

`fields` is the record and its limits, `dialects` each slicer's keys, `text` and `bgcode` the
two file formats, `threemf` the archive holding text G-code per plate, `thumbnails` the images.
"""

from __future__ import annotations

import os

from jobs.metadata.bgcode import MAGIC as _BGCODE_MAGIC
from jobs.metadata.bgcode import parse_bgcode
from jobs.metadata.fields import Filament, GcodeMetadata, Plate, Thumbnail
from jobs.metadata.text import parse_text
from jobs.metadata.threemf import ArchiveRefused, read_threemf
from jobs.metadata.thumbnails import MAX_THUMBNAIL_PIXELS, MAX_THUMBNAIL_SIDE, image_size, thumbnail_size_ok

__all__ = [
    "HEAD_BYTES",
    "ArchiveRefused",
    "Filament",
    "Plate",
    "MAX_THUMBNAIL_PIXELS",
    "MAX_THUMBNAIL_SIDE",
    "TAIL_BYTES",
    "GcodeMetadata",
    "Thumbnail",
    "image_size",
    "is_threemf",
    "parse_text",
    "read_metadata",
    "thumbnail_size_ok",
]

HEAD_BYTES = 1024 * 1024  # slicer thumbnails can be several hundred KB of base64
TAIL_BYTES = 256 * 1024  # PrusaSlicer's config block alone is 40-60 KB


def is_threemf(name: str | os.PathLike[str]) -> bool:
    return str(name).lower().endswith(".3mf")


def read_metadata(path: str | os.PathLike[str], *, name: str = "") -> GcodeMetadata:
    """Read a text or binary G-code file's metadata; only its head and tail are read.

    A 3MF (by `name`, or the path's own name) is read from its archive, and refused with
    `ArchiveRefused` when unsafe or unprintable.
    """
    if is_threemf(name or path):
        return read_threemf(path, head_bytes=HEAD_BYTES, tail_bytes=TAIL_BYTES)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size <= HEAD_BYTES + TAIL_BYTES:
            head, tail = f.read(), b""
        else:
            head = f.read(HEAD_BYTES)
            # One byte more than the tail, so parse_text can tell a whole first line from a cut one.
            f.seek(size - TAIL_BYTES - 1)
            tail = f.read(TAIL_BYTES + 1)
    if head.startswith(_BGCODE_MAGIC):
        return parse_bgcode(head)
    return parse_text(head, tail)
