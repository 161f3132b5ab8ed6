"""What bench_poller.py reads beside the simulator's counters, for push (Bambu) printers.

A polled printer's status age is measured where the request lands; a push printer's report is
sent whether or not the poller keeps up, so three readings from the poller's side go with it:

- `farm_states`: the state each printer's stored status row shows (is every printer connected?);
- `socket_backlog`: bytes the kernel has received for the poller but the poller has not read
  yet (0 means every report pushed to it has been taken in);
- `ChangeProbe`: a change made at a printer (its AMS tray colour, through the simulator's
  control API) timed until the poller has written it to the database: the age of what the
  farm shows, end to end.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

LIVE = frozenset({"idle", "printing", "paused", "finished"})  # a reading from the printer itself
PROBE_EVERY = 0.2  # seconds between two tray changes
PROBE_TIMEOUT = 10.0  # a change not in the database by then counts as missed


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10, check_same_thread=False)


def printer_ids(db: Path) -> dict[str, int]:
    """Printer name -> pk (register_printers adds them in the printers file's order)."""
    with _connect(db) as conn:
        return dict(conn.execute("SELECT name, id FROM printers_printer"))


def farm_states(db: Path) -> dict[int, tuple[str, str]]:
    """Printer pk -> (protocol, state its stored status shows; "none": no row yet)."""
    query = (
        "SELECT p.id, p.protocol, COALESCE(s.state, 'none') FROM printers_printer p "
        "LEFT JOIN printers_printerstatus s ON s.printer_id = p.id"
    )
    with _connect(db) as conn:
        return {pk: (protocol, state) for pk, protocol, state in conn.execute(query)}


def live_count(states: dict[int, tuple[str, str]], among: set[int] | None = None) -> int:
    """How many printers (of `among`, default all) show a reading from the printer itself."""
    return sum(1 for pk, (_, state) in states.items() if state in LIVE and (among is None or pk in among))


def state_counts(states: dict[int, tuple[str, str]], among: set[int]) -> dict[str, dict[str, int]]:
    """Per protocol, how many of `among` show each state."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for pk in among:
        protocol, state = states.get(pk, ("?", "none"))
        found[protocol][state] += 1
    return {protocol: dict(counts) for protocol, counts in sorted(found.items())}


def socket_backlog(pid: int) -> tuple[int, int]:
    """(bytes received but not yet read, sockets holding any) over the process's TCP sockets."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    unread = holding = 0
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[9]) in inodes:
                rx = int(fields[4].split(":")[1], 16)
                unread += rx
                holding += rx > 0
    return unread, holding


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "samples": 0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 3)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1], 3), "samples": len(ordered)}


class ChangeProbe(threading.Thread):
    """Change one printer's first AMS tray colour every PROBE_EVERY s (round robin over
    `targets`, printer index -> pk) and time each change until its status row shows it."""

    def __init__(self, control_url: str, db: Path, targets: dict[int, int]) -> None:
        super().__init__(name="change-probe", daemon=True)
        self.control = httpx.Client(base_url=control_url, timeout=10)
        self.conn = _connect(db)
        self.targets = list(targets.items())
        self.stopping = threading.Event()
        self.latencies: list[float] = []
        self.missed = 0
        self.counter = 0

    def run(self) -> None:
        pending: dict[int, tuple[str, float]] = {}  # pk -> (colour, sent at)
        turn, next_change = 0, time.monotonic()
        # Once stopping, no new changes: the ones under way are still timed to the end.
        while not self.stopping.is_set() or pending:
            now = time.monotonic()
            if now >= next_change and self.targets and not self.stopping.is_set():
                index, pk = self.targets[turn % len(self.targets)]
                turn += 1
                if pk not in pending:
                    self.counter += 1
                    colour = f"{self.counter:06X}"  # unique in the run: never the tray's colour before
                    tray = {"type": "PLA", "colour": f"{colour}FF", "remain": 50}
                    self.control.post(f"/printers/{index}/trays", json={"trays": [tray]}).raise_for_status()
                    pending[pk] = (f"#{colour}", time.monotonic())
                next_change = now + PROBE_EVERY
            for pk, (colour, sent) in list(pending.items()):
                row = self.conn.execute(
                    "SELECT trays FROM printers_printerstatus WHERE printer_id = ?", (pk,)
                ).fetchone()
                trays = json.loads(row[0]) if row and row[0] else []
                if any(t.get("id") == 0 and t.get("colour") == colour for t in trays):
                    self.latencies.append(time.monotonic() - sent)
                    del pending[pk]
                elif time.monotonic() - sent > PROBE_TIMEOUT:
                    self.missed += 1
                    del pending[pk]
            time.sleep(0.02)

    def finish(self) -> dict[str, object]:
        self.stopping.set()
        self.join(PROBE_TIMEOUT + 1)
        self.control.close()
        self.conn.close()
        return {**percentiles(self.latencies), "missed": self.missed}


class ProtocolAges(threading.Thread):
    """Every `every` s, each healthy printer's status age as the simulator sees it (GET
    /printers), kept per protocol: the age of a mixed farm's share of each protocol."""

    def __init__(self, control_url: str, every: float = 2.0) -> None:
        super().__init__(name="protocol-ages", daemon=True)
        self.control = httpx.Client(base_url=control_url, timeout=30)
        self.every = every
        self.stopping = threading.Event()
        self.ages: dict[str, list[float]] = defaultdict(list)

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            for printer in self.control.get("/printers").raise_for_status().json():
                if printer["fault"] is None and printer["last_status_age"] is not None:
                    self.ages[printer["protocol"]].append(printer["last_status_age"])

    def finish(self) -> dict[str, dict[str, float | int | None]]:
        self.stopping.set()
        self.join(30)
        self.control.close()
        return {protocol: percentiles(ages) for protocol, ages in sorted(self.ages.items())}


class DownWatch(threading.Thread):
    """From the moment `pks` were faulted: how long until each one's stored status stops
    showing a reading (the card says offline or error), sampled every 0.25 s."""

    def __init__(self, db: Path, pks: set[int], timeout: float) -> None:
        super().__init__(name="down-watch", daemon=True)
        self.db, self.pks, self.timeout = db, set(pks), timeout
        self.started = time.monotonic()
        self.down_after: dict[int, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while len(self.down_after) < len(self.pks) and not self.stopping.wait(0.25):
            elapsed = time.monotonic() - self.started
            if elapsed > self.timeout:
                return
            states = farm_states(self.db)
            for pk in self.pks - self.down_after.keys():
                if states.get(pk, ("", "none"))[1] not in LIVE:
                    self.down_after[pk] = elapsed

    def finish(self) -> dict[str, object]:
        self.stopping.set()
        self.join(5)
        return {
            **percentiles(list(self.down_after.values())),
            "still_live": len(self.pks) - len(self.down_after),
        }


class TargetProbe(ChangeProbe):
    """ChangeProbe for Moonraker printers: each change is a new bed target (M140 through the
    printer's own /printer/gcode/script), timed until its status row shows it. `targets`:
    printer base URL -> pk; the printers should be idle (a print would reset its target)."""

    def __init__(self, control_url: str, db: Path, targets: dict[str, int]) -> None:
        super().__init__(control_url, db, {})
        self.urls = list(targets.items())

    def run(self) -> None:
        pending: dict[int, tuple[float, float]] = {}  # pk -> (target, sent at)
        turn, next_change = 0, time.monotonic()
        while not self.stopping.is_set() or pending:
            now = time.monotonic()
            if now >= next_change and self.urls and not self.stopping.is_set():
                url, pk = self.urls[turn % len(self.urls)]
                turn += 1
                if pk not in pending:
                    self.counter += 1
                    target = 30.0 + (self.counter % 300) / 10  # 30.0-59.9 °C, unique per 300 changes
                    script = {"script": f"M140 S{target:.1f}"}
                    self.control.post(f"{url}/printer/gcode/script", json=script).raise_for_status()
                    pending[pk] = (target, time.monotonic())
                next_change = now + PROBE_EVERY
            for pk, (target, sent) in list(pending.items()):
                row = self.conn.execute(
                    "SELECT bed_target FROM printers_printerstatus WHERE printer_id = ?", (pk,)
                ).fetchone()
                if row and row[0] is not None and abs(row[0] - target) < 0.05:
                    self.latencies.append(time.monotonic() - sent)
                    del pending[pk]
                elif time.monotonic() - sent > PROBE_TIMEOUT:
                    self.missed += 1
                    del pending[pk]
            time.sleep(0.02)
