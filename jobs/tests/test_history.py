"""History page, CSV export and statistics over a hand-made set of finished jobs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs import charts, stats
from jobs.models import GcodeFile, Job
from jobs.tests.factories import make_file
from printers.services import printer_delete
from printers.tests.factories import PrinterFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
UTC = dt.UTC


def day(days_ago: int, hour: int = 6) -> dt.datetime:
    """`hour` o'clock local time, `days_ago` calendar days before today (never in the future)."""
    return stats.local_midnight(timezone.localdate() - dt.timedelta(days=days_ago)) + dt.timedelta(hours=hour)


def a_file(name: str = "benchy.gcode", *, mm: float | None = 1000.0, g: float | None = 2.5) -> GcodeFile:
    """A real library file; its sliced filament set to round numbers: 2.5 g per metre."""
    file = make_file(name, seconds=600)
    GcodeFile.objects.filter(pk=file.pk).update(filament_mm=mm, filament_g=g)
    file.refresh_from_db()
    return file


def finished(
    file, printer=None, *, state="completed", at, started=None, seconds=None, mm=None, **fields
) -> Job:
    return Job.objects.create(
        file=file,
        printer=printer,
        printer_name=printer.name if printer else fields.pop("printer_name", ""),
        state=state,
        started_at=started,
        finished_at=at,
        print_seconds=seconds,
        filament_mm=mm,
        **fields,
    )


@pytest.fixture
def farm():
    """Two printers, six finished print jobs in the last 30 days, one older, one upload-only.

    last 30 days   finished completed failed cancelled  seconds  filament mm  grams
    alpha              3        2       1       0        7200       3400        8.5
    beta               3        1       1       1        8100       4000       10.0
    farm               6        3       2       1       15300       7400       18.5
    """
    file = a_file()
    alpha, beta = PrinterFactory(name="alpha"), PrinterFactory(name="beta")
    jobs = {
        "a1": finished(file, alpha, at=day(1), started=day(1, 5), seconds=3600, mm=2000),
        "a2": finished(file, alpha, at=day(2), started=day(2, 5), seconds=1800, mm=1000),
        # no print_seconds reported: timed from start to end (30 min)
        "a3": finished(
            file,
            alpha,
            state="failed",
            at=day(2, 7),
            started=day(2, 7) - dt.timedelta(minutes=30),
            mm=400,
            reason="Thermal runaway",
        ),
        "b1": finished(file, beta, at=day(3), started=day(3, 4), seconds=7200, mm=4000),
        "b2": finished(file, beta, state="cancelled", at=day(3, 8), reason="Cancelled by an operator"),
        "b3": finished(
            file, beta, state="failed", at=day(5), started=day(5, 5), seconds=900, reason="Nozzle clog"
        ),
        "old": finished(file, alpha, at=day(40), started=day(40, 5), seconds=3600, mm=1000),
        "upload": finished(file, beta, at=day(1, 9), action=Job.Action.UPLOAD, reason="Uploaded to beta"),
    }
    return {"file": file, "alpha": alpha, "beta": beta, **jobs}


def text(response) -> str:
    return response.content.decode()


def shown_jobs(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="history-job-(\d+)"', text(response))]


def csv_of(response) -> list[list[str]]:
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# -- login ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jobs:history", "jobs:history_csv", "jobs:statistics"])
def test_pages_need_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# -- history page -----------------------------------------------------------------------------------


def test_history_lists_finished_jobs_newest_first(web, farm):
    Job.objects.create(file=farm["file"], state="queued")
    Job.objects.create(file=farm["file"], printer=farm["alpha"], printer_name="alpha", state="printing")
    response = web.get(reverse("jobs:history"))
    assert response.status_code == 200
    order = ["upload", "a1", "a3", "a2", "b2", "b1", "b3", "old"]
    assert shown_jobs(response) == [farm[k].pk for k in order]
    assert "8 finished jobs" in text(response)


def test_history_row_shows_links_outcome_duration_and_filament(web, farm):
    response = web.get(reverse("jobs:history"))
    page = text(response)
    row = re.search(rf'<tr id="history-job-{farm["a3"].pk}">(.*?)</tr>', page, re.S).group(1)
    assert f'href="{reverse("jobs:file", args=[farm["file"].pk])}"' in row
    assert f'href="{reverse("printers:detail", args=[farm["alpha"].pk])}">alpha</a>' in row
    assert 'class="job-state js-failed">Failed</span>' in row
    assert "Thermal runaway" in row
    assert "30 min" in row  # started to finished: nothing was reported
    assert "0.40 m" in row
    assert "1.0 g" in row
    assert f'href="{reverse("jobs:job", args=[farm["a3"].pk])}"' in row
    completed = re.search(rf'<tr id="history-job-{farm["a1"].pk}">(.*?)</tr>', page, re.S).group(1)
    assert "1 h" in completed
    assert "5.0 g" in completed
    assert "(upload only)" in page


def test_history_without_file_or_printer_links_when_they_are_gone(web, farm):
    GcodeFile.objects.filter(pk=farm["file"].pk).update(deleted_at=timezone.now())
    printer_delete(printer=farm["beta"])
    page = text(web.get(reverse("jobs:history")))
    row = re.search(rf'<tr id="history-job-{farm["b1"].pk}">(.*?)</tr>', page, re.S).group(1)
    assert "benchy.gcode <small>(deleted)</small>" in row
    assert "<td>beta</td>" in row
    assert reverse("jobs:file", args=[farm["file"].pk]) not in page


def test_history_filters_by_printer(web, farm):
    response = web.get(reverse("jobs:history"), {"printer": farm["beta"].pk})
    assert set(shown_jobs(response)) == {farm[k].pk for k in ("b1", "b2", "b3", "upload")}
    assert f'<option value="{farm["beta"].pk}" selected>beta</option>' in text(response)


def test_history_filters_by_outcome(web, farm):
    response = web.get(reverse("jobs:history"), {"outcome": "failed"})
    assert shown_jobs(response) == [farm["a3"].pk, farm["b3"].pk]
    response = web.get(reverse("jobs:history"), {"outcome": "nonsense"})
    assert len(shown_jobs(response)) == 8


def test_history_filters_by_preset_period(web, farm):
    recent = finished(farm["file"], farm["alpha"], at=timezone.now() - dt.timedelta(hours=2))
    last_day = shown_jobs(web.get(reverse("jobs:history"), {"period": "24h"}))
    assert last_day[0] == recent.pk
    assert farm["a2"].pk not in last_day  # two days ago
    week = shown_jobs(web.get(reverse("jobs:history"), {"period": "7d"}))
    assert farm["b3"].pk in week  # five days ago
    assert farm["old"].pk not in week
    assert len(shown_jobs(web.get(reverse("jobs:history"), {"period": "30d"}))) == 8
    assert len(shown_jobs(web.get(reverse("jobs:history"), {"period": "all"}))) == 9


def test_history_filters_by_dates_inclusive_and_dates_replace_the_preset(web, farm):
    two_days_ago = (timezone.localdate() - dt.timedelta(days=2)).isoformat()
    three_days_ago = (timezone.localdate() - dt.timedelta(days=3)).isoformat()
    query = {"from": three_days_ago, "to": two_days_ago, "period": "24h"}
    response = web.get(reverse("jobs:history"), query)
    assert set(shown_jobs(response)) == {farm[k].pk for k in ("a2", "a3", "b1", "b2")}
    # swapped dates are read the right way round
    swapped = web.get(reverse("jobs:history"), {"from": two_days_ago, "to": three_days_ago})
    assert shown_jobs(swapped) == shown_jobs(response)
    assert set(shown_jobs(web.get(reverse("jobs:history"), {"to": three_days_ago}))) == {
        farm[k].pk for k in ("b1", "b2", "b3", "old")
    }
    assert len(shown_jobs(web.get(reverse("jobs:history"), {"from": "not-a-date"}))) == 8


def test_history_searches_file_names(web, farm):
    bracket = finished(a_file("Shelf-Bracket_v2.gcode"), farm["alpha"], at=day(1, 10))
    response = web.get(reverse("jobs:history"), {"q": "  bracket "})
    assert shown_jobs(response) == [bracket.pk]
    assert 'value="bracket"' in text(response)
    no_match = web.get(reverse("jobs:history"), {"q": "gearbox"})
    assert "No finished jobs match these filters." in text(no_match)


def test_history_is_paginated_and_pages_keep_the_filters(web, farm):
    file, alpha = farm["file"], farm["alpha"]
    Job.objects.bulk_create(
        Job(
            file=file,
            printer=alpha,
            printer_name="alpha",
            state="completed",
            finished_at=day(4, 0) + dt.timedelta(seconds=i),
        )
        for i in range(110)
    )
    first = web.get(reverse("jobs:history"), {"printer": alpha.pk})
    assert len(shown_jobs(first)) == 50
    assert "Page 1 of 3" in text(first)
    assert f'href="?printer={alpha.pk}&amp;page=2" rel="next"' in text(first)
    last = web.get(reverse("jobs:history"), {"printer": alpha.pk, "page": 3})
    assert len(shown_jobs(last)) == 114 - 100
    assert shown_jobs(last)[-1] == farm["old"].pk
    beyond = web.get(reverse("jobs:history"), {"printer": alpha.pk, "page": "99"})
    assert shown_jobs(beyond) == shown_jobs(last)


def test_history_csv_link_carries_the_filters(web, farm):
    response = web.get(reverse("jobs:history"), {"outcome": "failed", "q": "benchy", "period": "7d"})
    href = re.search(r'href="([^"]+)" download data-testid="csv-link"', text(response)).group(1)
    assert href == reverse("jobs:history_csv") + "?outcome=failed&amp;period=7d&amp;q=benchy"


@pytest.mark.parametrize("printer", ["", "0", "-1", "abc", "³", "99999999999999999999"])
def test_history_filters_ignore_garbage(printer):
    filters = stats.HistoryFilters.from_query(
        {"printer": printer, "outcome": "printing", "period": "1y", "from": "2026-02-30", "q": "  a \t b  "}
    )
    assert filters == stats.HistoryFilters(q="a b")
    assert filters.query == "q=a+b"


def test_history_htmx_request_gets_only_the_results(web, farm):
    response = web.get(reverse("jobs:history"), {"outcome": "cancelled"}, **HX)
    page = text(response)
    assert page.lstrip().startswith('<section id="history-results"')
    assert "<html" not in page
    assert shown_jobs(response) == [farm["b2"].pk]
    assert "HX-Request" in response["Vary"]


def test_history_when_nothing_finished_yet(web):
    response = web.get(reverse("jobs:history"))
    assert response.status_code == 200
    assert "No finished jobs yet" in text(response)


# -- CSV -----------------------------------------------------------------------------------------------


def test_csv_headers_and_rows(web, farm):
    response = web.get(reverse("jobs:history_csv"), {"printer": farm["alpha"].pk})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.localdate().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="printfarm-history-{today}.csv"'
    rows = csv_of(response)
    assert rows[0] == list(stats.CSV_HEADER)
    assert [int(r[0]) for r in rows[1:]] == [farm[k].pk for k in ("a1", "a3", "a2", "old")]
    a3 = farm["a3"]
    assert rows[2] == [
        str(a3.pk),
        "benchy.gcode",
        "alpha",
        "failed",
        "Thermal runaway",
        a3.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        a3.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        a3.finished_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "1800",
        "400.0",
        "1.0",
    ]
    assert rows[1][8:] == ["3600", "2000.0", "5.0"]


def test_csv_leaves_unknown_values_blank(web, farm):
    rows = csv_of(web.get(reverse("jobs:history_csv"), {"outcome": "cancelled"}))
    assert len(rows) == 2
    assert rows[1][6] == ""  # never started
    assert rows[1][8:] == ["", "", ""]


def test_csv_applies_every_filter(web, farm):
    query = {"printer": farm["beta"].pk, "outcome": "failed", "period": "7d", "q": "bench"}
    rows = csv_of(web.get(reverse("jobs:history_csv"), query))
    assert [int(r[0]) for r in rows[1:]] == [farm["b3"].pk]


def test_csv_neutralises_formulas_from_user_text(web, farm):
    file = a_file("x.gcode")
    GcodeFile.objects.filter(pk=file.pk).update(name='=HYPERLINK("http://evil.example","x").gcode')
    job = finished(file, printer_name="@SUM(1+1)", at=day(1), state="failed", reason="-2+3 went wrong")
    rows = csv_of(web.get(reverse("jobs:history_csv"), {"q": "hyperlink"}))
    assert [int(r[0]) for r in rows[1:]] == [job.pk]
    assert rows[1][1] == '\'=HYPERLINK("http://evil.example","x").gcode'
    assert rows[1][2] == "'@SUM(1+1)"
    assert rows[1][4] == "'-2+3 went wrong"
    assert stats.csv_text("+cmd") == "'+cmd"
    assert stats.csv_text("\tcmd") == "'\tcmd"
    assert stats.csv_text("benchy=1.gcode") == "benchy=1.gcode"


def test_csv_is_streamed_and_reads_jobs_only_while_streaming(web, farm):
    with CaptureQueriesContext(connection) as queries:
        response = web.get(reverse("jobs:history_csv"))
    assert response.streaming
    assert isinstance(response.streaming_content, Iterator)
    assert not any("jobs_job" in q["sql"] for q in queries.captured_queries)
    assert len(csv_of(response)) == 1 + 8


def test_csv_under_asgi_is_sent_in_chunks(async_client, user, farm, monkeypatch):
    """Under ASGI a sync iterator would be read whole into memory first; ours is async and
    each chunk holds at most CSV_CHUNK lines."""
    monkeypatch.setattr(stats, "CSV_CHUNK", 3)
    async_client.force_login(user)
    response = async_to_sync(async_client.get)(reverse("jobs:history_csv"))
    assert response.streaming and response.is_async

    async def collect() -> list[bytes]:
        return [chunk async for chunk in response.streaming_content]

    chunks = async_to_sync(collect)()
    assert [chunk.count(b"\r\n") for chunk in chunks] == [3, 3, 3]  # header + 8 jobs
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert rows[0] == list(stats.CSV_HEADER)
    assert len(rows) == 9


# -- statistics ----------------------------------------------------------------------------------------


def test_statistics_farm_figures(web, farm):
    response = web.get(reverse("jobs:statistics"))
    assert response.status_code == 200
    figures = response.context["figures"]
    assert (figures.finished, figures.completed, figures.failed, figures.cancelled) == (6, 3, 2, 1)
    assert figures.success_rate == pytest.approx(60.0)
    assert figures.print_seconds == pytest.approx(15300)
    assert figures.print_hours == pytest.approx(4.25)
    assert figures.filament_m == pytest.approx(7.4)
    assert figures.filament_g == pytest.approx(18.5)
    page = text(response)
    assert '<dd data-testid="success-rate">60.0%</dd>' in page
    assert '<dd data-testid="filament">7.4 m · 18.5 g</dd>' in page
    assert "cancelled jobs are left out" in page


def test_statistics_per_printer_table(web, farm):
    response = web.get(reverse("jobs:statistics"), {"period": "30d"})
    rows = {row.name: row for row in response.context["by_printer"]}
    assert list(rows) == ["alpha", "beta"]
    alpha, beta = rows["alpha"].figures, rows["beta"].figures
    assert (alpha.finished, alpha.completed, alpha.failed, alpha.cancelled) == (3, 2, 1, 0)
    assert alpha.success_text == "66.7%"
    assert alpha.print_hours == pytest.approx(2.0)
    assert alpha.filament_m == pytest.approx(3.4)
    assert alpha.filament_g == pytest.approx(8.5)
    assert (beta.finished, beta.completed, beta.failed, beta.cancelled) == (3, 1, 1, 1)
    assert beta.success_text == "50.0%"
    assert beta.print_hours == pytest.approx(2.25)
    assert beta.filament_m == pytest.approx(4.0)
    assert beta.filament_g == pytest.approx(10.0)
    assert f'<a href="?period=30d&amp;printer={farm["alpha"].pk}">alpha</a>' in text(response)


def test_statistics_keep_removed_printers_and_unassigned_jobs(web, farm):
    gamma = PrinterFactory(name="gamma")
    finished(farm["file"], gamma, at=day(1), seconds=600, mm=100)
    Job.objects.filter(printer=gamma).update(printer_name="gamma-old")  # renamed since
    finished(farm["file"], gamma, at=day(2), state="failed")
    printer_delete(printer=gamma)
    finished(farm["file"], state="cancelled", at=day(1), reason="Cancelled while queued")
    response = web.get(reverse("jobs:statistics"))
    rows = response.context["by_printer"]
    assert [r.name for r in rows] == [
        "alpha",
        "beta",
        "gamma (removed)",
        "gamma-old (removed)",
        "Never assigned",
    ]
    assert [r.printer_id for r in rows[2:]] == [None, None, None]
    assert sum(r.figures.finished for r in rows) == response.context["figures"].finished == 9
    assert rows[3].figures.filament_g == pytest.approx(0.25)


def test_statistics_for_one_printer(web, farm):
    response = web.get(reverse("jobs:statistics"), {"printer": farm["beta"].pk, "period": "7d"})
    figures = response.context["figures"]
    assert (figures.finished, figures.completed, figures.failed, figures.cancelled) == (3, 1, 1, 1)
    assert figures.print_hours == pytest.approx(2.25)
    assert response.context["by_printer"] == []
    page = text(response)
    assert "Statistics: <a" in page and ">beta</a>" in page
    assert 'href="?period=7d">Whole farm</a>' in page
    assert f'href="?period=30d&amp;printer={farm["beta"].pk}">30 days</a>' in page
    buckets = {b.start: b for b in response.context["buckets"]}
    assert buckets[day(3).date()].completed == 1
    assert buckets[day(5).date()].failed == 1
    assert buckets[day(2).date()].completed == 0  # alpha's, not beta's


def test_statistics_for_an_unknown_printer_is_404(web, farm):
    assert web.get(reverse("jobs:statistics"), {"printer": 999999}).status_code == 404


def test_statistics_period_leaves_older_jobs_out(web, farm):
    week = web.get(reverse("jobs:statistics"), {"period": "7d"}).context["figures"]
    assert week.finished == 6
    everything = web.get(reverse("jobs:statistics"), {"period": "all"}).context["figures"]
    assert everything.finished == 7
    assert everything.print_hours == pytest.approx(5.25)
    unknown = web.get(reverse("jobs:statistics"), {"period": "2y"})
    assert unknown.context["filters"].period == "30d"


def test_statistics_chart_per_day(web, farm):
    response = web.get(reverse("jobs:statistics"), {"period": "30d"})
    buckets = response.context["buckets"]
    assert len(buckets) == 30
    assert buckets[0].start == timezone.localdate() - dt.timedelta(days=29)
    assert buckets[-1].start == timezone.localdate()
    by_day = {b.start: b for b in buckets}
    two_days_ago = by_day[day(2).date()]
    assert (two_days_ago.completed, two_days_ago.failed) == (1, 1)
    assert two_days_ago.print_hours == pytest.approx(1.0)
    three_days_ago = by_day[day(3).date()]
    assert (three_days_ago.completed, three_days_ago.failed) == (1, 0)  # the cancelled one isn't a bar
    assert three_days_ago.print_hours == pytest.approx(2.0)
    assert by_day[day(5).date()].print_hours == pytest.approx(0.25)
    assert sum(b.completed for b in buckets) == 3
    page = text(response)
    assert '<svg viewBox="0 0 720 260" role="img" aria-labelledby="activity-title activity-desc">' in page
    assert '<title id="activity-title">Completed and failed jobs per day, with print hours</title>' in page
    assert page.count('<rect class="bar completed"') == 3
    assert page.count('<rect class="bar failed"') == 2
    assert page.count('<circle class="dot hours"') == 30
    assert '<span class="key failed">Failed</span>' in page
    assert f"<title>{day(2).day} {day(2):%b %Y}: 1 failed</title>" in page


def test_statistics_for_an_empty_period_shows_zeros(web, farm):
    idle = PrinterFactory(name="idle")
    response = web.get(reverse("jobs:statistics"), {"printer": idle.pk, "period": "7d"})
    assert response.status_code == 200
    figures = response.context["figures"]
    assert figures == stats.Figures()
    assert figures.success_rate is None
    page = text(response)
    assert "No finished jobs in this period on idle." in page
    assert '<dd data-testid="success-rate">—</dd>' in page
    assert '<dd data-testid="print-hours">0.0</dd>' in page


def test_statistics_with_no_jobs_at_all(web):
    for period in stats.STATS_PERIODS:
        response = web.get(reverse("jobs:statistics"), {"period": period})
        assert response.status_code == 200
        assert "No finished jobs in this period." in text(response)
    assert response.context["buckets"] == []


def test_statistics_query_count_does_not_grow_with_jobs(web, farm, django_assert_max_num_queries):
    with CaptureQueriesContext(connection) as before:
        web.get(reverse("jobs:statistics"))
    more = [PrinterFactory() for _ in range(5)]
    Job.objects.bulk_create(
        Job(
            file=farm["file"],
            printer=p,
            printer_name=p.name,
            state="completed",
            finished_at=day(1),
            print_seconds=60,
        )
        for p in more
        for _ in range(20)
    )
    with django_assert_max_num_queries(len(before.captured_queries)):
        response = web.get(reverse("jobs:statistics"))
    assert response.context["figures"].finished == 106


def test_upload_only_jobs_are_not_counted(web, farm):
    figures = web.get(reverse("jobs:statistics"), {"printer": farm["beta"].pk}).context["figures"]
    assert figures.completed == 1  # not the upload


# -- buckets and the chart, with a fixed clock --------------------------------------------------------------

NOW = dt.datetime(2026, 3, 18, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def utc(settings):
    """The fixed-clock tests below read their dates in UTC, whatever TIME_ZONE the run has."""
    settings.TIME_ZONE = "UTC"


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def buckets_for(period: str, *, printer=None) -> list[stats.Bucket]:
    start = stats.period_start(period, NOW)
    jobs = stats.statistics_jobs(start=start, printer=printer)
    return stats.activity(jobs, unit=stats.BUCKET_UNITS[period], start=start, now=NOW)


def test_weekly_buckets_start_on_monday(utc):
    file = a_file()
    finished(file, at=at(2026, 3, 16, 10), state="completed", printer_name="p")  # Monday
    finished(file, at=at(2026, 3, 15, 10), state="failed", printer_name="p")  # Sunday: the week before
    finished(file, at=at(2026, 3, 9, 0, 30), state="completed", printer_name="p", seconds=5400)
    buckets = buckets_for("90d")
    assert buckets[0].start == dt.date(2025, 12, 15)  # the Monday of 90 days ago (19 Dec)
    assert buckets[-1].start == dt.date(2026, 3, 16)
    assert len(buckets) == 14
    assert all(b.start.weekday() == 0 for b in buckets)
    by_week = {b.start: b for b in buckets}
    assert (by_week[dt.date(2026, 3, 16)].completed, by_week[dt.date(2026, 3, 16)].failed) == (1, 0)
    assert (by_week[dt.date(2026, 3, 9)].completed, by_week[dt.date(2026, 3, 9)].failed) == (1, 1)
    assert by_week[dt.date(2026, 3, 9)].print_hours == pytest.approx(1.5)
    assert by_week[dt.date(2026, 3, 9)].title == "Week of 9 Mar 2026"


def test_monthly_buckets_for_a_year_and_for_all_time(utc):
    file = a_file()
    finished(file, at=at(2026, 3, 1, 0, 30), printer_name="p")
    finished(file, at=at(2026, 2, 10, 8), printer_name="p", state="failed")
    finished(file, at=at(2026, 2, 28, 23, 59), printer_name="p")
    finished(file, at=at(2024, 11, 5, 8), printer_name="p")
    year = buckets_for("365d")
    assert [b.start for b in (year[0], year[-1])] == [dt.date(2025, 3, 1), dt.date(2026, 3, 1)]
    assert len(year) == 13
    february = {b.start: b for b in year}[dt.date(2026, 2, 1)]
    assert (february.completed, february.failed, february.label) == (1, 1, "Feb 2026")
    everything = buckets_for("all")
    assert everything[0].start == dt.date(2024, 11, 1)
    assert len(everything) == 17
    assert sum(b.completed for b in everything) == 3


def test_buckets_follow_the_local_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    file = a_file()
    # 23:30 UTC on Sunday 15 March is 00:30 on Monday 16 March in Berlin
    finished(file, at=at(2026, 3, 15, 23, 30), printer_name="p")
    days = {b.start: b for b in buckets_for("7d")}
    assert days[dt.date(2026, 3, 16)].completed == 1
    assert days[dt.date(2026, 3, 15)].completed == 0
    weeks = {b.start: b for b in buckets_for("90d")}
    assert weeks[dt.date(2026, 3, 16)].completed == 1


def test_day_periods_are_whole_calendar_days(utc):
    start = stats.period_start("7d", NOW)
    assert start == at(2026, 3, 12)
    assert stats.period_start("24h", NOW) == at(2026, 3, 17, 12)
    assert stats.period_start("all", NOW) is None


def test_chart_geometry():
    buckets = [
        stats.Bucket(dt.date(2026, 3, 16), "day", completed=2, failed=1, print_seconds=3 * 3600),
        stats.Bucket(dt.date(2026, 3, 17), "day"),
    ]
    chart = charts.activity_chart(buckets, unit="day")
    assert [t.label for t in chart.y_ticks] == ["0", "1", "2", "3", "4"]
    assert [t.label for t in chart.hour_ticks] == ["0", "1", "2", "3", "4"]
    assert [t.label for t in chart.x_ticks] == ["16 Mar", "17 Mar"]
    completed, failed = chart.bars
    assert (completed.css, failed.css) == ("completed", "failed")
    assert completed.y + completed.height == failed.y + failed.height == chart.bottom
    assert completed.height == pytest.approx(2 * failed.height, abs=0.2)
    assert completed.x + completed.width == pytest.approx(failed.x, abs=0.1)
    assert chart.dots[1].y == chart.bottom
    assert (
        chart.description == "2 days from 16 Mar 2026 to 17 Mar 2026: 2 completed, 1 failed, 3.0 print hours."
    )
    assert not chart.empty
    assert charts.activity_chart([stats.Bucket(dt.date(2026, 3, 16), "day")], unit="day").empty


def test_chart_thins_x_labels():
    buckets = [
        stats.Bucket(dt.date(2026, 1, 1) + dt.timedelta(days=i), "day", completed=1) for i in range(30)
    ]
    chart = charts.activity_chart(buckets, unit="day")
    assert len(chart.x_ticks) == 10
    assert len(chart.dots) == 30


@pytest.mark.parametrize(
    ("raw", "step"),
    [(0, 1.0), (0.3, 0.5), (1, 1.0), (1.2, 2.0), (4, 5.0), (7, 10.0), (0.075, 0.1), (230, 500.0)],
)
def test_nice_step(raw, step):
    assert charts.nice_step(raw) == pytest.approx(step)
