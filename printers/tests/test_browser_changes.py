"""In headless chromium: printers added and removed elsewhere appear on and leave an open
dashboard without a reload, and the page converges after its socket drops."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from printers.simulator import running_farm
from printers.tests.browser_support import ROOT, launch_chromium, log_in, running_site

pytestmark = pytest.mark.browser

_DELETE = "from printers.models import Printer; from printers.services import printer_delete; " + (
    "printer_delete(printer=Printer.objects.get(name='{name}'))"
)


def test_added_and_deleted_printers_come_and_go_on_an_open_dashboard(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with running_farm(count=2, speed=20.0) as farm, running_site(tmp_path, farm) as site:

        def manage(*args: str) -> None:
            env = {
                "PATH": "/usr/bin:/bin",
                "PRINTFARM_DATA_DIR": str(tmp_path),
                "SECRET_KEY": "browser-test-key",
                "DJANGO_SETTINGS_MODULE": "printfarm.settings",
            }
            subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, check=True)

        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                log_in(page, site)
                cards = page.locator("[id^=printer-card-]")
                expect(cards).to_have_count(2)
                expect(page.locator("#live-status")).to_have_attribute("data-live", "live", timeout=15_000)
                page.evaluate("window.__noReload = true")

                added = tmp_path / "more.json"
                added.write_text(
                    json.dumps(
                        [{"name": "zz-added", "protocol": "moonraker", "base_url": "http://127.0.0.1:9"}]
                    )
                )
                manage("register_printers", str(added))
                expect(cards.filter(has_text="zz-added")).to_have_count(1, timeout=15_000)
                expect(cards).to_have_count(3)

                manage("shell", "-c", _DELETE.format(name="zz-added"))
                expect(cards.filter(has_text="zz-added")).to_have_count(0, timeout=15_000)
                expect(cards).to_have_count(2)

                # The browser goes offline while a printer is deleted: once
                # back, the page catches up with what it missed.
                page.context.set_offline(True)
                manage("shell", "-c", _DELETE.format(name=farm.printers[1].name))
                page.context.set_offline(False)
                expect(cards).to_have_count(1, timeout=20_000)
                assert page.evaluate("window.__noReload") is True
            finally:
                browser.close()
