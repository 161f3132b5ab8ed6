"""Every web view and htmx partial × every role: allowed works (and is audited), refused
changes nothing (403 for a signed-in user whose role is too low, the login page otherwise)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from jobs import services
from jobs.models import GcodeFile, Job
from jobs.tests.factories import gcode_bytes, make_file
from printers.models import Printer, PrinterEvent
from printers.state import State
from printers.tests.factories import UNREACHABLE_URL, PrinterFactory, UserFactory, set_status
from printfarm.accounts.models import ApiToken, AuditEntry, Role
from printfarm.accounts.roles import RANK
from printfarm.accounts.tokens import token_create

pytestmark = pytest.mark.django_db
User = get_user_model()
HX = {"HX-Request": "true"}


@dataclass
class World:
    printer: Printer  # idle, bed waiting to be confirmed clear
    other: Printer
    file: GcodeFile
    spare: GcodeFile  # no jobs: can be deleted
    first: Job  # waiting, in this order
    second: Job
    cancelled: Job
    managed: Any  # a viewer for the user pages
    disabled: Any
    me: Any = None  # the signed-in user (None: anonymous)
    extra: dict[str, Any] = field(default_factory=dict)


def make_world() -> World:
    printer = set_status(PrinterFactory(name="prusa-1", location="Shelf 1"), State.IDLE)
    services.printer_bed_set(printer.pk, clear=False)
    file = make_file("part.gcode")
    first, second, cancelled = services.jobs_create(file=file, quantity=3)
    services.job_cancel(cancelled)
    return World(
        printer=printer,
        other=PrinterFactory(name="prusa-2"),
        file=file,
        spare=make_file("spare.gcode"),
        first=first,
        second=second,
        cancelled=cancelled,
        managed=UserFactory(username="managed", role=Role.VIEWER),
        disabled=UserFactory(username="was-here", role=Role.VIEWER, is_active=False),
    )


def printer_form(w: World, **overrides: str) -> dict[str, str]:
    data = {
        "name": w.printer.name,
        "protocol": "moonraker",
        "base_url": UNREACHABLE_URL,
        "api_key": "",
        "enabled": "on",
        "tags": "",
        "location": "Shelf 1",
        "nozzle_diameter": "0.4",
        "build_x": "250",
        "build_y": "250",
        "build_z": "240",
        "material": "",
    }
    return data | overrides


def waiting_order() -> list[int]:
    return list(Job.objects.waiting().in_queue_order().values_list("pk", flat=True))


def audited(action: str, **fields: Any) -> bool:
    return AuditEntry.objects.filter(action=action, via="web", **fields).exists()


def snapshot() -> dict[str, Any]:
    """Everything a refused request must leave as it was, files on disk included."""
    files_dir = settings.PRINTFARM_FILES_DIR
    return {
        "printers": list(
            Printer.objects.order_by("pk").values_list("pk", "name", "base_url", "location", "bed_clear")
        ),
        "events": PrinterEvent.objects.count(),
        "jobs": list(
            Job.objects.order_by("pk").values_list("pk", "state", "priority", "position", "target_printer")
        ),
        "files": list(GcodeFile.objects.order_by("pk").values_list("pk", "name", "deleted_at")),
        "stored": sorted(str(p) for p in files_dir.rglob("*")) if files_dir.exists() else [],
        "users": list(
            User.objects.order_by("pk").values_list("pk", "is_active", "password", "profile__role")
        ),
        "tokens": list(ApiToken.objects.order_by("pk").values_list("pk", "revoked_at")),
        "audit": AuditEntry.objects.count(),
    }


@dataclass(frozen=True)
class Case:
    id: str
    needs: Role
    url: Callable[[World], str]
    method: str = "get"
    data: Callable[[World], dict] | None = None
    hx: bool = False
    done: Callable[[World], bool] | None = None  # POST: the change happened (and was audited)

    def __str__(self) -> str:
        return self.id


def url(name: str, *args: Callable[[World], Any]) -> Callable[[World], str]:
    return lambda w: reverse(name, args=[a(w) for a in args])


VIEWER, OPERATOR, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMIN
PRINTER = lambda w: w.printer.pk  # noqa: E731
FIRST = lambda w: w.first.pk  # noqa: E731

CASES = [
    # -- printers ---------------------------------------------------------------------------
    Case("dashboard", VIEWER, url("printers:dashboard")),
    Case("dashboard-grid", VIEWER, url("printers:dashboard"), hx=True),
    Case("printer-detail", VIEWER, url("printers:detail", PRINTER)),
    Case("printer-add-page", ADMIN, url("printers:add")),
    Case(
        "printer-add",
        ADMIN,
        url("printers:add"),
        "post",
        lambda w: printer_form(w, name="voron-new"),
        done=lambda w: Printer.objects.filter(name="voron-new").exists() and audited("printer.add"),
    ),
    Case("printer-edit-page", ADMIN, url("printers:edit", PRINTER)),
    Case(
        "printer-edit",
        ADMIN,
        url("printers:edit", PRINTER),
        "post",
        lambda w: printer_form(w, location="Shelf 9"),
        done=lambda w: Printer.objects.get(pk=w.printer.pk).location == "Shelf 9" and audited("printer.edit"),
    ),
    Case("printer-delete-page", ADMIN, url("printers:delete", PRINTER)),
    Case(
        "printer-delete",
        ADMIN,
        url("printers:delete", PRINTER),
        "post",
        done=lambda w: (
            not Printer.objects.filter(pk=w.printer.pk).exists()
            and audited("printer.delete", target_id=str(w.printer.pk))
        ),
    ),
    Case(
        "test-connection",
        ADMIN,
        url("printers:test_connection"),
        "post",
        lambda w: {"protocol": "moonraker", "base_url": UNREACHABLE_URL},
        hx=True,
    ),
    Case(
        "test-connection-stored",
        ADMIN,
        url("printers:test_connection", PRINTER),
        "post",
        lambda w: {"protocol": "moonraker", "base_url": UNREACHABLE_URL},
    ),
    Case(
        "printer-command",
        OPERATOR,
        url("printers:command", PRINTER, lambda w: "cooldown"),
        "post",
        hx=True,
        # Nothing listens there: the command is attempted, fails, and says so.
        done=lambda w: (
            PrinterEvent.objects.filter(printer=w.printer, kind=PrinterEvent.Kind.COMMAND).exists()
            and audited("printer.command", target_id=str(w.printer.pk))
        ),
    ),
    Case(
        "bed-cleared",
        OPERATOR,
        url("printers:bed_cleared", PRINTER),
        "post",
        hx=True,
        done=lambda w: Printer.objects.get(pk=w.printer.pk).bed_clear and audited("printer.bed_cleared"),
    ),
    # -- the library ------------------------------------------------------------------------
    Case("library", VIEWER, url("jobs:library")),
    Case("library-table", VIEWER, url("jobs:library"), hx=True),
    Case("file-detail", VIEWER, url("jobs:file", lambda w: w.file.pk)),
    Case("file-thumbnail", VIEWER, url("jobs:thumbnail", lambda w: w.extra["thumbnailed"].pk)),
    Case(
        "file-upload",
        OPERATOR,
        url("jobs:upload"),
        "post",
        lambda w: {"file": SimpleUploadedFile("new.gcode", gcode_bytes() + f"; {uuid.uuid4()}\n".encode())},
        done=lambda w: (
            GcodeFile.objects.present().filter(name="new.gcode").exists()
            and audited("file.upload", target_type="file")
        ),
    ),
    Case(
        "file-delete",
        OPERATOR,
        url("jobs:file_delete", lambda w: w.spare.pk),
        "post",
        done=lambda w: (
            not GcodeFile.objects.present().filter(pk=w.spare.pk).exists()
            and audited("file.delete", target_id=str(w.spare.pk))
        ),
    ),
    # -- the queue --------------------------------------------------------------------------
    Case("queue", VIEWER, url("jobs:queue")),
    Case("queue-body", VIEWER, url("jobs:queue"), hx=True),
    Case("job-explain", VIEWER, url("jobs:explain", FIRST), hx=True),
    Case("job-detail", VIEWER, url("jobs:job", FIRST)),
    Case(
        "queue-add",
        OPERATOR,
        url("jobs:queue_add", lambda w: w.file.pk),
        "post",
        lambda w: {"action": "print", "quantity": "2", "priority": "0"},
        done=lambda w: Job.objects.waiting().count() == 4 and audited("job.queue", detail="2 × print"),
    ),
    Case(
        "queue-reorder",
        OPERATOR,
        url("jobs:reorder"),
        "post",
        lambda w: {"order": json.dumps([w.second.pk, w.first.pk])},
        hx=True,
        done=lambda w: waiting_order() == [w.second.pk, w.first.pk] and audited("job.reorder"),
    ),
    Case(
        "job-cancel",
        OPERATOR,
        url("jobs:cancel", FIRST),
        "post",
        hx=True,
        done=lambda w: Job.objects.get(pk=w.first.pk).state == Job.State.CANCELLED and audited("job.cancel"),
    ),
    Case(
        "job-requeue",
        OPERATOR,
        url("jobs:requeue", lambda w: w.cancelled.pk),
        "post",
        done=lambda w: Job.objects.waiting().count() == 3 and audited("job.requeue"),
    ),
    Case(
        "job-move",
        OPERATOR,
        url("jobs:move", lambda w: w.second.pk, lambda w: "up"),
        "post",
        hx=True,
        done=lambda w: waiting_order() == [w.second.pk, w.first.pk] and audited("job.move", detail="up"),
    ),
    Case(
        "job-print-now",
        OPERATOR,
        url("jobs:print_now", lambda w: w.second.pk),
        "post",
        lambda w: {"printer": w.other.pk},
        done=lambda w: (
            Job.objects.get(pk=w.second.pk).target_printer_id == w.other.pk and audited("job.print_now")
        ),
    ),
    # -- history ----------------------------------------------------------------------------
    Case("history", VIEWER, url("jobs:history")),
    Case("history-results", VIEWER, url("jobs:history"), hx=True),
    Case("history-csv", VIEWER, url("jobs:history_csv")),
    Case("statistics", VIEWER, url("jobs:statistics")),
    # -- users, tokens, the audit log -------------------------------------------------------
    Case("users", ADMIN, url("accounts:users")),
    Case("user-add-page", ADMIN, url("accounts:user_add")),
    Case(
        "user-add",
        ADMIN,
        url("accounts:user_add"),
        "post",
        lambda w: {"username": "newbie", "role": "operator"},
        done=lambda w: (
            User.objects.filter(username="newbie", profile__role="operator").exists()
            and audited("user.create")
        ),
    ),
    Case("user-detail", ADMIN, url("accounts:user", lambda w: w.managed.pk)),
    Case(
        "user-role",
        ADMIN,
        url("accounts:user_role", lambda w: w.managed.pk),
        "post",
        lambda w: {"role": "operator"},
        done=lambda w: User.objects.get(pk=w.managed.pk).profile.role == "operator" and audited("user.role"),
    ),
    Case(
        "user-disable",
        ADMIN,
        url("accounts:user_disable", lambda w: w.managed.pk),
        "post",
        done=lambda w: not User.objects.get(pk=w.managed.pk).is_active and audited("user.disable"),
    ),
    Case(
        "user-enable",
        ADMIN,
        url("accounts:user_enable", lambda w: w.disabled.pk),
        "post",
        done=lambda w: User.objects.get(pk=w.disabled.pk).is_active and audited("user.enable"),
    ),
    Case(
        "user-password",
        ADMIN,
        url("accounts:user_password", lambda w: w.managed.pk),
        "post",
        done=lambda w: (
            User.objects.get(pk=w.managed.pk).password != w.managed.password and audited("user.password")
        ),
    ),
    Case("audit-log", ADMIN, url("accounts:audit")),
    Case("audit-results", ADMIN, url("accounts:audit"), hx=True),
    Case("tokens", VIEWER, url("accounts:tokens")),
    Case(
        "token-create",
        VIEWER,
        url("accounts:tokens"),
        "post",
        lambda w: {"name": "slicer"},
        done=lambda w: ApiToken.objects.filter(user=w.me, name="slicer").exists() and audited("token.create"),
    ),
    Case(
        "token-revoke-own",
        VIEWER,
        lambda w: reverse("accounts:token_revoke", args=[w.extra["my_token"].pk]),
        "post",
        done=lambda w: (
            ApiToken.objects.get(pk=w.extra["my_token"].pk).revoked_at is not None and audited("token.revoke")
        ),
    ),
    Case("password-page", VIEWER, url("accounts:password_change")),
]

WHO = ["anonymous", "disabled", Role.VIEWER, Role.OPERATOR, Role.ADMIN]


@pytest.mark.parametrize("who", WHO, ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_role_matrix(case: Case, who: str | Role) -> None:
    w = make_world()
    w.extra["thumbnailed"] = make_file("thumb.gcode", thumbnail=(8, 8, 3))
    client = Client()
    w.extra["my_token"] = token_create(w.managed, "theirs").token  # anonymous: someone's token
    if who != "anonymous":
        w.me = UserFactory(role=Role.ADMIN if who == "disabled" else who)
        client.force_login(w.me)
        w.extra["my_token"] = token_create(w.me, "mine").token
        if who == "disabled":  # disabled after signing in: the open session must stop working
            User.objects.filter(pk=w.me.pk).update(is_active=False)
    data = case.data(w) if case.data else {}
    before = snapshot()

    send = client.post if case.method == "post" else client.get
    response = send(case.url(w), data, headers=HX if case.hx else {})

    if who in ("anonymous", "disabled"):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")
        assert snapshot() == before
    elif RANK[who] < RANK[case.needs]:
        assert response.status_code == 403
        if not case.hx:
            assert (
                f"This needs the {case.needs.value} role; yours is {who.value}" in response.content.decode()
            )
        assert snapshot() == before
    else:
        assert response.status_code in (200, 302), response.content.decode()[:500]
        if case.done is not None:
            assert case.done(w)
        else:
            assert AuditEntry.objects.count() == before["audit"]  # a read is not an action
