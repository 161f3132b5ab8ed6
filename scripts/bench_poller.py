"""Benchmark the poller against a simulated farm: polls/s, CPU, RSS and status age.

    .venv/bin/python scripts/bench_poller.py [--printers 1000] [--duration 60] [--interval 1]
                                             [--blackhole 0.1] [--warmup 10]

The simulator (`manage.py simulate_printers`) runs in one process and `manage.py
poll_printers` in another, both against a fresh temporary data dir and SQLite database.
Phase 1 measures a healthy farm; phase 2 black-holes a share of the printers and measures
again, so the healthy printers' status age shows whether dead printers delay live ones.
Every subprocess is stopped in a finally block; results go to bench-results/poller.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGETS = {
    "polls_per_s": 950.0,  # >= (for 1,000 printers at 1 s; scaled to 95 % of printers/interval)
    "cpu_percent": 50.0,  # <= (% of one core)
    "peak_rss_mb": 150.0,  # <=
    "p99_age_s": 2.0,  # <=
    "healthy_p99_change": 0.20,  # <= (relative)
}


def manage(*args: str) -> list[str]:
    return [PYTHON, str(ROOT / "manage.py"), *args]


def free_port_block(count: int) -> int:
    """A base port with `count` consecutive free ports (below the ephemeral range)."""
    for base in range(20000, 32000 - count, 997):
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no block of {count} free ports below 32000")


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            if predicate():
                return
        except (OSError, httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen | None, name: str, timeout: float = 15.0) -> int | None:
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"  {name} ignored SIGTERM for {timeout:g} s; killing it")
        proc.kill()
        proc.wait(5)
        return None


class Sampler:
    """CPU (cpu_times deltas) and RSS (peak of periodic samples) of one process."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_rss = 0

    def rss(self) -> int:
        rss = self.proc.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system


def measure(
    control: httpx.Client, poller: Sampler, simulator: Sampler, duration: float, procs: list
) -> dict[str, object]:
    control.post("/stats/reset").raise_for_status()
    wall0, cpu0, sim0 = time.monotonic(), poller.cpu(), simulator.cpu()
    rss_samples = []
    while time.monotonic() - wall0 < duration:
        for proc, name in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} during the measurement")
        rss_samples.append(poller.rss())
        simulator.rss()
        time.sleep(0.5)
    wall = time.monotonic() - wall0
    cpu, sim = poller.cpu() - cpu0, simulator.cpu() - sim0
    stats = control.get("/stats").raise_for_status().json()
    return {
        "seconds": round(wall, 1),
        "polls_per_s": stats["status_per_s"],
        "status_requests": stats["status_requests"],
        "printers_polled": stats.get("polled"),
        "cpu_percent": round(100 * cpu / wall, 1),
        "peak_rss_mb": round(max(rss_samples) / 2**20, 1),
        "mean_rss_mb": round(sum(rss_samples) / len(rss_samples) / 2**20, 1),
        "age": stats["age"],
        "age_healthy": stats["age_healthy"],
        "age_faulted": stats.get("age_faulted"),
        "simulator_cpu_percent": round(100 * sim / wall, 1),
    }


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(args, phases: dict[str, dict], shutdown: dict[str, object]) -> dict[str, object]:
    TARGETS["polls_per_s"] = round(0.95 * args.printers / args.interval, 1)
    one, two = phases["healthy"], phases.get("blackhole")
    rows = [
        (
            "polls/s",
            f"{one['polls_per_s']:.0f}",
            f">= {TARGETS['polls_per_s']:.0f}",
            one["polls_per_s"] >= TARGETS["polls_per_s"],
        ),
        (
            "poller CPU, % of one core",
            f"{one['cpu_percent']:.1f}",
            f"<= {TARGETS['cpu_percent']:.0f}",
            one["cpu_percent"] <= TARGETS["cpu_percent"],
        ),
        (
            "poller peak RSS, MB",
            f"{one['peak_rss_mb']:.1f}",
            f"<= {TARGETS['peak_rss_mb']:.0f}",
            one["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
        ),
        (
            "p99 status age, s",
            f"{one['age']['p99']}",
            f"<= {TARGETS['p99_age_s']:g}",
            one["age"]["p99"] is not None and one["age"]["p99"] <= TARGETS["p99_age_s"],
        ),
    ]
    change = None
    if two is not None:
        base, now = one["age_healthy"]["p99"], two["age_healthy"]["p99"]
        change = (now - base) / base if base and now is not None else None
        rows += [
            (f"[{args.blackhole:.0%} black-holed] polls/s (all)", f"{two['polls_per_s']:.0f}", "-", True),
            (
                "[black-holed] poller CPU, %",
                f"{two['cpu_percent']:.1f}",
                f"<= {TARGETS['cpu_percent']:.0f}",
                two["cpu_percent"] <= TARGETS["cpu_percent"],
            ),
            (
                "[black-holed] poller peak RSS, MB",
                f"{two['peak_rss_mb']:.1f}",
                f"<= {TARGETS['peak_rss_mb']:.0f}",
                two["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
            ),
            (
                "[black-holed] healthy p99 age, s",
                f"{now}",
                f"<= {TARGETS['p99_age_s']:g}",
                now is not None and now <= TARGETS["p99_age_s"],
            ),
            (
                "healthy p99 age change",
                "n/a" if change is None else f"{change:+.1%}",
                f"<= +{TARGETS['healthy_p99_change']:.0%}",
                change is not None and change <= TARGETS["healthy_p99_change"],
            ),
        ]
    width = max(len(r[0]) for r in rows)
    print()
    print(
        f"poller benchmark: {args.printers} printers ({args.protocol}), interval {args.interval:g} s, "
        f"{args.duration:g} s per phase, {args.printing:.0%} printing, {os.cpu_count()} CPUs"
    )
    print(f"{'metric':<{width}}  {'measured':>10}  {'target':>8}  result")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>10}  {target:>8}  {verdict(ok)}")
    for label, phase in phases.items():
        print(
            f"  {label}: age p50/p99/max "
            f"{phase['age']['p50']}/{phase['age']['p99']}/{phase['age']['max']} s, "
            f"healthy p99 {phase['age_healthy']['p99']} s, simulator CPU {phase['simulator_cpu_percent']}%, "
            f"mean RSS {phase['mean_rss_mb']} MB"
        )
    print(f"  shutdown: {shutdown}")
    return {
        "printers": args.printers,
        "protocol": args.protocol,
        "interval": args.interval,
        "duration": args.duration,
        "blackhole": args.blackhole,
        "printing": args.printing,
        "cpus": os.cpu_count(),
        "targets": TARGETS,
        "phases": phases,
        "healthy_p99_change": change,
        "shutdown": shutdown,
        "passed": all(ok for *_, ok in rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--printers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per phase")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--blackhole", type=float, default=0.1, help="share black-holed in phase 2 (0 skips)")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument(
        "--printing",
        type=float,
        default=0.0,
        help="share of printers printing throughout (their status changes every poll: the write path)",
    )
    parser.add_argument("--protocol", default="moonraker", choices=["moonraker", "octoprint", "mixed"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "poller.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir and logs")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="printfarm-bench-poller-"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        PRINTFARM_DATA_DIR=str(data_dir),
        SECRET_KEY=secrets.token_urlsafe(32),
        DJANGO_SETTINGS_MODULE="printfarm.settings",
        DEBUG="0",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    base = free_port_block(args.printers + 1)
    control_port = base + args.printers
    printers_file = data_dir / "printers.json"
    sim_log, poll_log = data_dir / "simulator.log", data_dir / "poller.log"
    simulator = poller = None
    shutdown: dict[str, object] = {}
    try:
        print(f"data dir {data_dir}; ports {base}-{base + args.printers - 1}, control {control_port}")
        subprocess.run(manage("migrate", "--noinput", "-v", "0"), env=env, cwd=ROOT, check=True, timeout=120)
        with sim_log.open("wb") as log:
            simulator = subprocess.Popen(
                manage(
                    "simulate_printers", "--count", str(args.printers), "--protocol", args.protocol,
                    "--port", str(base), "--control-port", str(control_port),
                    "--printers-file", str(printers_file),
                ),
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        control = httpx.Client(base_url=f"http://127.0.0.1:{control_port}", timeout=10)
        wait_for(lambda: control.get("/stats").status_code == 200, 60, "the simulator", simulator)
        wait_for(printers_file.exists, 30, "the printers file", simulator)
        started = time.monotonic()
        subprocess.run(
            manage("register_printers", str(printers_file)), env=env, cwd=ROOT, check=True, timeout=600
        )
        print(f"registered {args.printers} printers in {time.monotonic() - started:.1f} s")

        with poll_log.open("wb") as log:
            poller = subprocess.Popen(
                manage("poll_printers", "--interval", str(args.interval)),
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if args.printing > 0:
            busy = range(0, round(args.printers * args.printing))
            for i in busy:
                body = {"filename": "bench.gcode", "duration": 10 * 86400}
                control.post(f"/printers/{i}/print", json=body).raise_for_status()
            print(f"{len(busy)} printers printing")
        procs = [(simulator, "simulator"), (poller, "poller")]
        poller_sampler, sim_sampler = Sampler(poller.pid), Sampler(simulator.pid)
        phases: dict[str, dict] = {}

        print(f"phase 1: healthy farm; warm-up {args.warmup:g} s, then {args.duration:g} s")
        time.sleep(args.warmup)
        phases["healthy"] = measure(control, poller_sampler, sim_sampler, args.duration, procs)
        print(f"  {json.dumps(phases['healthy'])}")

        if args.blackhole > 0:
            step = max(1, round(1 / args.blackhole))
            holed = list(range(0, args.printers, step))
            for i in holed:
                control.post(f"/printers/{i}/fault", json={"fault": "blackhole"}).raise_for_status()
            print(
                f"phase 2: {len(holed)} printers black-holed; "
                f"warm-up {args.warmup:g} s, then {args.duration:g} s"
            )
            time.sleep(args.warmup)
            phases["blackhole"] = measure(control, poller_sampler, sim_sampler, args.duration, procs)
            print(f"  {json.dumps(phases['blackhole'])}")

        t0 = time.monotonic()
        code = stop(poller, "poller")
        shutdown = {"poller_exit_code": code, "seconds": round(time.monotonic() - t0, 2)}
        result = report(args, phases, shutdown)
        log_text = poll_log.read_text(errors="replace")
        result["poller_log_tracebacks"] = log_text.count("Traceback")
        result["poller_log_tail"] = log_text.splitlines()[-8:]
        print(f"  poller log: {result['poller_log_tracebacks']} tracebacks; last lines:")
        for line in result["poller_log_tail"]:
            print(f"    {line}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0 if result["passed"] else 1
    finally:
        stop(poller, "poller")
        stop(simulator, "simulator")
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
