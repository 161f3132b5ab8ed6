"""Prometheus metrics: request counters kept by each web process, farm gauges read at scrape time.

* Requests (`printfarm_http_*`), fed by printfarm.ops.middleware. Several web processes
  (`serve --workers N`) each count their own requests: set PROMETHEUS_MULTIPROC_DIR to an
  empty directory, the same for every worker and cleared before each start, and a scrape of
  any worker reports the sum of all of them (prometheus-client's multiprocess mode; it then
  leaves out the per-process CPU/memory metrics). Without it a scrape sees the process that
  answered it, which is exact only with one worker.
* The farm (`printfarm_printers`, `printfarm_jobs`, ...), read from the database when
  Prometheus scrapes: the same answer from every process. The poller is another process with
  nothing to scrape, so poll trouble shows as what it wrote: printers offline or in error,
  and how long ago the stalest printer last answered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from jobs.models import Job
from printers.models import PrinterStatusRow
from printers.queries import farm_state_counts
from printers.state import State

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "printfarm_http_requests",
    "HTTP requests answered, by method and status code.",
    ["method", "status"],
)
DURATION = Histogram(
    "printfarm_http_request_duration_seconds",
    "Time to the response, by route (URL name; 'static' or 'unmatched' for the rest).",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)


def request_observe(*, method: str, status: int, route: str, seconds: float) -> None:
    # Methods are whatever a client sends: fold the unknown ones so they can't add series.
    REQUESTS.labels(method if method in METHODS else "other", str(status)).inc()
    DURATION.labels(route).observe(seconds)


class FarmCollector:
    """Gauges from the database, computed on each scrape (three queries)."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        printers = GaugeMetricFamily(
            "printfarm_printers", "Printers by state, as the dashboard counts them.", labels=["state"]
        )
        for state, count in farm_state_counts().items():
            printers.add_metric([state.value], count)
        yield printers
        # Disabled printers (maintenance) aren't polled; their last answer ages by design.
        polled = PrinterStatusRow.objects.filter(printer__enabled=True).exclude(state=State.MAINTENANCE)
        oldest = polled.aggregate(seen=Min("last_seen"))["seen"]
        yield GaugeMetricFamily(
            "printfarm_printer_status_age_seconds",
            "Seconds since the printer that answered longest ago last answered a poll "
            "(polled printers that have answered at least once; 0 with none).",
            value=(now - oldest).total_seconds() if oldest else 0.0,
        )

        jobs_by_state = {state.value: 0 for state in Job.State}
        for row in Job.objects.values("state").annotate(n=Count("pk")).order_by():
            jobs_by_state[row["state"]] = row["n"]
        jobs = GaugeMetricFamily(
            "printfarm_jobs", 'Jobs by state; state="queued" is the queue length.', labels=["state"]
        )
        for state, count in jobs_by_state.items():
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily(
            "printfarm_jobs_active",
            "Jobs assigned to a printer, being sent to it, or printing.",
            value=sum(jobs_by_state[state] for state in Job.ACTIVE),
        )


class _Scrape:
    """Several collectors as one, so a single exposition (one # EOF in OpenMetrics) holds all."""

    def __init__(self, sources: Iterable) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def _process_metrics() -> CollectorRegistry:
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not multiproc_dir:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
    return registry


def exposition(accept: str) -> tuple[bytes, str]:
    """The scrape body and its content type, in the format the Accept header asks for."""
    encoder, content_type = choose_encoder(accept)
    return encoder(_Scrape([_process_metrics(), FarmCollector()])), content_type
