"""G-code files made for tests: real bytes, stored through the library like an upload."""

from __future__ import annotations

import hashlib
import uuid

from jobs.demo import gcode_bytes
from jobs.library import IncomingFile, files_dir, store
from jobs.models import GcodeFile

__all__ = ["gcode_bytes", "make_file"]


def make_file(name: str = "part.gcode", *, unique: bool = True, **options) -> GcodeFile:
    data = gcode_bytes(**options)
    if unique:  # a distinct hash, so each call is a new library entry
        data += f"; id {uuid.uuid4().hex}\n".encode()
    incoming = files_dir() / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f"{uuid.uuid4().hex}.part"
    path.write_bytes(data)
    received = IncomingFile(path=path, name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return store(received).file
