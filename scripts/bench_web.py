"""Benchmark: the web process serving the dashboard of 200 printers (p50 / p99 page time).

Seeds a throwaway SQLite farm of N printers with live-looking statuses, starts the web server the way
run_farm.sh does, logs in, then (1) times sequential full-page and HTMX-grid requests from one
client and (2) loads the page with wrk at a few concurrent connections when wrk is installed.
Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(count: int) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from printers import services
    from printers.state import PrinterStatus, State

    call_command("migrate", verbosity=0)
    get_user_model().objects.create_user("bench", password="bench-password-1")
    rng = random.Random(7)
    readings = []
    for i in range(count):
        printer = services.printer_create(
            fields={
                "name": f"printer-{i:03d}",
                "protocol": "moonraker" if i % 2 == 0 else "octoprint",
                "base_url": f"http://127.0.0.1:{20000 + i}",
                "location": f"Rack {i // 20}",
            },
            tags=[f"rack-{i // 20}", "pla" if i % 3 else "petg"],
        )
        state = rng.choice(
            [State.PRINTING] * 5 + [State.IDLE] * 3 + [State.PAUSED, State.OFFLINE, State.ERROR]
        )
        printing = state in State.RUNNING
        readings.append(
            (
                printer.pk,
                PrinterStatus(
                    state=state,
                    message="Thermal runaway on extruder" if state == State.ERROR else "",
                    hotend_actual=round(rng.uniform(190, 240), 1) if printing else 23.0,
                    hotend_target=215.0 if printing else 0.0,
                    bed_actual=round(rng.uniform(55, 61), 1) if printing else 22.5,
                    bed_target=60.0 if printing else 0.0,
                    progress=round(rng.uniform(0, 100), 1) if printing else None,
                    file=f"part-{i}.gcode" if printing else "",
                    elapsed=rng.randint(60, 20000) if printing else None,
                    remaining=rng.randint(60, 20000) if printing else None,
                    firmware="Moonraker v0.9.3",
                ),
            )
        )
    services.printer_status_record_many(readings=readings)


def login(base: str):
    import httpx

    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    reply = client.post(
        "/login/",
        data={"username": "bench", "password": "bench-password-1", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/login/"},
    )
    if "sessionid" not in client.cookies:
        raise SystemExit(f"login failed: HTTP {reply.status_code}")
    return client


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def time_requests(client, path: str, count: int, headers: dict | None = None) -> dict:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        response = client.get(path, headers=headers or {})
        times.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: HTTP {response.status_code}")
    return {
        "requests": count,
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(percentile(times, 99), 1),
        "bytes": len(response.content),
    }


def run_wrk(base: str, path: str, cookie: str, seconds: int, connections: int) -> dict | None:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Cookie: sessionid={cookie}",
            f"{base}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "connections": connections,
        "req_per_s": rps,
        "p50": lat.get("50"),
        "p99": lat.get("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--printers", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--wrk-connections", type=int, default=10)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="printfarm-bench-web-"))
    env = {
        **os.environ,
        "PRINTFARM_DATA_DIR": str(data),
        "SECRET_KEY": "bench-only-key",
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    os.environ.update({k: env[k] for k in ("PRINTFARM_DATA_DIR", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")})
    seed(args.printers)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        client = login(base)
        time_requests(client, "/", 10)  # warm up templates and connections
        results = {
            "printers": args.printers,
            "dashboard_page": time_requests(client, "/", args.requests),
            "dashboard_grid_htmx": time_requests(client, "/", args.requests, {"HX-Request": "true"}),
            "wall_page": time_requests(client, "/?view=wall", args.requests),
            "wrk_dashboard": run_wrk(
                base, "/", client.cookies["sessionid"], args.wrk_seconds, args.wrk_connections
            ),
        }
        client.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(data, ignore_errors=True)

    print(f"Dashboard of {args.printers} printers, uvicorn (manage.py serve), SQLite, one sequential client:")
    for key in ("dashboard_page", "dashboard_grid_htmx", "wall_page"):
        r = results[key]
        print(
            f"  {key:22s} p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   {r['bytes'] / 1024:.0f} KiB"
        )
    if results["wrk_dashboard"]:
        w = results["wrk_dashboard"]
        print(
            f"  wrk {w['connections']} connections: {w['req_per_s']:.0f} req/s, "
            f"p50 {w['p50']}, p99 {w['p99']}, "
            f"non-2xx {w['non_2xx']}"
        )
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "web.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
