"""Load test (issue 7): concurrent API writers against a polled farm, on SQLite and PostgreSQL.

    .venv/bin/python scripts/bench_load.py [--db sqlite|postgres|both] [--printers 1000]
                                           [--writers 50] [--seconds 60] [--workers 2]

For each database, on a fresh one: the simulator serves N printers (a fifth of them printing
all along, so the poller writes status every poll; the rest print the jobs the dispatcher
sends them), `poll_printers --interval 1` polls them and dispatches, `manage.py serve
--workers 2` serves the API on a loopback port, and an admin API token is made. Then W
writers (asyncio + httpx, one connection each) loop for S seconds, at most --max-requests in
all: queue a job (POST /api/v1/jobs), reorder the head of the queue (POST
/api/v1/queue/order), change a printer (PATCH /api/v1/printers/{id}), confirm a bed clear,
cancel a job. Reported: write latency p50/p99 (all, and per kind), 5xx answers, answers
saying "database is locked", connection errors; on PostgreSQL the most server connections
open to the database at once (pg_stat_activity, sampled every 0.1 s) against the bound
(web workers + 1 poller) x PRINTFARM_DB_POOL_SIZE. Results: bench-results/load.json; exit 1
when a write answered 5xx or "locked" or failed to connect.

`run()` is also the short load test of the suite (printfarm/tests/test_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from bench_api import first_200  # noqa: E402
from bench_poller import free_port_block, manage, stop, wait_for  # noqa: E402

PG_URL = os.environ.get("PRINTFARM_BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/printfarm_load")
REDIS_URL = os.environ.get("PRINTFARM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
POOL_SIZE = 8  # PRINTFARM_DB_POOL_SIZE's default, set explicitly for the processes started here
KINDS = {"create": 40, "reorder": 15, "patch": 15, "bed": 15, "cancel": 15}  # weights


def farm_env(data: Path, db: str, pg_url: str = PG_URL, redis_url: str = REDIS_URL) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        PRINTFARM_DATA_DIR=str(data),
        SECRET_KEY=secrets.token_urlsafe(32),
        DJANGO_SETTINGS_MODULE="printfarm.settings",
        DEBUG="0",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PRINTFARM_DB_POOL_SIZE=str(POOL_SIZE),
    )
    if db == "postgres":
        env.update(DATABASE_URL=pg_url, REDIS_URL=redis_url)
    return env


def pg_recreate(url: str) -> None:
    """Drop and create the benchmark's own database (never the one the URL's server runs on)."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed(env: dict) -> dict:
    """Migrate; an admin with an API token; one G-code file that prints for 30 s."""
    code = """
import json, hashlib, uuid, django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from jobs.demo import gcode_bytes
from jobs.library import IncomingFile, files_dir, store
from printfarm.accounts.models import Role
from printfarm.accounts.roles import set_role
from printfarm.accounts.tokens import token_create
call_command("migrate", verbosity=0)
user = get_user_model().objects.create_user("load", password=uuid.uuid4().hex)
set_role(user, Role.ADMIN)
data = gcode_bytes(seconds=30)
incoming = files_dir() / "incoming"
incoming.mkdir(parents=True, exist_ok=True)
path = incoming / "load.part"
path.write_bytes(data)
file = store(IncomingFile(path=path, name="load.gcode", size=len(data),
                          sha256=hashlib.sha256(data).hexdigest())).file
print(json.dumps({"token": token_create(user, "load").secret, "file_id": file.pk}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class Tally:
    """What the writers saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: int = 0
    locked: int = 0
    busy_503: int = 0
    connection_errors: int = 0
    samples_5xx: list[str] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)

    def record(self, kind: str, seconds: float, response: httpx.Response) -> None:
        self.latencies[kind].append(seconds)
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if "database is locked" in response.text:
            self.locked += 1
        if response.status_code >= 500:
            self.server_errors += 1
            self.busy_503 += response.status_code == 503
            if len(self.samples_5xx) < 5:
                self.samples_5xx.append(f"{kind} {response.status_code} {response.text[:200]}")


async def writers(
    base_url: str,
    token: str,
    file_id: int,
    printer_ids: list[int],
    *,
    count: int,
    seconds: float,
    max_requests: int,
    seed: int = 7,
) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds
    budget = [max_requests]
    jobs: list[int] = []  # queued by the writers, newest last
    rng = random.Random(seed)
    kinds, weights = list(KINDS), list(KINDS.values())

    async def request(client: httpx.AsyncClient, kind: str) -> httpx.Response:
        if kind == "create":
            return await client.post("/api/v1/jobs", json={"file_id": file_id, "quantity": rng.randint(1, 3)})
        if kind == "reorder":
            head = jobs[-30:]
            order = rng.sample(head, min(10, len(head)))
            return await client.post("/api/v1/queue/order", json={"order": order})
        printer = rng.choice(printer_ids)
        if kind == "patch":
            return await client.patch(
                f"/api/v1/printers/{printer}", json={"location": f"Rack {rng.randint(1, 50)}"}
            )
        if kind == "bed":
            return await client.post(f"/api/v1/printers/{printer}/bed-cleared")
        job = rng.choice(jobs) if jobs else 0
        return await client.post(f"/api/v1/jobs/{job}/cancel")

    async def writer() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=30.0, limits=limits
        ) as client:
            while time.monotonic() < deadline and budget[0] > 0:
                budget[0] -= 1
                kind = rng.choices(kinds, weights)[0]
                started = time.perf_counter()
                try:
                    response = await request(client, kind)
                except httpx.HTTPError as exc:
                    tally.connection_errors += 1
                    name = type(exc).__name__
                    tally.error_kinds[name] = tally.error_kinds.get(name, 0) + 1
                    await asyncio.sleep(0.1)
                    continue
                tally.record(kind, time.perf_counter() - started, response)
                if kind == "create" and response.status_code == 201:
                    jobs.extend(item["id"] for item in response.json()["items"])
                    del jobs[:-500]

    await asyncio.gather(*(writer() for _ in range(count)))
    return tally


class ConnectionWatch(threading.Thread):
    """The most connections open to one PostgreSQL database at once, sampled every 0.1 s."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.base, self.name = url.rsplit("/", 1)
        self.most = 0
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(f"{self.base}/postgres", autocommit=True) as conn:
            while not self.done.wait(0.1):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.name]
                ).fetchone()
                self.most = max(self.most, row[0])


def cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU of a process and its children (uvicorn's workers) so far."""
    try:
        root = psutil.Process(proc.pid)
        total = 0.0
        for each in [root, *root.children(recursive=True)]:
            times = each.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(
    *,
    db: str,
    printers: int = 1000,
    writers_count: int = 50,
    seconds: float = 60.0,
    workers: int = 2,
    max_requests: int = 200_000,
    printing: float = 0.2,
    pg_url: str = PG_URL,
    redis_url: str = REDIS_URL,
    keep: bool = False,
    log=print,
) -> dict:
    """One load run on a fresh database; returns the summary (and stops everything it started)."""
    data = Path(tempfile.mkdtemp(prefix=f"printfarm-bench-load-{db}-"))
    env = farm_env(data, db, pg_url, redis_url)
    procs: list[tuple[subprocess.Popen, str]] = []
    watch = None
    try:
        if db == "postgres":
            pg_recreate(pg_url)
        seeded = seed(env)
        base = free_port_block(printers + 2)
        control_port, web_port = base + printers, base + printers + 1
        printers_file = data / "printers.json"
        logs = {name: (data / f"{name}.log").open("wb") for name in ("simulator", "poller", "web")}

        def start(name: str, *args: str) -> subprocess.Popen:
            proc = subprocess.Popen(
                manage(*args), env=env, cwd=ROOT, stdout=logs[name], stderr=subprocess.STDOUT
            )
            procs.append((proc, name))
            return proc

        simulator = start(
            "simulator", "simulate_printers", "--count", str(printers), "--protocol", "moonraker",
            "--port", str(base), "--control-port", str(control_port), "--printers-file", str(printers_file),
        )  # fmt: skip
        control = httpx.Client(base_url=f"http://127.0.0.1:{control_port}", timeout=10)
        wait_for(lambda: control.get("/stats").status_code == 200, 60, "the simulator", simulator)
        wait_for(printers_file.exists, 30, "the printers file", simulator)
        subprocess.run(
            manage("register_printers", str(printers_file)), env=env, cwd=ROOT, check=True, timeout=600
        )
        for i in range(round(printers * printing)):
            control.post(
                f"/printers/{i}/print", json={"filename": "long.gcode", "duration": 86400}
            ).raise_for_status()
        start("poller", "poll_printers", "--interval", "1")
        web = start("web", "serve", "--host", "127.0.0.1", "--port", str(web_port), "--workers", str(workers))
        url = f"http://127.0.0.1:{web_port}"
        auth = {"Authorization": f"Bearer {seeded['token']}"}
        first_200(url + "/api/v1/me", auth, web)
        listed = httpx.get(url + f"/api/v1/printers?limit={printers}", headers=auth, timeout=30).json()
        printer_ids = [p["id"] for p in listed["items"]]
        if db == "postgres":
            watch = ConnectionWatch(pg_url)
            watch.start()
        time.sleep(3)  # the poller's first full round of writes lands inside the measurement
        log(f"{db}: {len(printer_ids)} printers polled; {writers_count} writers for {seconds:g} s")
        cpu_before = {name: cpu_seconds(proc) for proc, name in procs}
        started = time.monotonic()
        tally = asyncio.run(
            writers(
                url, seeded["token"], seeded["file_id"], printer_ids,
                count=writers_count, seconds=seconds, max_requests=max_requests,
            )
        )  # fmt: skip
        elapsed = time.monotonic() - started
        cpu = {name: round(100 * (cpu_seconds(proc) - cpu_before[name]) / elapsed) for proc, name in procs}
        alive = {name: proc.poll() is None for proc, name in procs}
    except BaseException:
        for name in ("simulator", "poller", "web"):
            path = data / f"{name}.log"
            if path.exists():
                log(
                    f"--- {name} log, last lines:\n"
                    + "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                )
        raise
    finally:
        if watch is not None:
            watch.done.set()
            watch.join(5)
        for proc, name in reversed(procs):
            stop(proc, name)
    every = [s for values in tally.latencies.values() for s in values]
    poller_log = (data / "poller.log").read_text(errors="replace")
    web_log = (data / "web.log").read_text(errors="replace")
    summary = {
        "db": db,
        "printers": printers,
        "writers": writers_count,
        "seconds": seconds,
        "writes": len(every),
        "writes_per_s": round(len(every) / seconds, 1),
        "p50_ms": round(percentile(every, 50) * 1000, 1),
        "p99_ms": round(percentile(every, 99) * 1000, 1),
        "max_ms": round(max(every, default=0) * 1000, 1),
        "per_kind": {
            kind: {
                "n": len(v),
                "p50_ms": round(percentile(v, 50) * 1000, 1),
                "p99_ms": round(percentile(v, 99) * 1000, 1),
            }
            for kind, v in tally.latencies.items()
        },
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "server_errors_5xx": tally.server_errors,
        "busy_503": tally.busy_503,
        "database_locked": tally.locked,
        "connection_errors": tally.connection_errors,
        "connection_error_kinds": tally.error_kinds,
        "samples_5xx": tally.samples_5xx,
        "processes_alive_at_end": alive,
        "cpu_percent_of_one_core": cpu,
        "machine_load_average": os.getloadavg(),
        "poller_slowest_flush": [
            line.split("slowest flush ")[1] for line in poller_log.splitlines() if "slowest flush" in line
        ],
        "poller_slow_writes": sum("Writing" in line and "took" in line for line in poller_log.splitlines()),
        "web_log_tracebacks": web_log.count("Traceback"),
        "poller_log_tracebacks": poller_log.count("Traceback"),
    }
    if db == "postgres":
        summary["max_server_connections"] = watch.most if watch else None
        summary["connection_bound"] = (workers + 1) * POOL_SIZE
    if keep:
        log(f"logs kept in {data}")
    else:
        shutil.rmtree(data, ignore_errors=True)
    return summary


def ok(summary: dict) -> bool:
    bound = summary.get("connection_bound")
    return (
        summary["server_errors_5xx"] == 0
        and summary["database_locked"] == 0
        and summary["connection_errors"] == 0
        and (bound is None or summary["max_server_connections"] <= bound)
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--printers", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=200_000, help="stop the writers after this many")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and the processes' logs")
    args = parser.parse_args()
    if not 1 <= args.writers <= 200 or not 0 < args.seconds <= 600:
        parser.error("writers 1-200, seconds up to 600")
    results = []
    for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        results.append(
            run(
                db=db, printers=args.printers, writers_count=args.writers, seconds=args.seconds,
                workers=args.workers, max_requests=args.max_requests, keep=args.keep,
            )
        )  # fmt: skip
        print(json.dumps(results[-1], indent=2), flush=True)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(results, indent=2))
    print(f"\n{'db':9s} {'writes':>7s} {'/s':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'5xx':>4s} {'locked':>6s} "
          f"{'conn err':>8s} {'max PG conns':>12s}")  # fmt: skip
    for r in results:
        conns = (
            f"{r['max_server_connections']} (<= {r['connection_bound']})" if r["db"] == "postgres" else "-"
        )
        row = [r["writes"], r["writes_per_s"], r["p50_ms"], r["p99_ms"]]
        row += [r["server_errors_5xx"], r["database_locked"], r["connection_errors"]]
        print(f"{r['db']:9s} {row[0]:>7d} {row[1]:>6.0f} {row[2]:>8.1f} {row[3]:>8.1f} "
              f"{row[4]:>4d} {row[5]:>6d} {row[6]:>8d} {conns:>12s}")  # fmt: skip
    return 0 if all(ok(r) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
