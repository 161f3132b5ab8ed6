"""Binary G-code (libbgcode): metadata and thumbnail blocks precede the G-code blocks."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from jobs.metadata.dialects import DIALECTS, FILAMENTS, PRUSA
from jobs.metadata.fields import GcodeMetadata, Thumbnail, build
from jobs.metadata.thumbnails import checked_thumbnail

MAGIC = b"GCDE"
_BLOCK_GCODE, _BLOCK_THUMBNAIL = 1, 5
_BGCODE_FORMATS = {0: "png", 1: "jpg", 2: "qoi"}
_MAX_BLOCK = 16 * 1024 * 1024


def parse_bgcode(data: bytes) -> GcodeMetadata:
    if len(data) < 10:
        return GcodeMetadata()
    (checksum_type,) = struct.unpack_from("<H", data, 8)
    if checksum_type > 1:  # 0 none, 1 CRC32
        return GcodeMetadata()
    values: dict[str, str] = {}
    thumbnails: list[Thumbnail] = []
    for block_type, params, payload in _bgcode_blocks(data, crc_size=4 * checksum_type):
        if block_type == _BLOCK_THUMBNAIL:
            fmt, width, height = struct.unpack("<HHH", params)
            if fmt in _BGCODE_FORMATS and (
                thumbnail := checked_thumbnail(_BGCODE_FORMATS[fmt], width, height, payload)
            ):
                thumbnails.append(thumbnail)
        elif params == b"\x00\x00":  # INI encoding: "key=value" lines
            for line in payload.decode("utf-8", "replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values.setdefault(key.strip().lower(), value.strip())
    producer, _, version = values.get("producer", "").partition(" ")  # "PrusaSlicer 2.7.1"
    if producer not in DIALECTS:
        producer = version = ""
    # The metadata keys are libbgcode's, i.e. PrusaSlicer's, whoever produced the file.
    filaments = FILAMENTS["PrusaSlicer"](values)
    return build(PRUSA, values, {}, producer, version.strip()[:40], thumbnails, filaments=filaments)


def _bgcode_blocks(data: bytes, *, crc_size: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(type, parameters, uncompressed payload) of each readable block before the G-code."""
    pos = 10
    while pos + 8 <= len(data):
        block_type, compression, size = struct.unpack_from("<HHI", data, pos)
        header = 8 if compression == 0 else 12
        if block_type == _BLOCK_GCODE or block_type > 5 or compression > 3 or pos + header > len(data):
            return
        stored = size if compression == 0 else struct.unpack_from("<I", data, pos + 8)[0]
        params_end = pos + header + (6 if block_type == _BLOCK_THUMBNAIL else 2)
        end = params_end + stored + crc_size
        if end > len(data):
            return  # runs past the head: what follows is G-code anyway
        # The CRC32 covers header, parameters and data; a damaged block is skipped, not trusted.
        crc = int.from_bytes(data[end - crc_size : end], "little")
        if not crc_size or zlib.crc32(data[pos : end - crc_size]) == crc:
            payload = _inflate(data[params_end : end - crc_size], compression, size)
            if payload is not None:
                yield block_type, data[pos + header : params_end], payload
        pos = end


def _inflate(stored: bytes, compression: int, size: int) -> bytes | None:
    if compression == 0:
        return stored
    if compression != 1 or size > _MAX_BLOCK:  # heatshrink (2, 3) is only worth it for G-code blocks
        return None
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(stored, size)
    except zlib.error:
        return None
    return data if len(data) == size and inflater.eof else None
