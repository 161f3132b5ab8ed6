"""Audit entries are written by the printers and jobs services, in the write's transaction:
every way in (web, API, Django admin) leaves the same entry, and nothing else writes one."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from jobs import services as job_services
from jobs.models import Job
from jobs.tests.factories import make_file
from printers.models import Printer
from printers.services import printer_bed_set, printer_delete, printer_update
from printers.tests.factories import UNREACHABLE_URL, PrinterFactory, UserFactory
from printfarm.accounts.models import AuditEntry, Role
from printfarm.api.tests.clients import api_client, patch, post

pytestmark = pytest.mark.django_db


def entries() -> list[tuple[str, str, str, str]]:
    rows = AuditEntry.objects.order_by("pk").values_list("action", "target_label", "detail", "via")
    return list(rows)


def printer_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "voron-1",
        "protocol": "moonraker",
        "base_url": UNREACHABLE_URL,
        "enabled": "on",
        "camera_on_card": "on",  # the form renders it ticked
        "nozzle_diameter": "0.4",
        "build_x": "220",
        "build_y": "220",
        "build_z": "250",
    }
    return data | overrides


def test_web_and_api_leave_the_same_entries():
    user = UserFactory(role=Role.ADMIN)
    web = Client()
    web.force_login(user)
    api, _ = api_client(Role.ADMIN)
    printer = PrinterFactory(name="voron-1")
    Printer.objects.filter(pk=printer.pk).update(bed_clear=False)

    web.post(reverse("printers:edit", args=[printer.pk]), printer_form(location="shelf 1"))
    assert patch(api, f"/api/v1/printers/{printer.pk}", {"location": "shelf 2"}).status_code == 200
    web.post(reverse("printers:bed_cleared", args=[printer.pk]))
    assert post(api, f"/api/v1/printers/{printer.pk}/bed-cleared").status_code == 200

    assert entries() == [
        ("printer.edit", "voron-1", "changed: location", "web"),
        ("printer.edit", "voron-1", "changed: location", "api"),
        ("printer.bed_cleared", "voron-1", "", "web"),
        ("printer.bed_cleared", "voron-1", "", "api"),
    ]


def test_the_django_admin_is_audited_too(admin_client):
    admin_client.post(reverse("admin:printers_printer_add"), printer_form(name="from-admin"))
    printer = Printer.objects.get(name="from-admin")
    change = reverse("admin:printers_printer_change", args=[printer.pk])
    admin_client.post(change, printer_form(name="from-admin", base_url="http://127.0.0.2:9"))
    admin_client.post(reverse("admin:printers_printer_delete", args=[printer.pk]), {"post": "yes"})
    assert not Printer.objects.filter(pk=printer.pk).exists()
    assert entries() == [
        ("printer.add", "from-admin", UNREACHABLE_URL, "web"),
        ("printer.edit", "from-admin", "changed: base_url (address now http://127.0.0.2:9)", "web"),
        ("printer.delete", "from-admin", "", "web"),
    ]


def test_an_entry_rolls_back_with_its_write():
    user = UserFactory(role=Role.ADMIN)
    printer = PrinterFactory(name="voron-1")
    (job,) = job_services.jobs_create(file=make_file())
    AuditEntry.objects.all().delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        printer_update(printer=printer, fields={"location": "elsewhere"}, by=user)
        job_services.job_cancel(job, by=user, via="api")
        printer_delete(printer=printer, by=user)
        raise RuntimeError("the request failed after the writes")
    assert Printer.objects.filter(name="voron-1").exists()
    assert Job.objects.get(pk=job.pk).state == Job.State.QUEUED
    assert entries() == []


def test_the_system_and_named_callers_are_not_audited():
    printer = PrinterFactory()
    (job,) = job_services.jobs_create(file=make_file(), by="dispatcher")
    printer_bed_set(printer.pk, clear=False)
    printer_bed_set(printer.pk, clear=True, by="tester")
    job_services.job_cancel(job, by="tester")
    assert entries() == []
