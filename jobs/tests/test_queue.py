"""The queue: services (transitions, order), matching and its explanations, and the pages."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import services
from jobs.matching import Candidate, Needs, plan, reasons
from jobs.models import Job, JobEvent
from jobs.tests.factories import make_file
from printers.models import Printer, PrinterEvent, Tag
from printers.state import State
from printers.tests.factories import PrinterFactory, UserFactory, set_status

pytestmark = pytest.mark.django_db
S = Job.State
NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def client(db) -> Client:
    client = Client()
    client.force_login(UserFactory())
    return client


# -- matching (pure) ----------------------------------------------------------------------------


def printer(pk: int = 1, **fields) -> Candidate:
    return Candidate(**({"pk": pk, "name": f"p{pk}", "material": "PLA", "nozzle": Decimal("0.4")} | fields))


@pytest.mark.parametrize(
    ("needs", "candidate", "expected"),
    [
        (Needs(1, nozzle=Decimal("0.4")), printer(nozzle=Decimal("0.6")), ["nozzle 0.6 ≠ 0.4"]),
        (Needs(1, material="PLA"), printer(material="PETG"), ["material PETG loaded, PLA needed"]),
        (Needs(1, material="PLA"), printer(material=""), ["no material recorded, PLA needed"]),
        (Needs(1, tags=frozenset({"big", "lab"})), printer(tags=frozenset({"lab"})), ["needs tag big"]),
        (Needs(1, printer_id=7, printer_name="mk4"), printer(), ["job is for mk4"]),
        (Needs(1, sliced_nozzle=0.6), printer(), ["sliced for a 0.6 nozzle, printer has 0.4"]),
        (Needs(1), printer(bed_clear=False, state=State.FINISHED), ["bed not confirmed clear"]),
        (
            Needs(1),
            printer(state=State.OFFLINE, since=NOW - dt.timedelta(minutes=3)),
            ["offline for 3 min"],
        ),
        (Needs(1), printer(state=State.PRINTING, remaining=2400), ["busy, 40 min left"]),
        (Needs(1), printer(state=State.ERROR, message="Heater failed"), ["error: Heater failed"]),
        (Needs(1), printer(enabled=False), ["disabled"]),
        (Needs(1), printer(job_id=12), ["busy with job #12"]),
        (Needs(1), printer(), []),
        (
            Needs(1, material="PLA", nozzle=Decimal("0.4")),
            printer(material="PETG", nozzle=Decimal("0.6"), state=State.PRINTING),
            ["material PETG loaded, PLA needed", "nozzle 0.6 ≠ 0.4", "busy printing"],
        ),
    ],
)
def test_reasons_say_why_a_job_is_not_on_a_printer(needs, candidate, expected):
    assert [r.text for r in reasons(needs, candidate, NOW)] == expected


def test_plan_gives_each_job_in_order_the_first_free_printer_it_fits():
    printers = [
        printer(1, state=State.PRINTING),
        printer(2, material="PETG"),
        printer(3),
        printer(4, bed_clear=False),
    ]
    waiting = [Needs(10, material="PETG"), Needs(11, material="ABS"), Needs(12), Needs(13)]
    assert plan(waiting, printers) == {2: 10, 3: 12}


def test_plan_never_lets_a_later_job_overtake_on_a_printer_that_fits_an_earlier_one():
    printers = [printer(1), printer(2, tags=frozenset({"big"}))]
    waiting = [Needs(10, tags=frozenset({"big"})), Needs(11)]
    assert plan(waiting, printers) == {2: 10, 1: 11}


# -- services -----------------------------------------------------------------------------------


def test_every_transition_is_validated_and_recorded():
    job = services.jobs_create(file=make_file(), by="ann")[0]
    services.job_transition(job, S.ASSIGNED, printer=PrinterFactory(), by="farm", reason="to p")
    with pytest.raises(services.JobError, match="assigned job can't become completed"):
        services.job_transition(job, S.COMPLETED)
    services.job_transition(job, S.UPLOADING)
    services.job_transition(job, S.PRINTING)
    services.job_transition(job, S.COMPLETED, reason="done")
    job.refresh_from_db()
    assert job.assigned_at and job.started_at and job.finished_at
    events = list(JobEvent.objects.filter(job=job).values_list("from_state", "to_state", "by"))
    assert events == [
        ("", "queued", "ann"),
        ("queued", "assigned", "farm"),
        ("assigned", "uploading", ""),
        ("uploading", "printing", ""),
        ("printing", "completed", ""),
    ]


def test_a_stale_transition_changes_nothing():
    job = services.jobs_create(file=make_file())[0]
    stale = Job.objects.get(pk=job.pk)
    services.job_cancel(job, by="ann")
    with pytest.raises(services.JobChanged):
        services.job_transition(stale, S.ASSIGNED)
    assert Job.objects.get(pk=job.pk).state == S.CANCELLED
    assert JobEvent.objects.filter(job=job, to_state=S.ASSIGNED).count() == 0


def test_requeue_makes_a_new_job_and_keeps_the_failed_one():
    job = services.jobs_create(file=make_file())[0]
    services.job_transition(job, S.CANCELLED)
    new = services.job_requeue(job, by="ann")
    assert (Job.objects.get(pk=job.pk).state, new.state) == (S.CANCELLED, S.QUEUED)
    with pytest.raises(services.JobError):
        services.job_requeue(new)


def test_reorder_and_move_change_the_queue_order():
    file = make_file()
    a, b, c = services.jobs_create(file=file, quantity=3)
    order = lambda: list(Job.objects.waiting().in_queue_order().values_list("pk", flat=True))  # noqa: E731
    services.jobs_reorder([c.pk, a.pk, b.pk])
    assert order() == [c.pk, a.pk, b.pk]
    services.job_move(Job.objects.get(pk=b.pk), "up")
    assert order() == [c.pk, b.pk, a.pk]
    (urgent,) = services.jobs_create(file=file, priority=5)
    assert order()[0] == urgent.pk
    # Dragged below a normal-priority job, it takes that priority so the order shown holds.
    services.jobs_reorder([c.pk, urgent.pk, b.pk, a.pk])
    assert order() == [c.pk, urgent.pk, b.pk, a.pk]


def test_bed_set_marks_the_card_changed_and_records_who():
    p = PrinterFactory()
    revision = p.status.revision
    assert services.printer_bed_set(p.pk, clear=False)
    assert services.printer_bed_set(p.pk, clear=True, by="ann")
    assert not services.printer_bed_set(p.pk, clear=True)
    p.status.refresh_from_db()
    assert p.status.revision == revision + 2
    assert PrinterEvent.objects.filter(printer=p, message="Bed cleared", by="ann").exists()


# -- pages --------------------------------------------------------------------------------------


def test_queueing_a_file_from_its_page(client):
    file = make_file(material="PETG")
    page = client.get(reverse("jobs:file", args=[file.pk]))
    assert b"The file was sliced for PETG." in page.content
    tag = Tag.objects.create(name="big")
    response = client.post(
        reverse("jobs:queue_add", args=[file.pk]),
        {"action": "print", "quantity": 3, "priority": 2, "material": "PETG", "tags": [tag.pk]},
    )
    assert response.status_code == 302
    jobs = Job.objects.all()
    assert len(jobs) == 3
    assert {(j.priority, j.required_material) for j in jobs} == {(2, "PETG")}
    assert all(list(j.required_tags.all()) == [tag] for j in jobs)


def test_send_to_these_printers_makes_one_job_per_printer(client):
    file = make_file()
    p1, p2 = PrinterFactory(), PrinterFactory()
    client.post(
        reverse("jobs:queue_add", args=[file.pk]),
        {"action": "upload", "quantity": 1, "priority": 0, "printers": [p1.pk, p2.pk]},
    )
    jobs = Job.objects.order_by("pk")
    assert [(j.target_printer, j.action) for j in jobs] == [(p1, "upload"), (p2, "upload")]


def test_the_queue_form_shows_field_errors(client):
    file = make_file()
    response = client.post(reverse("jobs:queue_add", args=[file.pk]), {"action": "print", "quantity": 0})
    assert response.status_code == 400
    assert b"Ensure this value is greater than or equal to 1" in response.content
    assert b"This field is required" in response.content  # priority
    assert not Job.objects.exists()


def test_the_queue_explains_why_jobs_wait_and_what_starts_next(client):
    file = make_file()
    busy = PrinterFactory(name="busy-one", material="PLA")
    set_status(busy, State.PRINTING, remaining=2400, progress=10.0)
    set_status(PrinterFactory(name="petg-one", material="PETG"), State.IDLE)
    services.jobs_create(file=file, material="PLA")
    services.jobs_create(file=file, material="PETG")
    page = client.get(reverse("jobs:queue")).content.decode()
    assert "1× busy, 40 min left" in page
    assert "petg-one</strong> gets" in page
    job = Job.objects.filter(required_material="PLA").get()
    explain = client.get(reverse("jobs:explain", args=[job.pk])).content.decode()
    assert "material PETG loaded, PLA needed" in explain
    assert "busy, 40 min left" in explain
    assert busy.name in explain


def test_queue_actions(client):
    file = make_file()
    a, b = services.jobs_create(file=file, quantity=2)
    p = PrinterFactory()
    client.post(reverse("jobs:move", args=[b.pk, "up"]))
    assert list(Job.objects.waiting().in_queue_order().values_list("pk", flat=True)) == [b.pk, a.pk]
    client.post(reverse("jobs:reorder"), {"order": json.dumps([a.pk, b.pk])})
    assert list(Job.objects.waiting().in_queue_order().values_list("pk", flat=True)) == [a.pk, b.pk]
    client.post(reverse("jobs:print_now", args=[b.pk]), {"printer": p.pk})
    b.refresh_from_db()
    assert b.target_printer == p
    assert list(Job.objects.waiting().in_queue_order().values_list("pk", flat=True))[0] == b.pk
    response = client.post(reverse("jobs:cancel", args=[a.pk]), headers={"HX-Request": "true"})
    assert b"Cancelled job #" in response.content
    a.refresh_from_db()
    assert a.state == S.CANCELLED
    client.post(reverse("jobs:requeue", args=[a.pk]))
    assert Job.objects.waiting().count() == 2
    # A completed job can't be cancelled: the message says so, nothing changes.
    done = Job.objects.create(file=file, state=S.COMPLETED, finished_at=timezone.now())
    page = client.post(reverse("jobs:cancel", args=[done.pk]), follow=True)
    assert b"has already completed" in page.content


def test_bed_cleared_from_the_card(client):
    p = set_status(PrinterFactory(), State.FINISHED)
    services.printer_bed_set(p.pk, clear=False)
    dashboard = client.get(reverse("printers:dashboard")).content.decode()
    assert "Bed not confirmed clear" in dashboard
    response = client.post(reverse("printers:bed_cleared", args=[p.pk]), headers={"HX-Request": "true"})
    assert b"Bed marked clear" in response.content
    assert Printer.objects.get(pk=p.pk).bed_clear


def test_the_card_shows_the_job_and_its_transfer(client):
    p = set_status(PrinterFactory(), State.IDLE)
    job = services.jobs_create(file=make_file("rocket.gcode"))[0]
    services.job_transition(job, S.ASSIGNED, printer=p, printer_name=p.name)
    services.job_transition(job, S.UPLOADING, transfer_percent=42.0)
    dashboard = client.get(reverse("printers:dashboard")).content.decode()
    assert "rocket.gcode" in dashboard
    assert "Sending 42%" in dashboard


def test_job_page_shows_its_events(client):
    job = services.jobs_create(file=make_file(), by="ann")[0]
    page = client.get(reverse("jobs:job", args=[job.pk])).content.decode()
    assert "queued" in page and "ann" in page


def test_removing_a_printer_ends_the_jobs_that_needed_it():
    p = PrinterFactory(name="gone")
    pinned = services.jobs_create(file=make_file(), printers=[p])[0]
    running = services.jobs_create(file=make_file())[0]
    services.job_transition(running, S.ASSIGNED, printer=p, printer_name=p.name)
    any_printer = services.jobs_create(file=make_file())[0]
    p.delete()
    states = {j.pk: (j.state, j.reason) for j in Job.objects.all()}
    assert states[pinned.pk] == (S.CANCELLED, "Its printer gone was removed")
    assert states[running.pk] == (S.FAILED, "Its printer gone was removed")
    assert states[any_printer.pk][0] == S.QUEUED
