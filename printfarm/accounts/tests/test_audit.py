"""The audit log page: what was done appears, newest first, 50 a page, filtered."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.tests.factories import make_file
from printers.tests.factories import PrinterFactory, UserFactory
from printfarm.accounts.audit import audit_record
from printfarm.accounts.models import AuditEntry, Role

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


def shown(response) -> list[str]:
    return [f"{e.username} {e.action}" for e in response.context["page"]]


def test_web_actions_appear_in_the_log(login):
    admin = login(Role.ADMIN)
    operator = login(Role.OPERATOR, username="olga")
    file = make_file("bracket.gcode")
    operator.post(
        reverse("jobs:queue_add", args=[file.pk]), {"action": "print", "quantity": "3", "priority": "0"}
    )
    printer = PrinterFactory(name="prusa-1")
    operator.post(reverse("printers:bed_cleared", args=[printer.pk]))
    page = admin.get(reverse("accounts:audit"))
    assert shown(page) == ["olga printer.bed_cleared", "olga job.queue"]
    html = page.content.decode()
    assert "bracket.gcode" in html and "3 × print" in html and "prusa-1" in html
    assert ">web<" in html


def test_newest_first_fifty_a_page(login):
    admin = login(Role.ADMIN)
    start = timezone.now() - dt.timedelta(hours=2)
    for n in range(60):
        entry = audit_record(admin.user, "job.cancel", detail=f"n{n}")
        AuditEntry.objects.filter(pk=entry.pk).update(at=start + dt.timedelta(minutes=n))
    first = admin.get(reverse("accounts:audit"))
    details = [e.detail for e in first.context["page"]]
    assert len(details) == 50 and details[0] == "n59" and details[-1] == "n10"
    assert 'href="?page=2"' in first.content.decode()
    second = admin.get(reverse("accounts:audit"), {"page": 2})
    assert [e.detail for e in second.context["page"]] == [f"n{n}" for n in range(9, -1, -1)]


@pytest.fixture
def log(login):
    """An admin's client, and a varied log: two users, three kinds, web/api/slicer, two days."""
    admin = login(Role.ADMIN, username="root")
    ann = UserFactory(username="ann", role=Role.OPERATOR)
    printer = PrinterFactory(name="prusa-1")
    file = make_file("gear.gcode")
    yesterday = timezone.now() - dt.timedelta(days=1)
    entries = [
        audit_record(ann, "printer.command", target=printer, detail="pause: Pause sent"),
        audit_record(ann, "file.upload", target=file, via="slicer"),
        audit_record(ann, "job.queue", target=file, detail="1 × print", via="api"),
        audit_record(admin.user, "user.create", target=ann),
        audit_record(admin.user, "printer.edit", target=printer),
    ]
    AuditEntry.objects.filter(pk__in=[e.pk for e in entries[:2]]).update(at=yesterday)
    admin.ann = ann
    admin.yesterday = timezone.localdate(yesterday)
    return admin


def test_filters(log):
    url = reverse("accounts:audit")
    assert shown(log.get(url, {"user": log.ann.pk})) == [
        "ann job.queue",
        "ann file.upload",
        "ann printer.command",
    ]
    assert shown(log.get(url, {"action": "printer."})) == ["root printer.edit", "ann printer.command"]
    assert shown(log.get(url, {"type": "file"})) == ["ann job.queue", "ann file.upload"]
    assert shown(log.get(url, {"via": "slicer"})) == ["ann file.upload"]
    day = log.yesterday.isoformat()
    assert shown(log.get(url, {"from": day, "to": day})) == ["ann file.upload", "ann printer.command"]
    today = timezone.localdate().isoformat()
    assert shown(log.get(url, {"from": today})) == ["root printer.edit", "root user.create", "ann job.queue"]
    assert shown(log.get(url, {"user": log.ann.pk, "action": "printer.", "to": day})) == [
        "ann printer.command"
    ]


def test_filter_choices_and_bad_values(log):
    url = reverse("accounts:audit")
    page = log.get(url)
    types = [value for value, _ in page.context["form"].fields["type"].choices]
    assert types == ["", "file", "printer", "user"]
    # Unknown values are ignored: the whole log, not an error.
    bad = log.get(url, {"user": "999", "action": "drop table", "from": "yesterday", "via": "fax"})
    assert bad.status_code == 200 and len(shown(bad)) == 5


def test_htmx_gets_the_results_and_pages_keep_the_filters(log):
    for n in range(55):
        audit_record(log.ann, "job.cancel", detail=f"n{n}")
    response = log.get(reverse("accounts:audit"), {"user": log.ann.pk, "action": "job."}, headers=HX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="audit-results"')
    assert f'href="?user={log.ann.pk}&amp;action=job.&amp;page=2"' in html
    assert response["Vary"] == "HX-Request" or "HX-Request" in response["Vary"]


def test_a_users_page_shows_their_recent_actions(log):
    page = log.get(reverse("accounts:user", args=[log.ann.pk])).content.decode()
    assert "printer.command" in page and "pause: Pause sent" in page
    assert "user.create" not in page  # done by root, to ann: root's line


def test_a_printer_edit_says_what_changed_never_the_key(login):
    admin = login(Role.ADMIN)
    printer = PrinterFactory(name="prusa-1")
    data = {
        "name": "prusa-1",
        "protocol": "moonraker",
        "base_url": "http://localhost:9",
        "api_key": "sk-secret-1234",
        "enabled": "on",
        "nozzle_diameter": "0.4",
        "build_x": "250",
        "build_y": "250",
        "build_z": "240",
    }
    assert admin.post(reverse("printers:edit", args=[printer.pk]), data).status_code == 302
    entry = AuditEntry.objects.get(action="printer.edit")
    assert "base_url" in entry.detail and "api_key" in entry.detail
    assert "address now http://localhost:9" in entry.detail
    assert "sk-secret" not in entry.detail
