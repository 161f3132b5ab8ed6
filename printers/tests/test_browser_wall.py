"""The wall on a TV (issue 12 item 3) in a real browser: every tile fits the screen without
scrolling and nothing in a tile is cut off, from 12 printers on a 4K TV to 200 on 1080p;
what needs a person comes first."""

from __future__ import annotations

import pytest

from printers.simulator import running_farm
from printers.tests.browser_support import free_port, launch_chromium, log_in, running_site

pytestmark = pytest.mark.browser

SCREENS = {"1080p": (1920, 1080), "4K": (3840, 2160)}

FITS = """() => {
  const cards = [...document.querySelectorAll('#printer-grid article.card')];
  const bottom = Math.max(...cards.map(c => c.getBoundingClientRect().bottom));
  const clipped = cards.filter(c => {
    const over = el => el && el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1;
    const box = sel => {
      const el = c.querySelector(sel);
      return el && el.offsetParent !== null ? el.getBoundingClientRect() : null;
    };
    const [b, t] = [box('.badge'), box('.card-temps')];
    const apart = b && t && (b.right <= t.left || t.right <= b.left
      || b.bottom <= t.top || t.bottom <= b.top);
    const overlap = b && t && !apart;
    return c.scrollHeight > c.clientHeight + 1 || over(c.querySelector('.card-name'))
      || over(c.querySelector('.card-temps')) || over(c.querySelector('.card-progress')) || overlap;
  }).map(c => c.id);
  return {count: cards.length, bottom, height: window.innerHeight,
          scroll: document.documentElement.scrollHeight,
          tile: Number(document.getElementById('printer-grid').dataset.tile),
          clipped};
}"""


def check_wall(page, url: str, count: int, screen: str) -> dict:
    from playwright.sync_api import expect

    width, height = SCREENS[screen]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url + "/?view=wall")
    expect(page.locator("#printer-grid article.card")).to_have_count(count, timeout=20_000)
    page.wait_for_function("document.getElementById('printer-grid').dataset.tile")
    seen = page.evaluate(FITS)
    assert seen["bottom"] <= seen["height"] + 1, seen  # every tile on screen
    assert seen["scroll"] <= seen["height"] + 1, seen  # no scrolling
    assert seen["clipped"] == [], seen
    return seen


def test_twelve_printers_fill_a_tv_with_big_tiles_and_errors_come_first(tmp_path):
    from playwright.sync_api import sync_playwright

    with (
        running_farm(count=12, protocol="moonraker", speed=20.0) as farm,
        running_site(tmp_path, farm) as site,
    ):
        farm.set_fault(5, "offline")
        farm.start_print(7, "part.gcode", duration=36000)
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page()
                log_in(page, site)
                page.wait_for_selector("#printer-grid")
                full_hd = check_wall(page, site["url"], 12, "1080p")
                tv = check_wall(page, site["url"], 12, "4K")
                assert tv["tile"] > full_hd["tile"] >= 300, (full_hd, tv)  # readable across a room
                # Needs a person first: the offline printer leads, then the one printing.
                page.wait_for_function(
                    "document.querySelector('#printer-grid article.card .card-name').textContent.trim()"
                    f" === {farm.printers[5].name!r}",
                    timeout=20_000,
                )
            finally:
                browser.close()


def wall_on_1080p(tmp_path, farm) -> dict:
    """Every one of `farm`'s printers on a signed-in 1080p wall: check_wall's figures."""
    from playwright.sync_api import sync_playwright

    with running_site(tmp_path, farm) as site, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            log_in(page, site)
            return check_wall(page, site["url"], len(farm.printers), "1080p")
        finally:
            browser.close()


def test_two_hundred_printers_fit_a_1080p_screen(tmp_path):
    with running_farm(count=200, protocol="moonraker", speed=20.0) as farm:
        seen = wall_on_1080p(tmp_path, farm)
    assert seen["tile"] >= 100, seen


def test_a_pushed_tile_moves_to_its_place_without_reloading_the_wall(tmp_path):
    # 1,000 tiles re-read from the server on every change of order would swamp the page: a
    # pushed tile whose keys now put it elsewhere is moved there by the page itself.
    from playwright.sync_api import sync_playwright

    with (
        running_farm(count=12, protocol="moonraker", speed=20.0) as farm,
        running_site(tmp_path, farm) as site,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            log_in(page, site)
            check_wall(page, site["url"], 12, "1080p")
            names = (
                "() => [...document.querySelectorAll('#printer-grid article.card .card-name')]"
                ".map(a => a.textContent)"
            )
            before = page.evaluate(names)
            assert before == sorted(before, key=lambda n: int(n.rsplit("-", 1)[-1]))  # all idle: name order
            reads = []
            page.on("request", lambda r: reads.append(r.url) if r.headers.get("hx-request") else None)
            last = farm.printers[-1].name
            farm.set_fault(11, "offline")  # the last by name needs a person: it goes first
            page.wait_for_function(f"() => ({names})()[0] === {last!r}", timeout=20_000)
            assert page.evaluate(names) == [last, *before[:-1]]
            assert reads == [], reads  # moved in place, not re-read
        finally:
            browser.close()


def test_a_thousand_printers_fit_a_1080p_screen(tmp_path):
    # The largest farm on the smallest screen: ~60 px tiles, names in two or three
    # lines above their progress, every one on screen. Nothing listens at their address (they
    # go offline): the test is the page's fit, not the printers.
    from types import SimpleNamespace

    closed = f"http://127.0.0.1:{free_port()}"
    names = [f"Workshop printer {i}" if i % 7 else f"p{i}" for i in range(1, 1001)]
    farm = SimpleNamespace(
        printers=[SimpleNamespace(name=n, protocol="moonraker", base_url=closed) for n in names]
    )
    seen = wall_on_1080p(tmp_path, farm)
    assert seen["tile"] >= 48, seen
