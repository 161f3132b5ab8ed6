"""End to end in headless Debian chromium: the real web server, poller and simulator processes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from printers.simulator import running_farm
from printers.tests.browser_support import launch_chromium, running_site

pytestmark = pytest.mark.browser


@pytest.fixture
def farm_site(tmp_path):
    """A simulated farm of 3 idle printers, served by `manage.py serve` + poll_printers."""
    with running_farm(count=3, protocol="mixed", speed=20.0) as farm, running_site(tmp_path, farm) as site:
        yield site


def test_dashboard_updates_live_and_pauses_from_card(farm_site):
    from playwright.sync_api import expect, sync_playwright

    farm = farm_site["farm"]
    printing_name = farm.printers[0].name
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(farm_site["url"] + "/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", farm_site["password"])
            page.click("button[type=submit]")

            cards = page.locator("[id^=printer-card-]")
            expect(cards).to_have_count(3)
            # Start the print only once the page is live: started with the site, it could end
            # before a loaded machine got the site up. 600 simulated s at 20x: 30 s of progress.
            expect(page.locator("#live-status")).to_have_attribute("data-live", "live", timeout=15_000)
            farm.start_print(0, "benchy.gcode", duration=600)
            card = cards.filter(has_text=printing_name)
            expect(card.locator("[data-testid=state]")).to_have_text(
                re.compile("printing", re.I), timeout=15_000
            )

            # Mark the document: a reload would lose the mark, a websocket swap keeps it.
            page.evaluate("window.__noReload = true")
            progress = card.locator("[data-testid=progress]")
            first = progress.inner_text()
            expect(progress).not_to_have_text(first, timeout=15_000)
            assert page.evaluate("window.__noReload") is True

            card.get_by_role("button", name=re.compile("^pause$", re.I)).click()
            expect(card.locator("[data-testid=state]")).to_have_text(
                re.compile("paused", re.I), timeout=15_000
            )
            assert page.evaluate("window.__noReload") is True
            page.screenshot(
                path=str(Path(os.environ.get("PRINTFARM_SCREENSHOT_DIR", "/tmp")) / "dashboard.png")
            )
        finally:
            browser.close()
