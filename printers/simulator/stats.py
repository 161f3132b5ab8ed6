"""Always-on request counters and status-age sampling for simulator benchmarks."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

SAMPLE_INTERVAL = 0.25  # seconds between age samples
BIN_WIDTH = 0.01  # histogram resolution (10 ms)
MAX_AGE = 120.0  # ages above this land in one overflow bin


class AgeHistogram:
    """Fixed-size histogram of ages: bounded memory however long a benchmark runs."""

    __slots__ = ("_counts", "count", "max")

    BINS = int(MAX_AGE / BIN_WIDTH)

    def __init__(self) -> None:
        self._counts = [0] * (self.BINS + 1)
        self.count = 0
        self.max = 0.0

    def add(self, age: float) -> None:
        i = int(age / BIN_WIDTH)
        self._counts[i if i < self.BINS else self.BINS] += 1
        self.count += 1
        if age > self.max:
            self.max = age

    def percentile(self, q: float) -> float | None:
        """Upper edge of the bin holding the q-quantile (accurate to one bin), capped at the max seen."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for i, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                return round(min((i + 1) * BIN_WIDTH, self.max), 3)
        return round(self.max, 3)  # pragma: no cover - rank <= count always hits above

    def summary(self) -> dict[str, float | int | None]:
        return {
            "p50": self.percentile(0.50),
            "p99": self.percentile(0.99),
            "max": round(self.max, 3) if self.count else None,
            "samples": self.count,
        }


class FarmStats:
    """Counters bumped by the printer middleware; ages sampled by the farm's sampler task."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.reset()

    def reset(self) -> None:
        self.reset_at = time.monotonic()
        self.requests = 0
        self.status_requests = 0
        # monotonic time of each printer's last status request; 0.0 = not polled since reset
        self.last_status = [0.0] * self.count
        self.all = AgeHistogram()
        self.healthy = AgeHistogram()
        self.faulted = AgeHistogram()

    def note_status(self, index: int) -> None:
        self.status_requests += 1
        self.last_status[index] = time.monotonic()

    def sample(self, faulted: Sequence[bool]) -> None:
        now = time.monotonic()
        add_all, add_healthy, add_faulted = self.all.add, self.healthy.add, self.faulted.add
        for index, last in enumerate(self.last_status):
            if not last:
                continue
            age = now - last
            add_all(age)
            if faulted[index]:
                add_faulted(age)
            else:
                add_healthy(age)

    def last_status_age(self, index: int) -> float | None:
        last = self.last_status[index]
        return round(time.monotonic() - last, 3) if last else None

    def snapshot(self) -> dict[str, object]:
        elapsed = time.monotonic() - self.reset_at
        return {
            "elapsed": round(elapsed, 3),
            "requests": self.requests,
            "status_requests": self.status_requests,
            "status_per_s": round(self.status_requests / elapsed, 2) if elapsed > 0 else 0.0,
            "printers": self.count,
            "polled": sum(1 for last in self.last_status if last),
            "age": self.all.summary(),
            "age_healthy": self.healthy.summary(),
            "age_faulted": self.faulted.summary(),
        }
