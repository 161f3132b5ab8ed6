"""What the camera browser test and scripts/bench_cameras.py share: a running site's printers
given their simulated webcams, and a count of the snapshot requests a page has in flight."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from printers.simulator import SimulatedFarm
from printers.tests.browser_support import ROOT

# The same environment browser_support.running_site gives its processes (the SECRET_KEY
# matters: camera URLs are encrypted with a key derived from it).
SITE_SECRET_KEY = "browser-test-key"
CAMERA_PROTOCOLS = ("moonraker", "octoprint")  # the simulator's printers with a webcam

_SET_CAMERAS = """
import json, sys
from printers.models import Printer
for name, snapshot, stream in json.loads(sys.argv[1]):
    Printer.objects.filter(name=name).update(camera_snapshot_url=snapshot, camera_stream_url=stream)
"""


def set_cameras(data_dir: Path, farm: SimulatedFarm) -> None:
    """Give every simulated Moonraker and OctoPrint printer registered in the site at `data_dir`
    its camera's URLs."""
    import json

    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "PRINTFARM_DATA_DIR": str(data_dir),
        "SECRET_KEY": SITE_SECRET_KEY,
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",
    }
    rows = [
        [p.name, f"{p.base_url}/webcam/?action=snapshot", f"{p.base_url}/webcam/?action=stream"]
        for p in farm.printers
        if p.protocol in CAMERA_PROTOCOLS
    ]
    script = f"import sys; sys.argv[1:] = [{json.dumps(json.dumps(rows))}]\n{_SET_CAMERAS}"
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", script],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


class InFlight:
    """Counts the page's snapshot requests in flight (Playwright request events), and the most
    at once; every request the page makes is kept, to check none goes to a camera."""

    def __init__(self, page, marker: str = "/camera/snapshot") -> None:
        self.marker = marker
        self.now = 0
        self.most = 0
        self.done = 0
        self.urls: list[str] = []
        self.started: dict[object, float] = {}
        self.latencies: list[float] = []
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _start(self, request) -> None:
        import time

        self.urls.append(request.url)
        if self.marker in request.url:
            self.now += 1
            self.most = max(self.most, self.now)
            self.started[request] = time.perf_counter()

    def _end(self, request) -> None:
        import time

        started = self.started.pop(request, None)
        if started is not None:
            self.now -= 1
            self.done += 1
            self.latencies.append(time.perf_counter() - started)
