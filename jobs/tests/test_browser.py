"""End to end in headless Debian chromium: upload a file, queue it, watch it complete live."""

from __future__ import annotations

import re

import pytest

from jobs.tests.factories import gcode_bytes
from printers.simulator import running_farm
from printers.tests.browser_support import launch_chromium, log_in, running_site

pytestmark = pytest.mark.browser


def test_upload_queue_and_watch_the_job_complete(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    gcode = tmp_path / "cube.gcode"
    gcode.write_bytes(gcode_bytes(seconds=240))  # 4 s at 60x: long enough to be seen printing
    with (
        running_farm(count=1, protocol="moonraker", speed=60.0) as farm,
        running_site(tmp_path / "site", farm) as site,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(page, site)
            page.goto(site["url"] + "/files/")
            page.set_input_files("[data-testid=file-input]", str(gcode))
            expect(page.locator("[data-testid=upload-status]")).to_have_text(
                re.compile("cube.gcode: stored"), timeout=15_000
            )
            # The list refreshes by itself once the uploads are done.
            page.get_by_role("link", name="cube.gcode").click()
            expect(page.get_by_text("PrusaSlicer")).to_be_visible()
            page.click("[data-testid=queue-submit]")
            expect(page.get_by_text("Queued 1 print job of cube.gcode")).to_be_visible()

            page.evaluate("window.__noReload = true")
            running = page.locator("[data-testid=active-jobs] [data-testid=job-state]")
            expect(running).to_have_text(re.compile("uploading|printing", re.I), timeout=15_000)
            finished = page.locator("[data-testid=recent-jobs] [data-testid=job-state]")
            expect(finished).to_have_text(re.compile("completed", re.I), timeout=30_000)
            assert page.evaluate("window.__noReload") is True
            assert farm.printers[0].files  # the simulated printer really holds the file
        finally:
            browser.close()
