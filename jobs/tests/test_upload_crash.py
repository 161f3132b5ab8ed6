"""Uploads leave nothing behind: a real `manage.py serve` killed (SIGKILL) in the middle of one."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from jobs.demo import gcode_bytes
from printers.tests.browser_support import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
BOUNDARY = "printfarm-crash-test"

SETUP = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from printfarm.accounts.models import Role
from printfarm.accounts.roles import set_role
from printfarm.accounts.tokens import token_create

call_command("migrate", "--noinput", verbosity=0)
user = get_user_model().objects.create_user("slicer")
set_role(user, Role.OPERATOR)
print(token_create(user, "crash test").secret)
connection.close()
"""

# `serve`, stopped at a named point of an upload: it touches the marker file and waits there
# for the test's SIGKILL, so the kill lands on that line every time.
SERVE_UNTIL = """
import sys, time
from pathlib import Path
import django
django.setup()
from django.core.management import call_command
from jobs import library

point, marker, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])

def stop_here():
    marker.touch()
    time.sleep(60)

if point == "receiving":  # the first chunk of the file part is on disk
    receive = library.GcodeUploadHandler.receive_data_chunk
    def receive_then_stop(self, raw_data, start):
        receive(self, raw_data, start)
        self._out.flush()
        stop_here()
    library.GcodeUploadHandler.receive_data_chunk = receive_then_stop
elif point == "committing":  # the bytes are in place, the row is being written
    library.GcodeFile.save = lambda *args, **kwargs: stop_here()
call_command("serve", host="127.0.0.1", port=port)
"""


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> tuple[Path, str]:
    """A migrated SQLite database with an operator's API token, copied by each test."""
    data_dir = tmp_path_factory.mktemp("migrated")
    done = subprocess.run(
        [sys.executable, "-c", SETUP], env=site_env(data_dir), cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return data_dir / "printfarm.sqlite3", done.stdout.strip().splitlines()[-1]


@pytest.fixture
def site(migrated, tmp_path) -> Iterator[Site]:
    database, token = migrated
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(database, data_dir)
    site = Site(data_dir, token)
    yield site
    site.stop()


def site_env(data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PRINTFARM_DATA_DIR": str(data_dir),
        "SECRET_KEY": "crash-test-key",
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",
        "PYTHONUNBUFFERED": "1",  # the server's log is read while it runs
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env


class Site:
    def __init__(self, data_dir: Path, token: str) -> None:
        self.data_dir, self.token = data_dir, token
        self.files, self.tmp = data_dir / "files", data_dir / "tmp"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, *argv: str) -> subprocess.Popen:
        log = open(self.data_dir / "serve.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(argv, env=site_env(self.data_dir), cwd=ROOT, stdout=log, stderr=log)
        log.close()
        wait_for_port(self.port, self.proc)
        return self.proc

    def serve(self) -> subprocess.Popen:
        return self.start(sys.executable, "manage.py", "serve", "--port", str(self.port))

    def serve_until(self, point: str, marker: Path) -> subprocess.Popen:
        return self.start(sys.executable, "-c", SERVE_UNTIL, point, str(marker), str(self.port))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def send_upload(self, data: bytes, *, send: int | None = None) -> socket.socket:
        """Start a slicer upload of `data` over a raw socket; send only `send` bytes of the body."""
        body = (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.gcode"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{BOUNDARY}--\r\n".encode()
        )
        head = (
            f"POST /api/files/local HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {self.token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        conn = socket.create_connection(("127.0.0.1", self.port))
        conn.sendall(head + body[:send])
        return conn

    def leftovers(self) -> list[Path]:
        stored = sorted(p for p in self.files.rglob("*") if p.is_file())
        return stored + sorted(self.tmp.iterdir())

    def rows(self) -> list[tuple[str, str]]:
        with contextlib.closing(sqlite3.connect(self.data_dir / "printfarm.sqlite3")) as db:
            return db.execute("SELECT sha256, name FROM jobs_gcodefile").fetchall()

    def age_leftovers(self) -> None:
        """What a killed upload left is an hour old now: no upload in progress owns it."""
        then = time.time() - 2 * 3600
        for path in self.leftovers():
            os.utime(path, (then, then))


def wait_until(predicate: Callable[[], object], proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def upload_data() -> bytes:
    return gcode_bytes(thumbnail=(200, 40, 40), padding=1_000_000)


def test_a_server_killed_while_a_body_arrives_leaves_nothing(site):
    proc = site.serve()
    conn = site.send_upload(b"G1 X1\n" * 1_000_000, send=4 * 1024 * 1024)  # past the in-memory part

    def holds_spooled_body() -> bool:
        for fd in Path(f"/proc/{proc.pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                if os.readlink(fd).startswith(f"{site.tmp}/"):
                    return True
        return False

    wait_until(holds_spooled_body, proc)
    assert site.leftovers() == []  # the spool has no name, even while it fills
    site.kill()
    conn.close()
    assert site.leftovers() == []
    assert site.rows() == []


def test_a_part_file_of_a_killed_upload_goes_with_clean_files(site, tmp_path):
    marker = tmp_path / "receiving"
    proc = site.serve_until("receiving", marker)
    conn = site.send_upload(upload_data())
    wait_until(marker.exists, proc)
    site.kill()
    conn.close()
    [part] = site.leftovers()
    assert part.parent == site.files / "incoming" and part.suffix == ".part"
    manage = [sys.executable, "manage.py", "clean_files"]
    fresh = subprocess.run(manage, env=site_env(site.data_dir), cwd=ROOT, capture_output=True, text=True)
    assert fresh.stdout == "clean_files: nothing to clean.\n"  # it may be an upload in progress
    site.age_leftovers()
    done = subprocess.run(manage, env=site_env(site.data_dir), cwd=ROOT, capture_output=True, text=True)
    assert done.stdout == f"removed {part}\n", done.stderr
    assert site.leftovers() == []
    assert site.rows() == []


def test_a_file_stored_by_a_killed_upload_without_its_row_goes_at_the_next_start(site, tmp_path):
    marker = tmp_path / "committing"
    proc = site.serve_until("committing", marker)
    data = upload_data()
    conn = site.send_upload(data)
    wait_until(marker.exists, proc)
    site.kill()
    conn.close()
    left = site.leftovers()
    assert [p.suffix for p in left] == [".gcode", ".thumb"]  # bytes and thumbnail, no row
    assert left[0].read_bytes() == data
    assert site.rows() == []
    site.age_leftovers()
    site.serve()
    assert site.leftovers() == []
    assert "removed" in (site.data_dir / "serve.log").read_text()
    response = httpx.post(
        f"http://127.0.0.1:{site.port}/api/files/local",
        headers={"X-Api-Key": site.token},
        files={"file": ("big.gcode", data)},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    [(sha, name)] = site.rows()
    assert [p.name for p in site.leftovers()] == [f"{sha}.gcode", f"{sha}.thumb"]
    assert name == "big.gcode"
