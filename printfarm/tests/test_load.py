"""The short load test (issue 7): writers against a polled farm answer no 5xx, never "locked".

scripts/bench_load.py at a size CI can afford: 200 simulated printers polled every second,
`serve --workers 2`, 20 API writers for 15 s. It runs on the database the suite runs on:
SQLite in scripts/test.sh's first leg, PostgreSQL + Redis in its second (on a database of
its own beside the test database, named after it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import bench_load  # noqa: E402


@pytest.mark.timeout(400)
def test_twenty_writers_against_a_polled_farm_get_no_5xx_no_locked_no_connection_errors():
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url:
        db = "postgres"
        server, name = database_url.rsplit("/", 1)
        options = {"pg_url": f"{server}/{name}_load", "redis_url": os.environ.get("REDIS_URL", "")}
        if not options["redis_url"]:
            pytest.skip("the PostgreSQL leg runs with Redis (REDIS_URL)")
    else:
        db, options = "sqlite", {}
    summary = bench_load.run(
        db=db, printers=200, writers_count=20, seconds=15, max_requests=20_000, log=lambda *a: None, **options
    )
    assert summary["writes"] > 0
    assert all(summary["processes_alive_at_end"].values())
    assert (summary["server_errors_5xx"], summary["database_locked"], summary["connection_errors"]) == (
        0,
        0,
        0,
    ), summary["samples_5xx"]
    if db == "postgres":
        assert summary["max_server_connections"] <= summary["connection_bound"]
