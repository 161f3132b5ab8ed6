"""The camera wall in headless Debian chromium: 30 simulated cameras through the real server."""

from __future__ import annotations

import time

import pytest

from printers.simulator import running_farm
from printers.tests.browser_support import launch_chromium, log_in, running_site
from printers.tests.camera_support import InFlight, set_cameras

pytestmark = pytest.mark.browser

CAMERAS = 30


def test_the_camera_wall_fills_in_a_few_snapshots_at_a_time(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with (
        running_farm(count=CAMERAS, protocol="mixed", speed=20.0) as farm,
        running_site(tmp_path, farm) as site,
    ):
        cameras = [p for p in farm.printers if p.protocol in ("moonraker", "octoprint")]
        set_cameras(tmp_path, farm)
        farm.set_camera_fault(cameras[0].index, "hang")
        farm.set_camera_fault(cameras[1].index, "garbage")
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 2400})
                log_in(page, site)
                flight = InFlight(page)
                page.goto(site["url"] + "/cameras/")
                tiles = page.locator("[data-testid=camera-tile] img")
                expect(tiles).to_have_count(len(cameras))
                # Every tile shows a picture: the camera's, or the placeholder of a broken one.
                page.wait_for_function(
                    "() => [...document.querySelectorAll('[data-testid=camera-tile] img')]"
                    ".every(img => img.complete && img.naturalWidth > 0)",
                    timeout=60_000,
                )
                # Refreshes go on (each tile again after ~3 s), never more than a few at once.
                wanted = flight.done + len(cameras)
                deadline = time.monotonic() + 60  # bounds a broken test only
                while flight.done < wanted and time.monotonic() < deadline:
                    page.wait_for_timeout(200)
                assert flight.done >= wanted
                assert 1 <= flight.most <= 4, flight.most
                # Each refresh is one request: the shown <img> reuses the image loaded for it.
                snapshots = [u for u in flight.urls if "/camera/snapshot" in u]
                assert len(snapshots) == len(set(snapshots))
                site_origin = site["url"]
                assert all(u.startswith(site_origin) or u.startswith("data:") for u in flight.urls), [
                    u for u in flight.urls if not u.startswith(site_origin)
                ][:3]
                html = page.content()
                assert "/webcam/" not in html
            finally:
                browser.close()
