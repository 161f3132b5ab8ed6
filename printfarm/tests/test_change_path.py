"""Every writer's change reaches an open dashboard's websocket, in both live-update modes.

A real site (web server and poller processes, the simulator), a real websocket client, and
each writer doing what a user or the system does: the poller (a printer goes offline), the
dispatcher (a queued job goes to a printer), web views (rename, bed cleared, delete), the
API (rename, delete), the Django admin (rename, delete) and a management command
(register_printers). Modes: the change feed (no Redis) and Redis. The site's database is
SQLite, or PostgreSQL in the suite's PostgreSQL leg (a database of its own).
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from printers.simulator import running_farm
from printers.tests.browser_support import ROOT, running_site

pytestmark = pytest.mark.timeout(240)

# The bar is 2 s; the wait allows a loaded CI machine more before calling it lost.
WITHIN = 10.0
REDIS_URL = "redis://127.0.0.1:6379/9"  # a database of its own: other runs share the server


def _pg_database() -> str:
    """A fresh PostgreSQL database beside the suite's, when the suite runs on PostgreSQL."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return ""
    import psycopg

    server, name = url.rsplit("/", 1)
    site = f"{name}_changes"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{site}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{site}"')
    return f"{server}/{site}"


class Dashboard:
    """An open dashboard's websocket: every frame it receives, read on a thread."""

    def __init__(self, url: str, cookie: str) -> None:
        ws_url = url.replace("http://", "ws://") + "/ws/farm/"
        socket = connect(ws_url, additional_headers={"Cookie": cookie, "Origin": url}, open_timeout=10)
        self.ws = socket.__enter__()
        self.frames: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.ws:
                self.frames.put(str(message))
        except Exception:
            pass

    def drain(self) -> None:
        while not self.frames.empty():
            self.frames.get_nowait()

    def expect(self, what: str, check: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + WITHIN
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.frames.get(timeout=left)
            except queue.Empty:
                break
            if check(frame):
                return frame
        raise AssertionError(f"no frame with {what} within {WITHIN} s")

    def close(self) -> None:
        self.ws.close()


class Site:
    def __init__(self, info: dict, env: dict) -> None:
        self.url, self.env, self.farm = info["url"], env, info["farm"]
        self.http = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        page = self.http.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = self.http.post(
            "/login/",
            data={"username": "admin", "password": info["password"], "csrfmiddlewaretoken": token},
            headers={"Referer": self.url + "/login/"},
        )
        assert answer.status_code == 302, answer.text[:500]
        self.api = self.http.get("/api/v1/printers").json()["items"]

    @property
    def csrf(self) -> str:
        return self.http.cookies["csrftoken"]

    def post(self, path: str, data: dict | None = None, **kwargs) -> httpx.Response:
        headers = {"Referer": self.url + path, "X-CSRFToken": self.csrf}
        return self.http.post(
            path, data={"csrfmiddlewaretoken": self.csrf, **(data or {})}, headers=headers, **kwargs
        )

    def api_call(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        headers = {"X-CSRFToken": self.csrf, "Referer": self.url + "/"}
        return self.http.request(method, "/api/v1" + path, json=body, headers=headers)

    def printer(self, name: str) -> dict:
        # The list is served from a snapshot up to a second old (api.snapshot.MAX_AGE): a printer
        # another process just added shows in the next one.
        deadline = time.monotonic() + 15
        while True:
            items = self.http.get("/api/v1/printers", params={"limit": 500}).json()["items"]
            if found := next((p for p in items if p["name"] == name), None):
                return found
            assert time.monotonic() < deadline, f"{name} not in {[p['name'] for p in items]}"
            time.sleep(0.1)

    def dashboard(self) -> Dashboard:
        board = Dashboard(self.url, f"sessionid={self.http.cookies['sessionid']}")
        return board

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def register(self, *names: str) -> None:
        path = Path(self.env["PRINTFARM_DATA_DIR"]) / f"add-{names[0]}.json"
        entries = [{"name": n, "protocol": "moonraker", "base_url": "http://127.0.0.1:9"} for n in names]
        path.write_text(json.dumps(entries))
        self.manage("register_printers", str(path))


@pytest.fixture(scope="module", params=["feed", "redis"])
def site(request, tmp_path_factory) -> Iterator[Site]:
    extra = {"PRINTFARM_FEED_INTERVAL": "0.3"}
    if request.param == "redis":
        # Other runs on this machine may share the database: this site's messages are its own.
        extra |= {"REDIS_URL": REDIS_URL, "PRINTFARM_REDIS_PREFIX": f"test-{uuid.uuid4().hex[:12]}"}
    database = _pg_database()
    if database:
        extra["DATABASE_URL"] = database
    data = tmp_path_factory.mktemp(f"site-{request.param}")
    with running_farm(count=2, speed=60) as farm, running_site(data, farm, **extra) as info:
        env = {**os.environ, "PRINTFARM_DATA_DIR": str(data), "SECRET_KEY": "browser-test-key", **extra}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        if "REDIS_URL" not in extra:
            env.pop("REDIS_URL", None)
        if not database:
            env.pop("DATABASE_URL", None)
        yield Site(info, env)


def card_of(pk: int, *needles: str) -> Callable[[str], bool]:
    def check(frame: str) -> bool:
        match = re.search(rf'<article id="printer-card-{pk}".*?</article>', frame, re.S)
        return match is not None and all(n in match.group(0) for n in needles)

    return check


def removal_of(pk: int) -> Callable[[str], bool]:
    return lambda frame: f'<div id="printer-card-{pk}" hx-swap-oob="delete"></div>' in frame


@pytest.fixture
def board(site: Site) -> Iterator[Dashboard]:
    dashboard = site.dashboard()
    yield dashboard
    dashboard.close()


def test_poller(site: Site, board: Dashboard):
    printer = site.printer(site.farm.printers[0].name)
    site.farm.set_fault(0, "offline")
    try:
        board.expect("the printer's offline card", card_of(printer["id"], "st-offline"))
    finally:
        site.farm.set_fault(0, None)
    board.expect("the printer back online", card_of(printer["id"], "st-idle"))


def printer_form(printer: dict, name: str) -> dict:
    """The printer form's fields as the web and admin forms post them, with a new name."""
    return {
        "name": name,
        "protocol": printer["protocol"],
        "base_url": printer["base_url"],
        "enabled": "on",
        "nozzle_diameter": "0.4",
        "build_x": "220",
        "build_y": "220",
        "build_z": "250",
    }


def test_web_view_rename(site: Site, board: Dashboard):
    printer = site.printer(site.farm.printers[1].name)
    renamed = printer["name"] + "-renamed"
    form = printer_form(printer, renamed)
    answer = site.post(f"/printers/{printer['id']}/edit/", form)
    assert answer.status_code == 302, answer.text[:2000]
    board.expect("the renamed card", card_of(printer["id"], renamed))
    answer = site.post(f"/printers/{printer['id']}/edit/", {**form, "name": printer["name"]})
    assert answer.status_code == 302


def test_api_rename(site: Site, board: Dashboard):
    printer = site.printer(site.farm.printers[1].name)
    answer = site.api_call(
        "PATCH", f"/printers/{printer['id']}", {"location": "shelf 7", "name": "api-renamed"}
    )
    assert answer.status_code == 200, answer.text
    board.expect("the renamed card", card_of(printer["id"], "api-renamed"))
    assert site.api_call("PATCH", f"/printers/{printer['id']}", {"name": printer["name"]}).status_code == 200


def test_admin_rename(site: Site, board: Dashboard):
    printer = site.printer(site.farm.printers[1].name)
    form = {**printer_form(printer, "admin-renamed"), "_save": "Save"}
    answer = site.post(f"/admin/printers/printer/{printer['id']}/change/", form)
    assert answer.status_code == 302, answer.text[:3000]
    board.expect("the renamed card", card_of(printer["id"], "admin-renamed"))
    site.post(f"/admin/printers/printer/{printer['id']}/change/", {**form, "name": printer["name"]})


def test_management_command_adds_a_printer(site: Site, board: Dashboard):
    site.register("added-by-command")
    added = site.printer("added-by-command")
    board.expect("the new printer's card", card_of(added["id"], "added-by-command"))


def test_dispatcher_and_bed_cleared(site: Site, board: Dashboard):
    printer = site.printer(site.farm.printers[1].name)
    token = site.manage("shell", "-c", _MAKE_TOKEN).strip().splitlines()[-1]
    upload = site.http.post(
        "/api/v1/files",
        files={"file": ("cube.gcode", b"; estimated printing time (normal mode) = 1m 0s\nG28\nG1 X10 Y10\n")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert upload.status_code == 201, upload.text
    queued = site.api_call(
        "POST",
        "/jobs",
        {
            "file_id": (upload.json()["stored"] + [{"id": i} for i in upload.json()["reused"]])[0]["id"],
            "printer_ids": [printer["id"]],
        },
    )
    assert queued.status_code == 201, queued.text
    job = queued.json()["items"][0]["id"]
    board.expect("the job on its printer's card", card_of(printer["id"], f"Job #{job}"))
    # The simulated minute passes in a second; the bed then holds the part.
    board.expect("the bed to clear", card_of(printer["id"], "bed-cleared"))
    board.drain()
    answer = site.post(f"/printers/{printer['id']}/bed-cleared/")
    assert answer.status_code == 302, answer.text[:2000]
    board.expect(
        "the card without the bed to clear",
        lambda f: card_of(printer["id"])(f) and not card_of(printer["id"], "bed-cleared")(f),
    )


_MAKE_TOKEN = (
    "from django.contrib.auth import get_user_model; "
    "from printfarm.accounts.tokens import token_create; "
    "print(token_create(get_user_model().objects.get(username='admin'), 'changes').secret)"
)


@pytest.mark.parametrize("writer", ["web", "api", "admin"])
def test_deleted_printer_leaves_the_dashboard(site: Site, board: Dashboard, writer: str):
    name = f"to-delete-{writer}"
    site.register(name)
    printer = site.printer(name)
    board.expect("the new card", card_of(printer["id"]))
    if writer == "web":
        answer = site.post(f"/printers/{printer['id']}/delete/")
        assert answer.status_code == 302
    elif writer == "api":
        assert site.api_call("DELETE", f"/printers/{printer['id']}").status_code == 204
    else:
        answer = site.post(f"/admin/printers/printer/{printer['id']}/delete/", {"post": "yes"})
        assert answer.status_code == 302, answer.text[:2000]
    board.expect("the card's removal", removal_of(printer["id"]))
