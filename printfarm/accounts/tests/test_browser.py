"""In headless chromium: an admin makes a viewer; the viewer sees no buttons, and a refused
htmx request says why instead of doing nothing."""

from __future__ import annotations

import re

import pytest

from printers.simulator import running_farm
from printers.tests.browser_support import launch_chromium, log_in, running_site

pytestmark = pytest.mark.browser


def test_a_viewer_sees_no_controls_and_is_told_why_when_refused(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with (
        running_farm(count=1, protocol="moonraker", speed=60.0) as farm,
        running_site(tmp_path / "site", farm) as site,
        sync_playwright() as pw,
    ):
        browser = launch_chromium(pw)
        try:
            admin = browser.new_page(viewport={"width": 1400, "height": 900})
            log_in(admin, site)
            card = admin.locator("article.card").first
            expect(card.locator(".card-actions")).to_be_visible(timeout=15_000)
            admin.goto(site["url"] + "/users/add/")
            admin.fill("input[name=username]", "vic")
            admin.select_option("select[name=role]", "viewer")
            admin.get_by_role("button", name="Create user").click()
            password = admin.locator("[data-testid=password-text]").input_value()
            assert len(password) >= 20

            # A token: shown once, revoked only after saying yes (data-confirm, no inline JS).
            admin.goto(site["url"] + "/account/tokens/")
            admin.fill("input[name=name]", "slicer")
            admin.get_by_role("button", name="Create token").click()
            assert admin.locator("[data-testid=token-secret]").input_value().startswith("pf_")
            revoke = admin.get_by_role("button", name="Revoke")
            admin.once("dialog", lambda dialog: dialog.dismiss())
            revoke.click()
            admin.wait_for_timeout(500)  # time enough for a form that went anyway
            expect(admin.locator("[data-testid=token-table]")).not_to_contain_text("revoked")
            admin.once("dialog", lambda dialog: dialog.accept())
            revoke.click()
            expect(admin.locator("[data-testid=token-table]")).to_contain_text("revoked")
            expect(admin.locator("[data-testid=token-secret]")).to_have_count(0)

            viewer = browser.new_context().new_page()
            viewer.goto(site["url"] + "/")
            viewer.fill("input[name=username]", "vic")
            viewer.fill("input[name=password]", password)
            viewer.click("button[type=submit]")
            expect(viewer.locator("[data-testid=user-role]")).to_have_text("viewer")
            card = viewer.locator("article.card").first
            expect(card).to_be_visible(timeout=15_000)
            expect(card.locator(".card-actions")).to_be_hidden()
            expect(viewer.get_by_role("link", name="Add printer")).to_have_count(0)

            # A request the page didn't offer (an old tab, a crafted click): the card says why.
            pk = card.get_attribute("id").rsplit("-", 1)[1]
            viewer.evaluate(
                "pk => htmx.ajax('POST', `/printers/${pk}/command/pause/`, "
                "{source: `#printer-card-${pk}`, target: `#printer-card-${pk}`, swap: 'outerHTML'})",
                pk,
            )
            expect(card.locator(".card-result.err")).to_have_text(
                re.compile("operator role; yours is viewer"), timeout=5_000
            )
            # Elsewhere, a banner.
            viewer.goto(site["url"] + "/history/")
            viewer.evaluate("htmx.ajax('POST', '/queue/reorder/', {target: 'main', values: {order: '[]'}})")
            expect(viewer.locator("#role-toast")).to_contain_text("Ask an admin for the operator role")
        finally:
            browser.close()
