"""In headless chromium against the real server and poller processes: an admin adds a channel
(a malformed URL first), sends a test, adds a rule; a bed left to clear then reaches the
webhook through the poller's sender, and the open dashboard raises a desktop alert."""

from __future__ import annotations

import subprocess
import sys

import pytest

from printers.simulator import running_farm
from printers.tests.browser_support import ROOT, launch_chromium, log_in, running_site
from printfarm.testing import eventually_sync

pytestmark = pytest.mark.browser

# Records each desktop notification the page raises (and still raises it).
RECORD_ALERTS = """
window.__alerts = [];
(function () {
  var Real = window.Notification;
  function Recorded(title, options) {
    window.__alerts.push(title);
    try { return new Real(title, options); } catch (e) { return {}; }
  }
  Recorded.permission = "granted";
  Recorded.requestPermission = function () { return Promise.resolve("granted"); };
  window.Notification = Recorded;
})();
"""


def _wait_until(predicate, timeout: float = 20.0) -> None:
    eventually_sync(predicate, timeout)


def test_admin_sets_up_notifications_and_a_bed_to_clear_reaches_channel_and_browser(tmp_path, webhook):
    from playwright.sync_api import expect, sync_playwright

    with (
        running_farm(count=1, protocol="moonraker", speed=20.0) as farm,
        running_site(tmp_path / "site", farm) as site,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_init_script(RECORD_ALERTS)
            page = context.new_page()
            log_in(page, site)

            page.get_by_role("link", name="Notifications").click()
            page.get_by_role("link", name="Add a channel").click()
            page.fill("input[name=name]", "ops hook")
            page.fill("input[name=url]", "foo://bar")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_text("foo:// is not a service Apprise knows")).to_be_visible()
            page.fill("input[name=url]", webhook.url)
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_text("Saved channel ops hook.")).to_be_visible()

            page.get_by_role("button", name="Send test").click()
            expect(page.locator("[data-testid=test-result]")).to_contain_text("Sent JSON POST notification")
            assert webhook.titles() == ["printfarm test message"]

            page.get_by_role("link", name="Add a rule").click()
            page.fill("input[name=name]", "beds")
            page.get_by_label("Bed needs clearing").check()
            page.get_by_label("ops hook").check()
            page.fill("input[name=digest_seconds]", "0")
            page.get_by_role("button", name="Save").click()
            expect(page.get_by_text("Saved rule beds.")).to_be_visible()

            page.goto(site["url"] + "/")
            expect(page.locator("#live-status")).to_have_attribute("data-live", "live", timeout=15_000)
            page.get_by_role("button", name="Alerts").click()
            expect(page.get_by_role("button", name="Alerts")).to_have_attribute("aria-pressed", "true")

            name = farm.printers[0].name
            _bed_left_to_clear(tmp_path / "site", name)
            page.wait_for_function(
                "name => window.__alerts.includes('Bed needs clearing: ' + name)", arg=name, timeout=15_000
            )
            _wait_until(lambda: f"Bed needs clearing: {name}" in webhook.titles())
        finally:
            browser.close()


def _bed_left_to_clear(data_dir, printer_name: str) -> None:
    """What a print's end does (jobs.services.print_ended), from another process."""
    code = (
        "from printers.models import Printer; from printers.services import printer_bed_set; "
        f"printer_bed_set(Printer.objects.get(name={printer_name!r}).pk, clear=False)"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PRINTFARM_DATA_DIR": str(data_dir),
        "SECRET_KEY": "browser-test-key",
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",
    }
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], env=env, cwd=ROOT, check=True
    )
