"""Chaos: a real poller process killed and restarted at random (aimed at uploads and starts)
while printers fail in every way the simulator knows; every job must end recorded truthfully.

The verdict compares the database with the simulator's own print log:
- every job is completed, failed or cancelled;
- a completed job <-> exactly one completed print of its remote file, on its printer;
- a failed/cancelled job's print (if any) did not complete; nobody cancels here, so a
  cancelled job is one the printer reported cancelled;
- no remote file was started twice, no print ran that no job accounts for;
- no partial or temporary file is left on a printer or in the library's incoming area.

    make chaos                                    # one random seed (the suite runs seeds 12 and 18)
    PRINTFARM_CHAOS_SEEDS="1 2 3" make chaos      # these seeds (also for pytest directly)
    PRINTFARM_CHAOS_REPORT=/tmp make chaos        # also write each run's report and poller log there
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connections

from jobs import services
from jobs.models import Job, JobEvent
from jobs.tests.factories import make_file
from printers.models import Printer
from printers.services import printer_create
from printers.simulator import running_farm

ROOT = Path(__file__).resolve().parents[2]
PRINTERS = 6
SPEED = 60.0
PRINT_SECONDS = 180  # simulated: 3 real seconds at SPEED
CHAOS_SECONDS = 35.0  # faults and kills stop after this long (or when every job is final)
SETTLE_SECONDS = 90.0  # then every job must be final within this
FAULTS = (
    "http500",
    "malformed",
    "garbled",
    "blackhole",
    "stall_upload",
    "offline",
    "not_ready",
    "disconnect",
)
START_FAULTS = ("http500", "malformed", "garbled", "blackhole", "disconnect", "offline")  # aimed at a start
FINAL = {Job.State.COMPLETED, Job.State.FAILED, Job.State.CANCELLED}
TICK = 0.05


# The suite's seeds: fixed, so a CI run's script is the same every time (the processes'
# timing still varies); `make chaos` draws a new one, "random" here does too.
SUITE_SEEDS = "12 18"


def _seeds() -> list[int]:
    raw = os.environ.get("PRINTFARM_CHAOS_SEEDS", SUITE_SEEDS).split()
    return [random.SystemRandom().randrange(1, 10**6) if s == "random" else int(s) for s in raw]


def _basename(name: str) -> str:
    return name.rsplit("/", 1)[-1]


@pytest.fixture
def chaos_site(tmp_path, settings, django_db_blocker):
    """A migrated database of its own, shared by this test (the default connection points at
    it for the test's duration) and the poller processes it starts: a SQLite file in
    `tmp_path`, or, when DATABASE_URL is set (the PostgreSQL + Redis leg), a PostgreSQL
    database made for the run and dropped after it."""
    env = {
        **os.environ,
        "PRINTFARM_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "printfarm.settings",
        "SECRET_KEY": "chaos-test-key",
        "PRINTFARM_DISPATCH_INTERVAL": "0.2",
        "PRINTFARM_TRANSFER_RETRY_SECONDS": "0.3",
        "PRINTFARM_TRANSFER_ATTEMPTS": "3",
        "PRINTFARM_BACKOFF_MAX": "1.0",
        "PYTHONUNBUFFERED": "1",
    }
    pg_url = os.environ.get("DATABASE_URL", "")
    if pg_url:
        name = f"printfarm_chaos_{os.getpid()}"
        _pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}"))
    else:
        name = str(tmp_path / "printfarm.sqlite3")
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    settings.PRINTFARM_FILES_DIR = tmp_path / "files"  # what the poller's PRINTFARM_DATA_DIR gives
    with django_db_blocker.unblock():
        connection = connections["default"]
        original = connection.settings_dict["NAME"]
        _disconnect(connection)
        connection.settings_dict["NAME"] = name
        try:
            yield {"env": env, "dir": tmp_path}
        finally:
            _disconnect(connection)
            connection.settings_dict["NAME"] = original
            if pg_url:
                _pg_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _disconnect(connection) -> None:
    """Close the connection and, on PostgreSQL, its pool, which would hand out connections
    to the database it was made for."""
    connection.close()
    if hasattr(connection, "close_pool"):
        connection.close_pool()


def _pg_admin(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(urlunsplit(urlsplit(url)._replace(path="/postgres")), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


class Poller:
    """`manage.py poll_printers` as a real process, killed with SIGKILL and started again."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0
        self.crashes: list[int] = []  # exit codes of runs that ended without our SIGKILL
        self._killed = False

    def start(self) -> None:
        with self.lock, self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "poll_printers", "--interval", "0.3", "--timeout", "2"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.starts += 1
            self._killed = False

    @property
    def alive(self) -> bool:
        """Running and not sent a SIGKILL (which may not have landed yet)."""
        return self.proc is not None and not self._killed and self.proc.poll() is None

    def kill(self) -> bool:
        """SIGKILL now (safe from any thread); False if it was not running."""
        with self.lock:
            if self.proc is None or self._killed or self.proc.poll() is not None:
                return False
            self.proc.kill()
            self.kills += 1
            self._killed = True
            return True

    def reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if not self._killed and self.proc.returncode is not None:
                self.crashes.append(self.proc.returncode)

    def stop(self) -> None:
        with self.lock:
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def tracebacks(self) -> list[str]:
        """Each traceback the poller logged (a SIGKILL leaves none: these are its own errors)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        found = []
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                tail = next((t for t in lines[i + 1 : i + 80] if t and not t[0].isspace()), "")
                found.append(f"{lines[i - 1] if i else ''} / {tail}")
        return found

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Chaos:
    """The seeded script: what to break next and when; everything it did goes into `actions`."""

    rng: random.Random
    farm: Any
    poller: Poller
    sim_index: dict[int, int]  # printer pk -> simulator index
    t0: float = field(default_factory=time.monotonic)
    kill_budget: int = 8
    restart_at: float | None = None
    faults: dict[int, float] = field(default_factory=dict)  # sim index -> monotonic clear time
    next_fault: float = 0.0
    next_random_kill: float = 0.0
    seen: dict[int, tuple[str, int]] = field(default_factory=dict)  # job pk -> (state, attempts)
    actions: list[str] = field(default_factory=list)
    armed: bool = True  # kills allowed (off once the chaos phase ends)
    lock: threading.Lock = field(default_factory=threading.Lock)
    listener_rng: random.Random | None = None  # the simulator thread's own, seeded from rng

    def __post_init__(self) -> None:
        self.listener_rng = random.Random(self.rng.random())

    def note(self, text: str) -> None:
        with self.lock:
            self.actions.append(f"{time.monotonic() - self.t0:7.2f}s {text}")

    # -- kills -------------------------------------------------------------------------------

    def kill(self, why: str) -> None:
        with self.lock:
            if self.kill_budget <= 0 or not self.armed or not self.poller.kill():
                return
            self.kill_budget -= 1
        self.note(f"SIGKILL poller ({why})")

    def on_print(self, entry: dict[str, Any]) -> None:
        """Simulator thread, inside the request that started the print: the poller has not
        had the reply yet, so a kill here is a crash between start and record."""
        assert self.listener_rng is not None
        if entry["outcome"] == "in_progress" and self.listener_rng.random() < 0.3:
            self.kill(f"printer {entry['index']} just started {entry['filename']}")

    def on_upload(self, index: int, path: str) -> None:
        """Simulator thread, once a file is stored and before the upload is answered: crash
        now, or break the printer for the start request that should come next."""
        assert self.listener_rng is not None
        roll = self.listener_rng.random()
        if roll < 0.15:
            self.kill(f"printer {index} just stored {path}")
        elif roll < 0.45 and self.armed and index not in self.faults:
            fault = self.listener_rng.choice(START_FAULTS)
            self.set_fault(index, fault, self.listener_rng.uniform(0.3, 2.5), f"{path} stored, start next")

    def restart_if_due(self, now: float) -> None:
        if self.poller.alive:
            return
        if self.restart_at is None:
            self.poller.reap()
            self.restart_at = now + self.rng.uniform(0.0, 1.5)
        elif now >= self.restart_at:
            self.restart_at = None
            self.poller.start()
            self.note("poller started")

    # -- faults ------------------------------------------------------------------------------

    # The lock is never held while calling the farm: from this thread that call waits for the
    # farm's loop, which may be inside a listener waiting for the lock.

    def set_fault(self, index: int, fault: str, seconds: float, why: str) -> None:
        with self.lock:
            if index in self.faults:
                return
            self.faults[index] = time.monotonic() + seconds
        self.farm.set_fault(index, fault, delay=0.5)
        self.note(f"printer {index}: {fault} for {seconds:.1f}s ({why})")

    def clear_due_faults(self, now: float, *, everything: bool = False) -> None:
        with self.lock:
            due = [i for i, until in self.faults.items() if everything or now >= until]
            for index in due:
                del self.faults[index]
        for index in due:
            self.farm.set_fault(index, None)
            self.note(f"printer {index}: cleared" + (" (end of chaos)" if everything else ""))

    def clear_all(self) -> None:
        self.armed = False
        self.clear_due_faults(time.monotonic(), everything=True)
        for index in range(len(self.farm.printers)):  # one a listener set meanwhile
            self.farm.set_fault(index, None)

    # -- one step ----------------------------------------------------------------------------

    def step(self, jobs: list[tuple[int, str, int, int | None]]) -> None:
        now = time.monotonic()
        self.clear_due_faults(now)
        self.restart_if_due(now)
        for pk, state, attempts, printer_id in jobs:
            before = self.seen.get(pk)
            self.seen[pk] = (state, attempts)
            if before == (state, attempts) or state not in (Job.State.UPLOADING, Job.State.PRINTING):
                continue
            index = self.sim_index.get(printer_id) if printer_id is not None else None
            roll = self.rng.random()
            if roll < 0.25:
                self.kill(f"job {pk} just became {state}")
            elif roll < 0.5 and index is not None and index not in self.faults and state == "uploading":
                fault = self.rng.choice(START_FAULTS + ("stall_upload", "offline"))
                self.set_fault(index, fault, self.rng.uniform(0.3, 2.5), f"job {pk} uploading")
        if now >= self.next_fault:
            self.next_fault = now + self.rng.uniform(0.3, 1.5)
            free = [i for i in range(len(self.farm.printers)) if i not in self.faults]
            if free and len(self.faults) < 3:
                self.set_fault(
                    self.rng.choice(free), self.rng.choice(FAULTS), self.rng.uniform(0.5, 4.0), "random"
                )
        if now >= self.next_random_kill:
            if self.next_random_kill:
                self.kill("random moment")
            self.next_random_kill = now + self.rng.uniform(4.0, 10.0)


def _job_rows() -> list[tuple[int, str, int, int | None]]:
    return list(Job.objects.values_list("pk", "state", "attempts", "printer_id"))


def _wait(predicate, timeout: float, poll: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


def _report(seed: int, chaos: Chaos, farm, poller: Poller) -> str:
    lines = [f"seed {seed} (rerun: PRINTFARM_CHAOS_SEEDS={seed} make chaos)", "", "chaos script:"]
    lines += [f"  {a}" for a in chaos.actions]
    lines += ["", "simulator print log:"]
    for p in farm.print_log():
        lines.append(
            f"  printer {p['index']} {p['protocol']:<9} {p['filename']:<28} {p['outcome']:<17} "
            f"started {p['started']:.2f} ended {p['ended']}"
        )
    lines += ["", "jobs:"]
    events = collections.defaultdict(list)
    for e in JobEvent.objects.order_by("at", "pk").values("job_id", "from_state", "to_state", "reason", "at"):
        events[e["job_id"]].append(f"{e['to_state']}" + (f" ({e['reason']})" if e["reason"] else ""))
    for job in Job.objects.order_by("pk"):
        lines.append(
            f"  job {job.pk} {job.state} on {job.printer_name or '-'} remote {job.remote_name or '-'} "
            f"attempts {job.attempts}: " + " -> ".join(events[job.pk])
        )
    lines += ["", "poller log (tail):", poller.log_tail()]
    return "\n".join(lines)


def _violations(farm, sim_index: dict[int, int], site_dir: Path) -> list[str]:
    problems = []
    jobs = list(Job.objects.select_related("file").order_by("pk"))
    log = farm.print_log()
    prints = collections.defaultdict(list)
    for p in log:
        prints[_basename(p["filename"])].append(p)
    by_remote = collections.defaultdict(list)
    for job in jobs:
        if job.state not in FINAL:
            problems.append(f"job {job.pk} is not final: {job.state}")
        if job.remote_name:
            by_remote[_basename(job.remote_name)].append(job)
    for name, owners in by_remote.items():
        if len(owners) > 1:
            problems.append(f"remote name {name} is shared by jobs {[j.pk for j in owners]}")
    for name, starts in prints.items():
        if name not in by_remote:
            problems.append(f"print of {name} on printer {starts[0]['index']} belongs to no job")
        if len(starts) > 1:
            problems.append(f"{name} was started {len(starts)} times: {[p['outcome'] for p in starts]}")
    for job in jobs:
        mine = prints.get(_basename(job.remote_name), []) if job.remote_name else []
        completed = [p for p in mine if p["outcome"] == "completed"]
        if job.state == Job.State.COMPLETED:
            if len(completed) != 1:
                problems.append(
                    f"job {job.pk} is completed but {job.remote_name or 'its file'} has "
                    f"{len(completed)} completed prints ({[p['outcome'] for p in mine]})"
                )
            elif completed[0]["index"] != sim_index.get(job.printer_id):
                problems.append(f"job {job.pk} completed on printer {completed[0]['index']}, not its printer")
        elif completed:
            problems.append(f"job {job.pk} is {job.state} but its print of {job.remote_name} completed")
        elif job.state == Job.State.CANCELLED and not any(p["outcome"] == "cancelled" for p in mine):
            # Nobody cancels anything here: a lost connection or an error is not a cancel.
            problems.append(
                f"job {job.pk} is cancelled, but no one cancelled it (its prints: "
                f"{[p['outcome'] for p in mine] or 'none'})"
            )
    sizes = {_basename(j.remote_name): j.file.size for j in jobs if j.remote_name}
    for sim in farm.printers:
        if not sim.storage.is_dir():
            continue
        for path in sim.storage.rglob("*"):
            if not path.is_file():
                continue
            rel = path.relative_to(sim.storage)
            if rel.parts[0] == ".tmp":
                problems.append(f"temporary upload left on printer {sim.index}: {rel}")
            elif path.name not in sizes:
                problems.append(f"file on printer {sim.index} belongs to no job: {rel}")
            elif (size := path.stat().st_size) != sizes[path.name]:
                problems.append(
                    f"partial file on printer {sim.index}: {rel} ({size} of {sizes[path.name]} B)"
                )
    incoming = site_dir / "files" / "incoming"
    if incoming.is_dir():
        problems += [f"orphaned library upload: {p.name}" for p in incoming.iterdir()]
    return problems


@pytest.mark.timeout(400)
@pytest.mark.parametrize("seed", _seeds())
def test_every_print_is_recorded_truthfully_through_crashes_and_faults(chaos_site, seed):
    rng = random.Random(seed)
    site_dir: Path = chaos_site["dir"]
    with running_farm(count=PRINTERS, protocol="mixed", speed=SPEED, upload_dir=site_dir / "sim") as farm:
        sim_index = {}
        for sim in farm.printers:
            printer = printer_create(
                fields={
                    "name": sim.name,
                    "protocol": sim.protocol,
                    "base_url": sim.base_url,
                    "auto_clear": True,
                },
                by="chaos",
            )
            sim_index[printer.pk] = sim.index
        # 16 files queued once, 2 queued twice: 20 jobs, each needing its own remote name.
        for i in range(18):
            file = make_file(f"chaos-{i:02}.gcode", seconds=PRINT_SECONDS + rng.randrange(0, 60))
            services.jobs_create(file=file, quantity=2 if i >= 16 else 1)
        assert Job.objects.count() == 20
        assert Printer.objects.filter(auto_clear=True).count() == PRINTERS

        poller = Poller(chaos_site["env"], site_dir / "poller.log")
        chaos = Chaos(rng=rng, farm=farm, poller=poller, sim_index=sim_index)
        farm.add_print_listener(chaos.on_print)
        farm.add_upload_listener(chaos.on_upload)
        poller.start()
        chaos.note("poller started")
        try:
            deadline = time.monotonic() + CHAOS_SECONDS
            while time.monotonic() < deadline:
                rows = _job_rows()
                if all(state in FINAL for _, state, _, _ in rows):
                    break
                chaos.step(rows)
                time.sleep(TICK)
            chaos.clear_all()
            if not poller.alive:
                poller.reap()
                poller.start()
                chaos.note("poller started (end of chaos)")
            settled = _wait(
                lambda: all(state in FINAL for _, state, _, _ in _job_rows()) or not poller.alive,
                SETTLE_SECONDS,
            )
            # A print a job no longer follows may still run: let it end so the verdict is final.
            _wait(lambda: all(p["outcome"] != "in_progress" for p in farm.print_log()), 30)
            chaos.note(f"settled: {settled}; poller alive: {poller.alive}")
        finally:
            poller.stop()
        problems = _violations(farm, sim_index, site_dir)
        if poller.proc is not None and poller.proc.returncode not in (0, -signal.SIGTERM):
            problems.append(f"the poller exited with {poller.proc.returncode} when stopped")
        problems += [f"the poller died by itself (exit code {code})" for code in poller.crashes]
        errors = poller.tracebacks()
        if errors:
            problems.append(f"the poller logged {len(errors)} tracebacks; first: {errors[0]}")
        report = _report(seed, chaos, farm, poller)
    if os.environ.get("PRINTFARM_CHAOS_REPORT"):  # a directory: keep every run's report
        out = Path(os.environ["PRINTFARM_CHAOS_REPORT"]) / f"chaos-{seed}.txt"
        out.write_text("\n".join(problems) + "\n\n" + report + "\n")
        with contextlib.suppress(OSError):
            out.with_suffix(".poller.log").write_bytes((site_dir / "poller.log").read_bytes())
    summary = f"{poller.kills} kills, {poller.starts} starts"
    assert not problems, (
        f"seed {seed}: {len(problems)} violations ({summary}):\n"
        + "\n".join(f"- {p}" for p in problems)
        + "\n\n"
        + report
    )
