"""History of finished jobs (page and CSV export) and farm / printer statistics."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import islice

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from jobs import charts, stats
from printers.models import Printer
from printfarm.accounts.roles import viewer_required
from printfarm.web import HtmxHttpRequest, render_fragment_or_page

PAGE_SIZE = 50


@viewer_required
@require_GET
def history(request: HtmxHttpRequest) -> HttpResponse:
    filters = stats.HistoryFilters.from_query(request.GET)
    jobs = stats.history_jobs(filters, now=timezone.now()).select_related("file")
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "filters": filters,
        "page": page,
        "entries": [stats.HistoryEntry.of(job) for job in page],
        "printers": Printer.objects.order_by("name").values_list("pk", "name"),
        "outcomes": stats.OUTCOMES.items(),
        "periods": stats.HISTORY_PERIODS.items(),
    }
    return render_fragment_or_page(request, "jobs/history.html", "history-results", context)


class _Echo:
    """csv.writer's file: hands each formatted line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


async def _in_chunks(lines: Iterator[str]) -> AsyncIterator[str]:
    # Under ASGI Django reads a *sync* streaming iterator into one list before sending it
    # (StreamingHttpResponse.__aiter__), which would hold the whole export in memory. So we
    # pull it a chunk at a time in the sync thread, where the ORM's cursor lives.
    take = sync_to_async(lambda: "".join(islice(lines, stats.CSV_CHUNK)))
    while chunk := await take():
        yield chunk


@viewer_required
@require_GET
def history_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The history page's rows under the same filters, all pages, streamed."""
    filters = stats.HistoryFilters.from_query(request.GET)
    now = timezone.now()
    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in stats.csv_rows(stats.history_jobs(filters, now=now)))
    content: Iterable[str] | AsyncIterator[str] = (
        _in_chunks(lines) if isinstance(request, ASGIRequest) else lines
    )
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    filename = f"printfarm-history-{timezone.localdate(now):%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@viewer_required
@require_GET
def statistics(request: HttpRequest) -> HttpResponse:
    filters = stats.StatsFilters.from_query(request.GET)
    printer = get_object_or_404(Printer, pk=filters.printer) if filters.printer else None
    now = timezone.now()
    start = stats.period_start(filters.period, now)
    jobs = stats.statistics_jobs(start=start, printer=filters.printer)
    buckets = stats.activity(jobs, unit=filters.unit, start=start, now=now)
    context = {
        "filters": filters,
        "printer": printer,
        "start": start,
        "now": now,
        "figures": stats.figures_of(jobs),
        "by_printer": [] if printer else stats.figures_by_printer(jobs),
        "buckets": buckets,
        "chart": charts.activity_chart(buckets, unit=filters.unit),
        "period_links": filters.period_links(),
    }
    return render(request, "jobs/statistics.html", context)
