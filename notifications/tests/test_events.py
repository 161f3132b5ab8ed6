"""The outbox hooks: an event commits with the change it reports, or not at all."""

from __future__ import annotations

import pytest
from django.db import transaction

from jobs.models import Job
from jobs.services import job_transition, jobs_create
from jobs.tests.factories import make_file
from notifications.events import record
from notifications.models import Event, EventKind
from printers.models import Printer
from printers.services import printer_bed_set
from printers.tests.factories import PrinterFactory

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.State


def _printing_job(printer: Printer) -> Job:
    with transaction.atomic():
        (job,) = jobs_create(file=make_file("part.gcode"), printers=[printer])
    job_transition(job, S.ASSIGNED, printer=printer, printer_name=printer.name)
    job_transition(job, S.UPLOADING)
    return job_transition(job, S.PRINTING)


def test_an_event_rolls_back_with_the_change_that_made_it():
    printer = PrinterFactory(name="p")
    with pytest.raises(RuntimeError), transaction.atomic():
        printer_bed_set(printer.pk, clear=False)
        assert Event.objects.filter(kind=EventKind.BED_TO_CLEAR).exists()
        raise RuntimeError("the writer fails after the change")
    assert not Event.objects.exists()
    assert Printer.objects.get(pk=printer.pk).bed_clear is True


def test_a_print_ended_by_its_printers_removal_is_reported():
    printer = PrinterFactory(name="gone")
    _printing_job(printer)
    Printer.objects.filter(pk=printer.pk).delete()
    event = Event.objects.get(kind=EventKind.PRINT_FAILED)
    assert event.printer_name == "gone" and event.file_name == "part.gcode"


def test_an_event_naming_a_printer_deleted_meanwhile_keeps_its_name_only():
    printer = PrinterFactory(name="gone")
    pk = printer.pk
    Printer.objects.filter(pk=pk).delete()
    event = record(EventKind.PRINTER_ERROR, printer=pk, text="late reading")
    assert event.printer_id is None  # no dangling reference to fail the writer's commit


def test_a_keyed_event_is_recorded_once():
    assert record(EventKind.QUEUE_DRY, text="dry", key="queue_dry:1") is not None
    with transaction.atomic():
        assert record(EventKind.QUEUE_DRY, text="dry", key="queue_dry:1") is None
        record(EventKind.QUEUE_DRY, text="other", key="queue_dry:2")  # the transaction goes on
    assert Event.objects.count() == 2


def test_cancelling_a_queued_job_or_an_upload_only_job_is_no_news():
    printer = PrinterFactory(name="p")
    with transaction.atomic():
        (queued,) = jobs_create(file=make_file(), printers=[printer])
        (upload,) = jobs_create(file=make_file(), printers=[printer], action=Job.Action.UPLOAD)
    job_transition(queued, S.CANCELLED)
    job_transition(upload, S.ASSIGNED, printer=printer, printer_name=printer.name)
    job_transition(upload, S.UPLOADING)
    job_transition(upload, S.COMPLETED)
    assert not Event.objects.exists()
