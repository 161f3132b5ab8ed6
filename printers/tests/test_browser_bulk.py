"""Bulk actions in a real browser (issue 12 item 2): select cards (click, shift-click range,
select all shown), pause them at once, cancel with a confirmation that lists them, and clear
every waiting bed from the counts bar; a result line per printer."""

from __future__ import annotations

import re
import sqlite3

import pytest

from printers.simulator import running_farm
from printers.tests.browser_support import launch_chromium, log_in, running_site

pytestmark = pytest.mark.browser


@pytest.fixture
def site(tmp_path):
    with (
        running_farm(count=5, protocol="moonraker", speed=20.0) as farm,
        running_site(tmp_path, farm) as site,
    ):
        yield site | {"db": tmp_path / "printfarm.sqlite3"}


def test_select_cards_then_pause_cancel_and_clear_beds(site):
    from playwright.sync_api import expect, sync_playwright

    farm = site["farm"]
    for i in range(4):
        farm.start_print(i, "part.gcode", duration=36000)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(page, site)
            expect(page.locator("#live-status")).to_have_attribute("data-live", "live", timeout=15_000)
            states = page.locator("[data-testid=state]")
            expect(states.filter(has_text=re.compile("printing", re.I))).to_have_count(4, timeout=15_000)

            page.click("[data-testid=bulk-toggle]")
            boxes = page.locator("input.card-select")
            expect(boxes).to_have_count(5)
            # Click the first, shift-click the fourth: the range between is selected too.
            boxes.nth(0).click()
            boxes.nth(3).click(modifiers=["Shift"])
            expect(page.locator("[data-bulk-count]")).to_have_text("4 selected")
            page.select_option("[data-testid=bulk-action]", "pause")
            page.click("[data-testid=bulk-go]")
            results = page.locator("#bulk-results")
            expect(results).to_contain_text("Pause: done on 4 of 4 printer(s)", timeout=15_000)
            expect(results.locator("li.ok")).to_have_count(4)
            expect(states.filter(has_text=re.compile("paused", re.I))).to_have_count(4, timeout=15_000)
            # Live pushes replaced those cards: their ticks are still there.
            expect(page.locator("input.card-select:checked")).to_have_count(4)

            # Cancel is destructive: the confirmation lists every printer first.
            asked = []

            def answer(dialog):
                asked.append(dialog.message)
                dialog.accept()

            page.on("dialog", answer)
            page.select_option("[data-testid=bulk-action]", "cancel")
            page.click("[data-testid=bulk-go]")
            expect(results).to_contain_text("Cancel: done on 4 of 4 printer(s)", timeout=15_000)
            assert asked and all(p.name in asked[0] for p in farm.printers[:4])
            assert farm.printers[4].name not in asked[0]

            # Select all shown, then clear the selection.
            page.click("[data-bulk-all]")
            expect(page.locator("[data-bulk-count]")).to_have_text("5 selected")
            page.click("[data-bulk-none]")
            expect(page.locator("[data-bulk-count]")).to_have_text("0 selected")
        finally:
            browser.close()


def test_clear_all_finished_beds_from_the_counts_bar(site):
    from playwright.sync_api import expect, sync_playwright

    # Three prints ended and nobody has taken them off yet (as the farm records a job's end).
    with sqlite3.connect(site["db"]) as db:
        db.execute(
            "UPDATE printers_printer SET bed_clear = 0 WHERE id IN (SELECT id FROM printers_printer LIMIT 3)"
        )
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(page, site)
            button = page.locator("[data-testid=clear-beds]")
            expect(button).to_have_text("Clear 3 finished beds", timeout=20_000)
            page.on("dialog", lambda dialog: dialog.accept())
            button.click()
            expect(page.locator("#bulk-results")).to_contain_text(
                "Bed cleared: done on 3 of 3", timeout=15_000
            )
            expect(page.locator("#bulk-results li.ok")).to_have_count(3)
            expect(button).to_have_count(0, timeout=15_000)  # the pushed counts bar has none waiting
        finally:
            browser.close()
