"""Why a queued job waits: the API says what the queue page says (one module makes both),
with stable codes, and stays cheap for a long queue."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs import services
from jobs.models import Job
from jobs.tests.factories import make_file
from printers.models import Printer, PrinterStatusRow, Tag
from printers.state import State
from printers.tests.factories import PrinterFactory, UserFactory, set_status
from printfarm.api.tests.clients import post

pytestmark = pytest.mark.django_db
S = Job.State


@pytest.fixture
def web(db) -> Client:
    client = Client()
    client.force_login(UserFactory())
    return client


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def page_summaries(page: str) -> dict[int, str]:
    """job pk -> the queue page's "Why waiting" line."""
    rows = re.findall(r'<tr id="job-(\d+)" data-job.*?<span class="why-summary">(.*?)</span>', page, re.S)
    return {int(pk): _text(summary) for pk, summary in rows}


def page_reasons(fragment: str) -> list[dict]:
    """The "per printer…" table, in the API's shape."""
    rows = re.findall(r'<tr data-printer="(\d+)"><td>(.*?)</td><td>(.*?)</td></tr>', fragment, re.S)
    return [
        {
            "printer": {"id": int(pk), "name": _text(name)},
            "reasons": [
                {"code": code, "text": _text(text)}
                for code, text in re.findall(r'<span class="reason" data-code="(\w+)">(.*?)</span>', cell)
            ],
        }
        for pk, name, cell in rows
    ]


@pytest.fixture
def farm() -> dict[str, Printer]:
    """One printer for each reason a job can wait, and one free printer with a wider nozzle."""
    printers = {
        "busy-one": set_status(
            PrinterFactory(name="busy-one", material="PLA", tags=["big"]),
            State.PRINTING,
            remaining=2400,
            progress=10.0,
        ),
        "petg-one": set_status(PrinterFactory(name="petg-one", material="PETG"), State.IDLE),
        "off-one": set_status(PrinterFactory(name="off-one", material="PLA"), State.OFFLINE),
        "off-switch": PrinterFactory(name="off-switch", material="PLA", enabled=False),
        "dirty-bed": set_status(PrinterFactory(name="dirty-bed", material="PLA"), State.FINISHED),
        "wide-nozzle": set_status(
            PrinterFactory(name="wide-nozzle", material="PLA", nozzle_diameter=Decimal("0.6")), State.IDLE
        ),
    }
    # Minutes, not seconds: the page and the API are read a moment apart and must agree.
    PrinterStatusRow.objects.filter(printer=printers["off-one"]).update(
        state_since=timezone.now() - dt.timedelta(minutes=3)
    )
    services.printer_bed_set(printers["dirty-bed"].pk, clear=False)
    return printers


def test_each_waiting_job_says_the_same_in_the_api_as_on_the_queue_page(viewer, web, farm):
    file = make_file()  # sliced for a 0.4 nozzle
    (pla,) = services.jobs_create(file=file, material="PLA", nozzle=Decimal("0.4"))
    (big,) = services.jobs_create(file=file, tags=[farm["busy-one"].tags.get()])
    (pinned,) = services.jobs_create(file=file, printers=[farm["wide-nozzle"]])
    (running,) = services.jobs_create(file=file)
    services.job_transition(running, S.ASSIGNED, printer=farm["petg-one"], printer_name="petg-one")

    items = {item["id"]: item for item in viewer.get("/api/v1/jobs").json()["items"]}
    page = page_summaries(web.get(reverse("jobs:queue")).content.decode())
    assert set(page) == {pla.pk, big.pk, pinned.pk}
    for job in (pla, big, pinned):
        waiting = items[job.pk]["waiting"]
        assert waiting["summary"] == page[job.pk]
        explain = web.get(reverse("jobs:explain", args=[job.pk])).content.decode()
        assert waiting["printers"] == page_reasons(explain)
        assert viewer.get(f"/api/v1/jobs/{job.pk}").json()["waiting"] == waiting
    assert items[running.pk]["waiting"] is None
    assert viewer.get(f"/api/v1/jobs/{running.pk}").json()["waiting"] is None

    # Every kind of reason, with its code; the petg printer now also runs our job.
    codes = {
        row["printer"]["name"]: [(r["code"], r["text"]) for r in row["reasons"]]
        for row in items[pla.pk]["waiting"]["printers"]
    }
    assert codes == {
        "busy-one": [("busy", "busy, 40 min left")],
        "dirty-bed": [("bed_not_clear", "bed not confirmed clear")],
        "off-one": [("offline", "offline for 3 min")],
        "off-switch": [("disabled", "disabled")],
        "petg-one": [
            ("material", "material PETG loaded, PLA needed"),
            ("busy", f"busy with job #{running.pk}"),
        ],
        "wide-nozzle": [("nozzle", "nozzle 0.6 ≠ 0.4")],
    }
    assert items[pla.pk]["waiting"]["summary"] == (
        "1× busy, 40 min left; 1× bed not confirmed clear; 1× offline for 3 min; 3 others"
    )
    assert items[big.pk]["waiting"]["summary"] == "5× needs tag big; 1× busy, 40 min left"
    pinned_rows = {row["printer"]["name"]: row["reasons"] for row in items[pinned.pk]["waiting"]["printers"]}
    assert pinned_rows.pop("wide-nozzle") == [
        {"code": "sliced_nozzle", "text": "sliced for a 0.4 nozzle, printer has 0.6"}
    ]
    assert {reasons[0]["code"] for reasons in pinned_rows.values()} == {"pinned_elsewhere"}


def test_a_printer_that_can_take_the_job_is_listed_first_with_no_reasons(viewer, web, farm):
    free = set_status(PrinterFactory(name="zz-free", material="PLA"), State.IDLE)
    (job,) = services.jobs_create(file=make_file(), material="PLA")
    waiting = viewer.get(f"/api/v1/jobs/{job.pk}").json()["waiting"]
    assert waiting["summary"] == "starting: 1 printer free"
    assert waiting["printers"][0] == {"printer": {"id": free.pk, "name": "zz-free"}, "reasons": []}
    page = web.get(reverse("jobs:queue")).content.decode()
    assert page_summaries(page)[job.pk] == waiting["summary"]


def test_with_no_printers_the_job_says_so(viewer):
    (job,) = services.jobs_create(file=make_file())
    assert viewer.get(f"/api/v1/jobs/{job.pk}").json()["waiting"] == {
        "summary": "no printers yet",
        "printers": [],
    }


def test_jobs_queued_or_requeued_through_the_api_say_why_they_wait(operator, farm):
    file = make_file()
    created = post(operator, "/api/v1/jobs", {"file_id": file.pk, "quantity": 2, "material": "PETG"})
    assert created.status_code == 201, created.content
    for item in created.json()["items"]:
        assert item["waiting"]["summary"]
    job_id = created.json()["items"][0]["id"]
    cancelled = post(operator, f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.json()["waiting"] is None
    again = post(operator, f"/api/v1/jobs/{job_id}/requeue").json()
    assert again["state"] == "queued" and again["waiting"]["printers"]


def _list_queries(client: Client, url: str = "/api/v1/jobs?limit=500") -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


def test_the_list_reads_the_printers_once_however_long_the_queue(viewer):
    file = make_file()
    for n in range(2):
        set_status(PrinterFactory(name=f"p{n}"), State.IDLE)
    services.jobs_create(file=file, quantity=2, material="PETG")
    _list_queries(viewer)  # the token is read and cached on the first call
    few = _list_queries(viewer)
    for n in range(2, 12):
        set_status(PrinterFactory(name=f"p{n}", tags=["big"]), State.PRINTING, remaining=60)
    services.jobs_create(file=file, quantity=40, tags=[Tag.objects.get(name="big")])
    services.jobs_create(file=file, printers=list(Printer.objects.all()))
    many = _list_queries(viewer)
    assert len(many) == len(few)


def test_a_page_without_queued_jobs_does_not_read_the_printers(viewer, farm):
    (job,) = services.jobs_create(file=make_file())
    services.job_transition(job, S.CANCELLED)
    _list_queries(viewer)
    queries = _list_queries(viewer, "/api/v1/jobs?state=cancelled")
    assert not any("printers_printerstatus" in sql for sql in queries)
    services.jobs_create(file=make_file())
    queries = _list_queries(viewer, "/api/v1/jobs?state=queued")
    assert any("printers_printerstatus" in sql for sql in queries)  # what the check looks for


def test_the_openapi_schema_documents_the_reasons(viewer):
    components = viewer.get("/api/v1/openapi.json").json()["components"]["schemas"]
    job = components["JobOut"]
    assert "waiting" in job["required"]
    assert {"type": "null"} in job["properties"]["waiting"]["anyOf"]
    code = components["WaitReason"]["properties"]["code"]
    enum = components[code["$ref"].rsplit("/", 1)[1]]["enum"] if "$ref" in code else code["enum"]
    assert {"busy", "offline", "disabled", "bed_not_clear", "material", "nozzle", "tag"} <= set(enum)
    assert {"pinned_elsewhere", "sliced_nozzle", "not_ready", "paused", "error"} <= set(enum)
