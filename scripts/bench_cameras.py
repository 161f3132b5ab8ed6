"""Benchmark: the camera wall with 100 simulated cameras (issue 12).

A simulated farm of N Moonraker printers, each with its webcam (JPEG snapshots drawn once a
second per camera), registered in a throwaway SQLite site run as `manage.py serve` +
`poll_printers` (printers.tests.browser_support.running_site). V headless Chromium pages (each
its own browser context, so its own ~6 connections) keep /cameras/ open for D seconds.

Reported:
* upstream fetches per second: snapshot requests the simulated cameras answered (what the
  server's coalescing cache costs the cameras, whatever the number of viewers);
* snapshot latency seen by the browsers (Resource Timing, request start to response end);
* refreshes per tile per minute, and the most snapshot requests in flight on one page;
* page responsiveness: main-thread long tasks (> 50 ms), the lateness of a 100 ms timer,
  and the time a page's fetch of another small page (/poller-health/) takes meanwhile.

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBE = """
(() => {
  window.__bench = { lag: [], longTasks: [], fetches: [] };
  performance.setResourceTimingBufferSize(100000);
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__bench.longTasks.push(e.duration);
    }).observe({ type: "longtask", buffered: true });
  } catch (e) {}
  let due = performance.now() + 100;
  const tick = () => {
    const now = performance.now();
    window.__bench.lag.push(Math.max(0, now - due));
    due = now + 100;
    setTimeout(tick, 100);
  };
  setTimeout(tick, 100);
  setInterval(async () => {
    const t0 = performance.now();
    try { await fetch("/poller-health/", { cache: "no-store" }); } catch (e) {}
    window.__bench.fetches.push(performance.now() - t0);
  }, 1000);
})();
"""

COLLECT = """
() => ({
  ...window.__bench,
  snapshots: performance.getEntriesByType("resource")
    .filter((e) => e.name.includes("/camera/snapshot"))
    .map((e) => e.responseEnd - e.startTime),
})
"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cameras", type=int, default=100)
    parser.add_argument("--viewers", type=int, default=3, help="browser pages on the wall at once")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path, default=ROOT / "bench-results" / "cameras.json")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from printers.simulator import running_farm
    from printers.tests.browser_support import launch_chromium, log_in, running_site
    from printers.tests.camera_support import InFlight, set_cameras

    with (
        tempfile.TemporaryDirectory(prefix="printfarm-bench-cameras-") as tmp,
        running_farm(count=args.cameras, protocol="moonraker", speed=10.0) as farm,
        running_site(Path(tmp), farm) as site,
    ):
        set_cameras(Path(tmp), farm)
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                pages, flights = [], []
                filled = 0.0
                for viewer in range(args.viewers):
                    context = browser.new_context(viewport={"width": 1920, "height": 3000})
                    page = context.new_page()
                    log_in(page, site)
                    page.add_init_script(PROBE)
                    flights.append(InFlight(page))
                    started = time.monotonic()
                    page.goto(site["url"] + "/cameras/")
                    pages.append(page)
                    if viewer == 0:  # the first viewer: how long until every tile has a picture
                        page.wait_for_function(
                            "() => [...document.querySelectorAll('[data-testid=camera-tile] img')]"
                            ".every(img => img.complete && img.naturalWidth > 0)",
                            timeout=120_000,
                        )
                        filled = time.monotonic() - started
                before = farm.cameras.snapshots
                t0 = time.monotonic()
                for page in pages:
                    page.evaluate(
                        "() => { performance.clearResourceTimings(); "
                        "Object.assign(window.__bench, {lag: [], longTasks: [], fetches: []}); }"
                    )
                for flight in flights:
                    flight.most = flight.now
                while time.monotonic() - t0 < args.seconds:
                    pages[0].wait_for_timeout(500)
                elapsed = time.monotonic() - t0
                upstream = farm.cameras.snapshots - before
                collected = [page.evaluate(COLLECT) for page in pages]
            finally:
                browser.close()

    snapshots = [v for c in collected for v in c["snapshots"]]
    lag = [v for c in collected for v in c["lag"]]
    fetches = [v for c in collected for v in c["fetches"]]
    long_tasks = [v for c in collected for v in c["longTasks"]]
    result = {
        "cameras": args.cameras,
        "viewers": args.viewers,
        "seconds": round(elapsed, 1),
        "first_wall_filled_s": round(filled, 2),
        "upstream_fetches_per_s": round(upstream / elapsed, 1),
        "browser_snapshots_per_s": round(len(snapshots) / elapsed, 1),
        "refreshes_per_tile_per_min": round(len(snapshots) / args.viewers / args.cameras / elapsed * 60, 1),
        "snapshot_ms_p50": round(pct(snapshots, 0.5), 1),
        "snapshot_ms_p99": round(pct(snapshots, 0.99), 1),
        "max_in_flight_per_page": max(f.most for f in flights),
        "timer_lag_ms_p50": round(pct(lag, 0.5), 1),
        "timer_lag_ms_p99": round(pct(lag, 0.99), 1),
        "timer_lag_ms_max": round(max(lag, default=float("nan")), 1),
        "long_tasks": len(long_tasks),
        "long_task_ms_max": round(max(long_tasks, default=0.0), 1),
        "other_fetch_ms_p50": round(pct(fetches, 0.5), 1),
        "other_fetch_ms_p99": round(pct(fetches, 0.99), 1),
        "other_fetch_ms_mean": round(statistics.fmean(fetches), 1) if fetches else float("nan"),
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
