"""Put a few demo G-code files in the library (once), so the demo farm has something to queue."""

from __future__ import annotations

import hashlib
import uuid

from django.core.management.base import BaseCommand

from jobs.demo import gcode_bytes
from jobs.library import IncomingFile, files_dir, store

# name, simulated print seconds, thumbnail colour
DEMO = [
    ("demo-calibration-cube.gcode", 20 * 60, (37, 99, 235)),
    ("demo-benchy.gcode", 75 * 60, (234, 88, 12)),
    ("demo-phone-stand.gcode", 3 * 3600, (13, 148, 136)),
]


class Command(BaseCommand):
    help = "Add the demo G-code files to the library (the same content is stored only once)."

    def handle(self, *args, **options):
        incoming = files_dir() / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        for name, seconds, colour in DEMO:
            data = gcode_bytes(seconds=seconds, thumbnail=colour, padding=200_000)
            path = incoming / f"{uuid.uuid4().hex}.part"
            path.write_bytes(data)
            sha = hashlib.sha256(data).hexdigest()
            stored = store(IncomingFile(path=path, name=name, size=len(data), sha256=sha))
            if stored.created:
                self.stdout.write(stored.message)
