"""The Content-Security-Policy in a real browser: every page works and nothing is refused."""

from __future__ import annotations

import re

import pytest

from jobs.tests.factories import gcode_bytes
from printers.simulator import running_farm
from printers.tests.browser_support import launch_chromium, log_in, running_site

pytestmark = pytest.mark.browser

# Reported by chromium for every refused load, inline handler, eval or connection.
VIOLATION = re.compile(r"Content Security Policy|Refused to", re.I)
# Recorded inside each page too, as the console may word it differently across versions.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def test_pages_work_under_the_policy_and_nothing_is_refused(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    gcode = tmp_path / "csp.gcode"
    gcode.write_bytes(gcode_bytes(seconds=3600))  # at 1x it is still printing when cancelled
    refused: list[str] = []

    def check(page) -> None:
        refused.extend(page.evaluate("window.__csp || []"))
        assert refused == [], f"{page.url}: {refused}"

    with (
        running_farm(count=1, protocol="moonraker", speed=1.0) as farm,
        running_site(tmp_path / "site", farm) as site,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.add_init_script(RECORD_VIOLATIONS)
            page.on("console", lambda msg: VIOLATION.search(msg.text) and refused.append(msg.text))
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            url = site["url"]

            log_in(page, site)
            response = page.goto(url + "/")
            assert "script-src 'self'" in response.headers["content-security-policy"]
            # The websocket connects (its status line says "live") and the cards are there.
            expect(page.locator("[id^=printer-card-]")).to_have_count(1)
            expect(page.locator("#farm-live")).to_be_attached()
            check(page)

            # An upload: XHR with progress, then the list refreshes itself.
            page.goto(url + "/files/")
            page.set_input_files("[data-testid=file-input]", str(gcode))
            expect(page.locator("[data-testid=upload-status]")).to_have_text(
                re.compile("csp.gcode: stored"), timeout=15_000
            )
            check(page)

            # The file page's delete button confirms first (an inline handler, for now).
            page.get_by_role("link", name="csp.gcode").click()
            page.locator("form[action$='/delete/'] button").click()
            assert dialogs and "Delete csp.gcode" in dialogs[-1]
            expect(page).to_have_url(re.compile(r"/files/\d+/$"))  # dismissed: nothing deleted
            page.click("[data-testid=queue-submit]")
            expect(page.get_by_text("Queued 1 print job of csp.gcode")).to_be_visible()
            check(page)

            # The queue refreshes itself (htmx trigger filter); the job page's cancel confirms.
            page.goto(url + "/queue/")
            expect(page.locator("[data-testid=active-jobs] [data-testid=job-state]")).to_have_text(
                re.compile("uploading|printing", re.I), timeout=15_000
            )
            check(page)
            page.goto(url + "/jobs/1/")
            page.get_by_role("button", name="Cancel job").click()
            assert "Cancel job #1" in dialogs[-1]
            check(page)

            for path in (
                "/?view=wall",
                "/printers/1/",
                "/printers/add/",
                "/history/",
                "/statistics/",
                "/account/tokens/",
                "/users/",
                "/audit/",
                "/admin/",
                "/admin/printers/printer/1/change/",
            ):
                response = page.goto(url + path)
                assert response.status == 200, path
                page.wait_for_load_state("networkidle")
                check(page)

            # The API's interactive docs (Swagger UI from django-ninja's own static files).
            page.goto(url + "/api/v1/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("printfarm API", timeout=15_000)
            expect(page.locator(".opblock").first).to_be_visible()
            page.wait_for_load_state("networkidle")
            check(page)
        finally:
            browser.close()
