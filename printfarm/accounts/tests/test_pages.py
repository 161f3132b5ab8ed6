"""Pages hide what a role can't do; printer cards stay the same HTML for everyone."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from jobs import services
from jobs.tests.factories import make_file
from printers.state import State
from printers.tests.factories import PrinterFactory, set_status
from printfarm.accounts.models import Role

pytestmark = pytest.mark.django_db


def text(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def card_of(html: str, pk: int) -> str:
    card = re.search(rf'<article id="printer-card-{pk}".*?</article>', html, re.S).group(0)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", card)  # per session


@pytest.fixture
def farm():
    printer = set_status(PrinterFactory(name="prusa-1"), State.IDLE)
    services.printer_bed_set(printer.pk, clear=False)
    file = make_file("part.gcode")
    job = services.jobs_create(file=file, quantity=1)[0]
    done = services.jobs_create(file=file, quantity=1)[0]
    services.job_cancel(done)
    return printer, file, job, done


def test_the_nav_by_role(login):
    viewer = text(login(Role.VIEWER).get(reverse("printers:dashboard")))
    admin = text(login(Role.ADMIN, is_staff=True).get(reverse("printers:dashboard")))
    for link in (reverse("printers:add"), reverse("accounts:users"), reverse("accounts:audit"), "/admin/"):
        assert f'href="{link}"' not in viewer
        assert f'href="{link}"' in admin
    assert 'class="page-dashboard role-viewer"' in viewer
    assert 'class="page-dashboard role-admin"' in admin
    assert f'href="{reverse("accounts:tokens")}"' in viewer


def test_an_operator_sees_no_admin_links(login):
    page = text(login(Role.OPERATOR, is_staff=True).get(reverse("printers:dashboard")))
    assert f'href="{reverse("printers:add")}"' not in page
    assert "/admin/" not in page
    assert "role-operator" in page


def test_cards_are_the_same_html_for_every_role(login, farm):
    printer = farm[0]
    cards = {
        role: card_of(text(login(role).get(reverse("printers:dashboard"))), printer.pk)
        for role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
    }
    assert cards[Role.VIEWER] == cards[Role.OPERATOR] == cards[Role.ADMIN]
    # The buttons are there (cached and pushed to all); the viewer's CSS hides them.
    assert 'class="card-actions"' in cards[Role.VIEWER] and "needs-operator" in cards[Role.VIEWER]


def test_the_viewer_sees_no_action_on_jobs_pages(login, farm):
    printer, file, job, done = farm
    viewer = login(Role.VIEWER)
    library = text(viewer.get(reverse("jobs:library")))
    assert reverse("jobs:upload") not in library and "Queue…" not in library
    detail = text(viewer.get(reverse("jobs:file", args=[file.pk])))
    assert reverse("jobs:queue_add", args=[file.pk]) not in detail
    assert reverse("jobs:file_delete", args=[file.pk]) not in detail
    queue = text(viewer.get(reverse("jobs:queue")))
    assert 'action="/jobs/' not in queue  # cancel, move, print now, requeue, bed cleared
    assert "data-sortable" not in queue
    assert reverse("printers:bed_cleared", args=[printer.pk]) not in queue
    assert "draggable" not in queue
    job_page = text(viewer.get(reverse("jobs:job", args=[job.pk])))
    assert reverse("jobs:cancel", args=[job.pk]) not in job_page
    done_page = text(viewer.get(reverse("jobs:job", args=[done.pk])))
    assert reverse("jobs:requeue", args=[done.pk]) not in done_page
    printer_page = text(viewer.get(reverse("printers:detail", args=[printer.pk])))
    assert reverse("printers:edit", args=[printer.pk]) not in printer_page


def test_the_operator_sees_the_actions_but_not_printer_admin(login, farm):
    printer, file, job, done = farm
    operator = login(Role.OPERATOR)
    assert reverse("jobs:upload") in text(operator.get(reverse("jobs:library")))
    detail = text(operator.get(reverse("jobs:file", args=[file.pk])))
    assert reverse("jobs:queue_add", args=[file.pk]) in detail
    assert reverse("jobs:file_delete", args=[file.pk]) in detail
    queue = text(operator.get(reverse("jobs:queue")))
    assert reverse("jobs:cancel", args=[job.pk]) in queue and "data-sortable" in queue
    assert reverse("jobs:requeue", args=[done.pk]) in queue
    assert reverse("printers:bed_cleared", args=[printer.pk]) in queue
    assert reverse("jobs:cancel", args=[job.pk]) in text(operator.get(reverse("jobs:job", args=[job.pk])))
    printer_page = text(operator.get(reverse("printers:detail", args=[printer.pk])))
    assert reverse("printers:edit", args=[printer.pk]) not in printer_page
    assert reverse("printers:edit", args=[printer.pk]) in text(
        login(Role.ADMIN).get(reverse("printers:detail", args=[printer.pk]))
    )


def test_a_refusal_is_a_friendly_page(login, farm):
    printer = farm[0]
    response = login(Role.VIEWER).post(reverse("printers:command", args=[printer.pk, "pause"]))
    assert response.status_code == 403
    html = response.content.decode()
    assert "<title>Not allowed · printfarm</title>" in html
    assert "You can't do this: This needs the operator role; yours is viewer." in html
    assert "Ask an admin for the operator role." in html
    admin_only = login(Role.OPERATOR).get(reverse("printers:add")).content.decode()
    assert "This needs the admin role; yours is operator." in admin_only


def test_htmx_refusals_carry_the_reason_for_roles_js(login, farm):
    printer = farm[0]
    response = login(Role.VIEWER).post(
        reverse("printers:bed_cleared", args=[printer.pk]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 403
    reason = re.search(r"<p data-denied>(.*?)</p>", response.content.decode(), re.S).group(1)
    assert "operator role" in reason
    assert 'src="/static/js/roles.js"' in text(login(Role.VIEWER).get(reverse("printers:dashboard")))
