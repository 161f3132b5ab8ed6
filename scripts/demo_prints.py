"""Give the demo farm something to show: a few prints under way, one paused printer's worth
of variety, and one printer switched off (via the simulator's control API)."""

import json
import sys
import urllib.request

control = sys.argv[1].rstrip("/")


def post(path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"{control}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=5).close()


with urllib.request.urlopen(f"{control}/printers", timeout=5) as response:
    printers = json.load(response)

files = ["benchy.gcode", "calibration-cube.gcode", "phone-stand.gcode", "gearbox-housing.gcode"]
for i, printer in enumerate(printers):
    if i % 2 == 0:  # half the farm is busy, jobs of 1-4 simulated hours
        post(
            f"/printers/{printer['index']}/print", {"filename": files[i % 4], "duration": 3600 * (1 + i % 4)}
        )
if len(printers) > 3:
    post(f"/printers/{printers[-1]['index']}/fault", {"fault": "offline"})
print(f"Demo farm: {len(printers)} simulated printers, {(len(printers) + 1) // 2} printing, 1 switched off.")
