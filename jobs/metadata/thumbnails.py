"""Thumbnails, shared by text and binary G-code: checked against their own image header before
anything decodes them."""

from __future__ import annotations

import struct

from jobs.metadata.fields import Thumbnail

_IMAGE_MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff", "qoi": b"qoif"}
# Slicers write a few hundred pixels a side; a decoder allocates what the image header claims.
MAX_THUMBNAIL_SIDE = 8192
MAX_THUMBNAIL_PIXELS = 4096 * 4096
# JPEG frame headers (SOF0-15) carry the size; C4, C8 and CC are other segments.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def thumbnail_size_ok(width: int, height: int) -> bool:
    """Small enough to decode on a Raspberry Pi and to send to a browser."""
    sides_ok = 0 < width <= MAX_THUMBNAIL_SIDE and 0 < height <= MAX_THUMBNAIL_SIDE
    return sides_ok and width * height <= MAX_THUMBNAIL_PIXELS


def checked_thumbnail(fmt: str, width: int, height: int, data: bytes) -> Thumbnail | None:
    if not (thumbnail_size_ok(width, height) and data.startswith(_IMAGE_MAGIC[fmt])):
        return None
    # The block's begin line can say 300x300 while the image header says 13000x13000.
    size = image_size(fmt, data)
    if size is None or not thumbnail_size_ok(*size):
        return None
    return Thumbnail(width, height, fmt, data)


def image_size(fmt: str, data: bytes) -> tuple[int, int] | None:
    """(width, height) as the image's own header declares it; None if there is no readable header."""
    if fmt == "png":
        return struct.unpack_from(">II", data, 16) if data[12:16] == b"IHDR" and len(data) >= 24 else None
    if fmt == "qoi":
        return struct.unpack_from(">II", data, 4) if len(data) >= 12 else None
    pos = 2  # JPEG: walk the segments after SOI up to the frame header
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
        elif marker in _JPEG_FRAMES:
            if pos + 9 > len(data):
                return None
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        elif marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame header
            return None
        else:
            pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return None
