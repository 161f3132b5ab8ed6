"""What the browser tests share: Debian's chromium, free loopback ports, waiting for servers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from printers.simulator import SimulatedFarm

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


@contextlib.contextmanager
def running_site(data_dir: Path, farm: SimulatedFarm, **env_extra: str) -> Iterator[dict]:
    """Migrate a fresh SQLite farm in `data_dir`, register `farm`'s printers, and run the
    poller and the web server as real processes until the block ends."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "PRINTFARM_DATA_DIR": str(data_dir),
        "SECRET_KEY": "browser-test-key",
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",
        "PRINTFARM_FEED_INTERVAL": "0.3",
        **env_extra,  # may name a database or Redis of the test's own
    }
    manage = [sys.executable, str(ROOT / "manage.py")]

    def run(*args: str) -> str:
        return subprocess.run(
            [*manage, *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout

    run("migrate", "--noinput")
    password = re.search(r"admin / (\S+)", run("ensure_admin")).group(1)
    printers_file = data_dir / "printers.json"
    printers_file.write_text(
        json.dumps([{"name": p.name, "protocol": p.protocol, "base_url": p.base_url} for p in farm.printers])
    )
    run("register_printers", str(printers_file))
    port = free_port()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen([*manage, "poll_printers", "--interval", "0.5"], env=env, cwd=ROOT))
        web = subprocess.Popen(
            [*manage, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT
        )
        procs.append(web)
        wait_for_port(port, web)
        yield {"url": f"http://127.0.0.1:{port}", "password": password, "farm": farm, "poller": procs[0]}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def launch_chromium(playwright):
    """Debian's headless chromium with the flags this machine needs (nothing downloaded)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def log_in(page, site: dict) -> None:
    page.goto(site["url"] + "/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", site["password"])
    page.click("button[type=submit]")
