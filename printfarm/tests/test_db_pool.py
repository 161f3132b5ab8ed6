"""PostgreSQL connections stay within the pool under a burst of concurrent requests (issue 7).

Before the pool, under ASGI every request's sync_to_async thread kept its own persistent
connection (CONN_MAX_AGE): one web worker and the poller held 74 after 20 s, and the server
answered "too many clients already".
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from jobs import services
from jobs.tests.factories import make_file
from printers.tests.factories import UserFactory
from printfarm.accounts.tokens import token_create

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_api import first_200  # noqa: E402
from bench_poller import free_port_block, stop  # noqa: E402

POOL = 4
APP = "printfarm-pool-burst-test"


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (the pool is PostgreSQL's)")


def test_the_pool_is_configured_and_persistent_connections_are_off(postgres):
    db = settings.DATABASES["default"]
    assert db["CONN_MAX_AGE"] == 0
    assert db["OPTIONS"]["pool"]["max_size"] == settings.PRINTFARM_DB_POOL_SIZE


def _server_url() -> str:
    s = connection.settings_dict
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{host}:{port}/{s['NAME']}"


class Watch(threading.Thread):
    """The most connections the web server holds at once (pg_stat_activity, by its name)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.most, self.done = url, 0, threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.wait(0.02):
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP]
                ).fetchone()
                self.most = max(self.most, count)


def test_a_burst_of_concurrent_requests_stays_within_the_pool(postgres, tmp_path):
    user = UserFactory()
    token = token_create(user, "burst").secret
    jobs = services.jobs_create(file=make_file(), quantity=20)
    port = free_port_block(1)
    env = {
        **os.environ,
        "DATABASE_URL": _server_url(),
        "PRINTFARM_DB_POOL_SIZE": str(POOL),
        "PGAPPNAME": APP,  # libpq names the server's connections in pg_stat_activity
        "PRINTFARM_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",
        "SECRET_KEY": "pool-test-only",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    watch = Watch(_server_url())
    try:
        first_200(url + "/api/v1/me", auth, server)
        watch.start()

        async def burst() -> list[int]:
            limits = httpx.Limits(max_connections=60)
            async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30, limits=limits) as client:
                order = [j.pk for j in reversed(jobs)]
                calls = [client.get("/api/v1/jobs?limit=50") for _ in range(30)]
                calls += [client.post("/api/v1/queue/order", json={"order": order}) for _ in range(10)]
                calls += [client.get("/api/v1/me") for _ in range(20)]
                return [r.status_code for r in await asyncio.gather(*calls)]

        statuses = [code for _ in range(3) for code in asyncio.run(burst())]
    finally:
        watch.done.set()
        watch.join(5)
        stop(server, "web")
    assert set(statuses) == {200}
    assert 1 <= watch.most <= POOL
