"""What the browser tests share: Debian's chromium, free loopback ports, waiting for servers."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
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


_migrated: list[Path] = []  # this process's migrated SQLite site with its admin, made once


def _copy_migrated_site(data_dir: Path, env: dict[str, str]) -> str:
    """Give `data_dir` a freshly migrated SQLite database with its admin (what `migrate` and
    `ensure_admin` make there), copied from one this process made the first time; returns
    the admin's password. Running both commands once per site cost each browser test seconds."""
    if not _migrated:
        template = Path(tempfile.mkdtemp(prefix="printfarm-site-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        for args in (("migrate", "--noinput"), ("ensure_admin",)):
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), *args],
                env={**env, "PRINTFARM_DATA_DIR": str(template)},
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
        _migrated.append(template)
    template = _migrated[0]
    data_dir.mkdir(parents=True, exist_ok=True)
    # sqlite3's backup API, not a file copy: a consistent database whatever its journal holds.
    with (
        contextlib.closing(sqlite3.connect(template / "printfarm.sqlite3")) as source,
        contextlib.closing(sqlite3.connect(data_dir / "printfarm.sqlite3")) as copy,
    ):
        source.backup(copy)
    password_file = data_dir / "initial_admin_password"
    shutil.copyfile(template / "initial_admin_password", password_file)
    password_file.chmod(0o600)
    return password_file.read_text().strip()


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

    if "DATABASE_URL" in env:
        run("migrate", "--noinput")
        password = re.search(r"admin / (\S+)", run("ensure_admin")).group(1)
    else:
        password = _copy_migrated_site(data_dir, env)
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
