"""Benchmark the JSON API against the FastAPI + SQLAlchemy-async + SQLite reference.

    .venv/bin/python scripts/bench_api.py [--printers 200] [--seconds 10] [--rounds 3] [--workers 2]

Both servers get the same 200 printers (the reference through its own seed.py, printfarm
through its services with live statuses) and are loaded in the same run, alternately, with
wrk (100 connections, 2 threads, on loopback): printfarm's `GET /api/v1/printers` and
`GET /api/v1/status` (with an API token, as scripts call them) against the reference's
`GET /api/printers`. printfarm runs as the README recommends for production
(`manage.py serve --workers N`: uvicorn, uvloop, httptools); the reference as its README says
(uvicorn, uvloop, httptools) with 1 worker and with N. Then the cold start of each: process
start to the first 200. wrk is installed with apt when missing (scripts/install_wrk.sh); the
reference's venv is made once in .venv-bench-ref. Results: bench-results/api.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
REF_SRC = ROOT.parent / "shared" / "bench-ref"
REF_VENV = ROOT / ".venv-bench-ref"
sys.path.insert(0, str(ROOT / "scripts"))
from bench_poller import free_port_block, stop  # noqa: E402


def ensure_tools() -> None:
    if not shutil.which("wrk"):
        subprocess.run([str(ROOT / "scripts/install_wrk.sh")], check=True)
    if not (REF_VENV / "bin/uvicorn").exists():
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
        # The reference's requirements omit greenlet, which SQLAlchemy 2.1's asyncio needs.
        pip = [str(REF_VENV / "bin/pip"), "install", "-q", "-r", str(REF_SRC / "requirements.txt")]
        subprocess.run([*pip, "greenlet==3.5.6"], check=True)


def seed_printfarm(data: Path, printers: int) -> str:
    """Migrate and seed a fresh farm in `data` (in a child process); return an admin API token."""
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "scripts")!r})
import bench_web
bench_web.seed({printers})
from django.contrib.auth import get_user_model
from printfarm.accounts.models import Role
from printfarm.accounts.roles import set_role
from printfarm.accounts.tokens import token_create
user = get_user_model().objects.get(username="bench")
set_role(user, Role.VIEWER)
print(token_create(user, "bench").secret)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], env=farm_env(data), cwd=ROOT, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def farm_env(data: Path) -> dict:
    env = {
        **os.environ,
        "PRINTFARM_DATA_DIR": str(data),
        "SECRET_KEY": "bench-only-key",
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env


def start_printfarm(data: Path, port: int, workers: int) -> subprocess.Popen:
    cmd = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    return subprocess.Popen(
        cmd, env=farm_env(data), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def start_reference(ref_dir: Path, port: int, workers: int) -> subprocess.Popen:
    cmd = [str(REF_VENV / "bin/uvicorn"), "fastapi_app:app", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--loop", "uvloop", "--http", "httptools", "--workers", str(workers), "--log-level", "warning"]
    env = {**os.environ, "BENCH_DB": str(ref_dir / "ref.db")}
    return subprocess.Popen(cmd, env=env, cwd=ref_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def first_200(url: str, headers: dict, proc: subprocess.Popen, timeout: float = 60.0) -> float:
    """Seconds from now until `url` answers 200 (call right after starting `proc`)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, headers=headers, timeout=1.0).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} never answered 200")


def wrk(url: str, headers: dict, seconds: int, connections: int = 100) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p99_ms": round(float(p99.group(1)) * scale, 1),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--printers", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="printfarm-bench-api-"))
    procs: list[subprocess.Popen] = []
    results: dict = {"config": vars(args)}
    try:
        ref_dir = tmp / "ref"
        shutil.copytree(REF_SRC, ref_dir)
        subprocess.run(
            [str(REF_VENV / "bin/python"), "seed.py", "ref.db", str(args.printers)], cwd=ref_dir, check=True
        )
        data = tmp / "farm"
        token = seed_printfarm(data, args.printers)
        auth = {"Authorization": f"Bearer {token}"}

        port = free_port_block(3)
        farm_url, ref1_url, refn_url = (f"http://127.0.0.1:{port + i}" for i in range(3))
        servers = {
            f"printfarm, {args.workers} workers": (lambda: start_printfarm(data, port, args.workers), "farm"),
            "printfarm, 1 worker": (lambda: start_printfarm(data, port, 1), "farm"),
            "reference, 1 worker": (lambda: start_reference(ref_dir, port + 1, 1), "ref"),
            f"reference, {args.workers} workers": (
                lambda: start_reference(ref_dir, port + 1, args.workers),
                "ref",
            ),
        }
        probes = {"farm": (farm_url + "/api/v1/printers", auth), "ref": (ref1_url + "/api/printers", {})}
        cold: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(3):  # cold starts, one server at a time
            for name, (start, kind) in servers.items():
                proc = start()
                try:
                    cold[name].append(first_200(*probes[kind], proc))
                finally:
                    stop(proc, name)
        results["cold_start_s"] = {k: round(statistics.median(v), 2) for k, v in cold.items()}

        procs += [
            start_printfarm(data, port, args.workers),
            start_reference(ref_dir, port + 1, 1),
            start_reference(ref_dir, port + 2, args.workers),
        ]
        first_200(farm_url + "/api/v1/printers", auth, procs[0])
        first_200(ref1_url + "/api/printers", {}, procs[1])
        first_200(refn_url + "/api/printers", {}, procs[2])
        sizes = {
            "printfarm_printers_bytes": len(httpx.get(farm_url + "/api/v1/printers", headers=auth).content),
            "reference_printers_bytes": len(httpx.get(ref1_url + "/api/printers").content),
        }
        targets = {
            "printfarm /api/v1/printers": (farm_url + "/api/v1/printers", auth),
            "printfarm /api/v1/status": (farm_url + "/api/v1/status", auth),
            "reference /api/printers, 1 worker": (ref1_url + "/api/printers", {}),
            f"reference /api/printers, {args.workers} workers": (refn_url + "/api/printers", {}),
        }
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for round_no in range(args.rounds):
            for name, (url, headers) in targets.items():  # alternating, so drift hits all alike
                print(f"round {round_no + 1}: {name} …", flush=True)
                runs[name].append(wrk(url, headers, args.seconds))
        summary = {}
        for name, rows in runs.items():
            summary[name] = {
                "rps_median": round(statistics.median(r["rps"] for r in rows), 1),
                "p99_ms_median": round(statistics.median(r["p99_ms"] for r in rows), 1),
                "non_2xx": sum(r["non_2xx"] for r in rows),
                "socket_errors": [r["socket_errors"] for r in rows if r["socket_errors"]],
            }
        results.update(runs=runs, summary=summary, sizes=sizes)
    finally:
        for proc in procs:
            stop(proc, "server")
        shutil.rmtree(tmp, ignore_errors=True)

    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "api.json").write_text(json.dumps(results, indent=2))
    summary = results["summary"]
    print(json.dumps(results["summary"], indent=2))
    failed = False
    print(
        f"\n{args.printers} printers, wrk -t2 -c100 -d{args.seconds}s, "
        f"median of {args.rounds} alternating rounds"
    )
    print(f"{'endpoint':44s} {'req/s':>8s} {'p99 ms':>8s}")
    for name, row in summary.items():
        print(f"{name:44s} {row['rps_median']:>8.0f} {row['p99_ms_median']:>8.1f}")
    for base in ("reference /api/printers, 1 worker", f"reference /api/printers, {args.workers} workers"):
        ref = summary[base]
        for ours in ("printfarm /api/v1/printers", "printfarm /api/v1/status"):
            ratio = summary[ours]["rps_median"] / ref["rps_median"]
            p99_ok = summary[ours]["p99_ms_median"] <= ref["p99_ms_median"]
            ok = ratio >= 1.0 and p99_ok and summary[ours]["non_2xx"] == 0
            failed |= not ok
            print(f"{ours} vs {base}: {ratio:.2f}x throughput (>= 1.0), p99 "
                  f"{'no worse' if p99_ok else 'WORSE'} -> {'ok' if ok else 'MISSED'}")  # fmt: skip
    print("cold start, process start to first 200 (median of 3):")
    for name, seconds in results["cold_start_s"].items():
        print(f"  {name:26s} {seconds:.2f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
