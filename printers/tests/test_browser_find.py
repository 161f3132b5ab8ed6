"""Finding a printer in headless Debian chromium: `/` search live, `w`, `?`, the phone menu
at 390 px, the theme switch; the real web server, poller and simulator processes."""

from __future__ import annotations

import re

import pytest

from printers.simulator import running_farm
from printers.tests.browser_support import launch_chromium, log_in, running_site

pytestmark = pytest.mark.browser

COUNT = 11  # sim-moonraker-1 … -11: as text, 10 and 11 would come before 2


@pytest.fixture
def farm_site(tmp_path):
    farm_running = running_farm(count=COUNT, protocol="moonraker", speed=20.0)
    with farm_running as farm, running_site(tmp_path, farm) as site:
        yield site


def card_names(page) -> list[str]:
    return page.locator("#printer-grid article.card .card-name").all_inner_texts()


def test_find_a_printer_with_the_keyboard(farm_site):
    from playwright.sync_api import expect, sync_playwright

    farm = farm_site["farm"]
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(page, farm_site)
            cards = page.locator("#printer-grid article.card")
            expect(cards).to_have_count(COUNT)
            assert card_names(page) == [f"sim-moonraker-{i}" for i in range(1, COUNT + 1)]
            expect(page.locator("#live-status")).to_have_attribute("data-live", "live", timeout=15_000)
            page.evaluate("window.__noReload = true")

            # "/" focuses the search; typing filters the cards as you type, and the URL keeps it.
            page.keyboard.press("/")
            search = page.locator("#farm-search")
            expect(search).to_be_focused()
            search.press_sequentially("moonraker-1", delay=30)
            expect(cards).to_have_count(3)  # 1, 10, 11
            expect(page).to_have_url(re.compile(r"[?&]q=moonraker-1\b"))
            expect(search).to_be_focused()  # the grid swapped around the box, not the box
            expect(search).to_have_value("moonraker-1")

            # A file nobody prints yet: no cards. A print of it starts: its card comes, live.
            search.fill("")
            search.press_sequentially("benchy", delay=30)
            expect(page.locator("#printer-grid .empty")).to_contain_text("No printers match")
            farm.start_print(4, "benchy.gcode", duration=3000)
            expect(cards).to_have_count(1, timeout=15_000)
            expect(cards.first.locator(".card-name")).to_have_text(farm.printers[4].name)
            assert page.evaluate("window.__noReload") is True

            # Escape leaves the box (keeping what it found); keys typed there were text, not shortcuts.
            search.press("Escape")
            expect(search).not_to_be_focused()
            expect(search).to_have_value("benchy")
            expect(page).to_have_url(re.compile(r"/\?q=benchy$"))  # defaults and blanks left out

            # "?" opens the help, Escape closes it.
            page.keyboard.press("?")
            help_dialog = page.locator("#shortcuts-help")
            expect(help_dialog).to_be_visible()
            expect(help_dialog).to_contain_text("Find a printer")
            page.keyboard.press("Escape")
            expect(help_dialog).to_be_hidden()

            # "w": the wall, keeping the search; again: back to the cards.
            page.keyboard.press("w")
            expect(page).to_have_url(re.compile(r"view=wall"))
            expect(page.locator("body")).to_have_class(re.compile(r"\bwall\b"))
            expect(page).to_have_url(re.compile(r"q=benchy"))
            expect(cards).to_have_count(1)
            page.keyboard.press("w")
            expect(page).not_to_have_url(re.compile(r"view=wall"))
            expect(page).to_have_url(re.compile(r"q=benchy"))

            # The sort menu applies at once; a print that starts finishing soon moves to the
            # top by itself (the grid re-read when a pushed card broke its order, no reload).
            page.goto(farm_site["url"] + "/")
            page.select_option("[data-testid=sort]", "attention")
            expect(page).to_have_url(re.compile(r"/\?sort=attention$"))
            expect(cards.first.locator(".card-name")).to_have_text(farm.printers[4].name)  # printing
            page.evaluate("window.__noReload = true")
            farm.start_print(7, "clip.gcode", duration=600)  # 10 min left: finishing soon
            expect(cards.first.locator(".card-name")).to_have_text(farm.printers[7].name, timeout=15_000)
            assert page.evaluate("window.__noReload") is True
        finally:
            browser.close()


def test_phone_menu_and_theme(farm_site):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="light")
            page = context.new_page()
            log_in(page, farm_site)
            expect(page.locator("#printer-grid article.card")).to_have_count(COUNT)
            printer_url = page.locator("#printer-grid .card-name").first.get_attribute("href")

            for path in ("/", "/?view=wall", "/queue/", "/files/", "/history/", printer_url):
                page.goto(farm_site["url"] + path)
                nav = page.locator("#main-nav")
                expect(nav).to_be_hidden()
                toggle = page.locator("[data-testid=nav-toggle]")
                expect(toggle).to_be_visible()
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"{path}: the page is {width} px wide"
                toggle.click()
                expect(nav).to_be_visible()
                expect(toggle).to_have_attribute("aria-expanded", "true")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"{path} with the menu open: {width} px wide"

            # The theme: the system's (light here) until chosen; the choice outlives a reload.
            background = "getComputedStyle(document.body).backgroundColor"
            light = page.evaluate(background)
            page.select_option("[data-testid=theme-switch]", "dark")
            expect(page.locator("html")).to_have_attribute("data-theme", "dark")
            dark = page.evaluate(background)
            assert dark != light
            page.reload()
            expect(page.locator("html")).to_have_attribute("data-theme", "dark")
            assert page.evaluate(background) == dark
            page.locator("[data-testid=nav-toggle]").click()
            expect(page.locator("[data-testid=theme-switch]")).to_have_value("dark")
            page.select_option("[data-testid=theme-switch]", "system")
            page.reload()
            assert page.evaluate("document.documentElement.hasAttribute('data-theme')") is False
            assert page.evaluate(background) == light
            context.close()
        finally:
            browser.close()
