"""In headless Debian chromium: a 3MF's colour swatches show on the library and its page, and the
Content-Security-Policy refuses nothing on the way."""

from __future__ import annotations

import re

import pytest

from jobs.tests.threemf_samples import two_plates
from printers.simulator import running_farm
from printers.tests.browser_support import launch_chromium, log_in, running_site
from printfarm.tests.test_csp_browser import RECORD_VIOLATIONS, VIOLATION

pytestmark = pytest.mark.browser


def test_colour_swatches_show_without_a_policy_violation(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    tray = two_plates(tmp_path / "tray.gcode.3mf")
    refused: list[str] = []
    with (
        running_farm(count=1, protocol="moonraker", speed=60.0) as farm,
        running_site(tmp_path / "site", farm) as site,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(RECORD_VIOLATIONS)
            page.on("console", lambda msg: VIOLATION.search(msg.text) and refused.append(msg.text))
            log_in(page, site)
            page.goto(site["url"] + "/files/")
            page.set_input_files("[data-testid=file-input]", str(tray))
            expect(page.locator("[data-testid=upload-status]")).to_have_text(
                re.compile("tray.gcode.3mf: stored"), timeout=15_000
            )
            row = page.locator("[data-testid=file-row]", has_text="tray.gcode.3mf")
            expect(row.locator("svg.swatch")).to_have_count(2)

            row.get_by_role("link", name="tray.gcode.3mf").click()
            swatches = page.locator("[data-testid=file-facts] [data-testid=filaments] svg.swatch rect")
            expect(swatches).to_have_count(2)
            swatch = swatches.first
            expect(swatch).to_be_visible()
            # The fill is drawn: the computed colour, not only the attribute.
            assert swatch.evaluate("r => getComputedStyle(r).fill") == "rgb(255, 0, 0)"
            expect(page.locator("[data-testid=plate-row]")).to_have_count(2)
            refused.extend(page.evaluate("window.__csp || []"))
            assert refused == []
        finally:
            browser.close()
