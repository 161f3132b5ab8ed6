"""End to end in headless Debian chromium: the real web server, poller and simulator processes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from printers.simulator import running_farm

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port}")


@pytest.fixture
def farm_site(tmp_path):
    """A simulated farm of 3 printers, one printing, served by daphne + poll_printers."""
    env = {
        **os.environ,
        "PRINTFARM_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "browser-test-key",
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",
        "PRINTFARM_FEED_INTERVAL": "0.3",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    manage = [sys.executable, str(ROOT / "manage.py")]

    def run(*args: str) -> str:
        return subprocess.run(
            [*manage, *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout

    run("migrate", "--noinput")
    login_line = run("ensure_admin")
    password = re.search(r"admin / (\S+)", login_line).group(1)
    procs: list[subprocess.Popen] = []
    # 600 simulated seconds at 20x: the print visibly advances for 30 s.
    with running_farm(count=3, protocol="mixed", speed=20.0) as farm:
        farm.start_print(0, "benchy.gcode", duration=600)
        printers_file = tmp_path / "printers.json"
        printers_file.write_text(
            json.dumps(
                [{"name": p.name, "protocol": p.protocol, "base_url": p.base_url} for p in farm.printers]
            )
        )
        run("register_printers", str(printers_file))
        port = free_port()
        try:
            procs.append(subprocess.Popen([*manage, "poll_printers", "--interval", "0.5"], env=env, cwd=ROOT))
            web = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "daphne"),
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "printfarm.asgi:application",
                ],
                env=env,
                cwd=ROOT,
            )
            procs.append(web)
            wait_for_port(port, web)
            yield {"url": f"http://127.0.0.1:{port}", "password": password, "farm": farm}
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=10)


def test_dashboard_updates_live_and_pauses_from_card(farm_site):
    from playwright.sync_api import expect, sync_playwright

    farm = farm_site["farm"]
    printing_name = farm.printers[0].name
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(farm_site["url"] + "/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", farm_site["password"])
            page.click("button[type=submit]")

            cards = page.locator("[id^=printer-card-]")
            expect(cards).to_have_count(3)
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
