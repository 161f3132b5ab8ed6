"""The JSON API: every endpoint's happy path and errors, tokens, roles, ETag, slicer uploads."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jobs.demo import gcode_bytes
from jobs.models import GcodeFile, Job
from jobs.tests.factories import make_file
from printers.models import Printer, Tag
from printers.state import State
from printers.tests.factories import PrinterFactory, UserFactory, set_status
from printfarm.accounts.models import ApiToken, AuditEntry, Role
from printfarm.accounts.roles import set_role
from printfarm.accounts.tokens import token_create, token_revoke
from printfarm.api.auth import forget_tokens
from printfarm.api.snapshot import snapshot
from printfarm.api.tests.clients import api_client, assert_error, patch, post

pytestmark = pytest.mark.django_db

SECRET_KEY_TEXT = "sekrit-printer-key-4242"


# -- auth ---------------------------------------------------------------------------------------


def test_no_credentials_is_401_with_the_stable_shape():
    response = Client().get("/api/v1/printers")
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_bad_or_revoked_token_is_401():
    client, user = api_client(Role.VIEWER)
    assert client.get("/api/v1/me").status_code == 200
    token_revoke(ApiToken.objects.get(user=user))
    forget_tokens()
    assert_error(client.get("/api/v1/me"), 401, "unauthorized")
    assert_error(Client(HTTP_AUTHORIZATION="Bearer pf_nope_nope").get("/api/v1/me"), 401, "unauthorized")


def test_tokens_are_stored_hashed():
    user = UserFactory()
    new = token_create(user, "script")
    stored = ApiToken.objects.get(pk=new.token.pk)
    assert new.secret not in (stored.prefix, stored.digest, stored.name)
    assert new.secret.split("_", 2)[2] not in stored.digest


def test_session_auth_works_and_needs_csrf_for_writes():
    user = UserFactory()
    set_role(user, Role.ADMIN)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/v1/me").json()["username"] == user.username
    response = post(client, "/api/v1/users", {"username": "x", "password": "a-long-password-1"})
    assert response.status_code == 403


def test_a_disabled_users_token_stops_working():
    client, user = api_client(Role.ADMIN)
    user.is_active = False
    user.save()
    forget_tokens()
    assert client.get("/api/v1/me").status_code == 401


# -- printers -----------------------------------------------------------------------------------


def test_printer_list_and_detail_with_live_status(viewer):
    p = set_status(
        PrinterFactory(name="mk4", tags=["lab"], api_key=SECRET_KEY_TEXT), State.PRINTING, progress=42.0
    )
    listing = viewer.get("/api/v1/printers")
    assert listing.status_code == 200
    body = listing.json()
    assert body["count"] == 1
    item = body["items"][0]
    assert (item["name"], item["tags"], item["status"]["state"], item["status"]["progress"]) == (
        "mk4",
        ["lab"],
        "printing",
        42.0,
    )
    assert item["has_api_key"] is True
    assert viewer.get(f"/api/v1/printers/{p.pk}").json()["id"] == p.pk
    assert_error(viewer.get("/api/v1/printers/999999"), 404, "not_found")
    assert_error(viewer.get("/api/v1/printers?limit=0"), 422, "invalid")


def test_printer_list_pages(viewer):
    for i in range(5):
        PrinterFactory(name=f"p{i}")
    body = viewer.get("/api/v1/printers?limit=2&offset=3").json()
    assert body["count"] == 5
    assert [p["name"] for p in body["items"]] == ["p3", "p4"]


def test_farm_status_with_etag_and_304(viewer):
    p = set_status(PrinterFactory(), State.IDLE)
    first = viewer.get("/api/v1/status")
    assert first.status_code == 200
    assert first.json()["by_state"]["idle"] == 1
    etag = first["ETag"]
    again = viewer.get("/api/v1/status", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    set_status(p, State.PRINTING, progress=1.0)
    snapshot.invalidate()
    changed = viewer.get("/api/v1/status", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_admin_creates_changes_and_removes_a_printer(admin):
    created = post(
        admin,
        "/api/v1/printers",
        {
            "name": "new",
            "protocol": "moonraker",
            "base_url": "127.0.0.1:7125",
            "api_key": SECRET_KEY_TEXT,
            "tags": ["A"],
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["base_url"], body["tags"], body["has_api_key"]) == ("http://127.0.0.1:7125", ["a"], True)
    assert SECRET_KEY_TEXT not in created.content.decode()
    pk = body["id"]
    changed = patch(admin, f"/api/v1/printers/{pk}", {"location": "shelf 2", "enabled": False})
    assert changed.status_code == 200
    assert (changed.json()["location"], changed.json()["enabled"]) == ("shelf 2", False)
    assert Printer.objects.get(pk=pk).api_key == SECRET_KEY_TEXT  # untouched by a patch without it
    # Moving the printer without re-entering its key is refused (the key would follow unseen).
    moved = patch(admin, f"/api/v1/printers/{pk}", {"base_url": "http://127.0.0.2:7125"})
    assert "api_key" in assert_error(moved, 422, "invalid")["fields"]
    assert admin.delete(f"/api/v1/printers/{pk}").status_code == 204
    assert not Printer.objects.filter(pk=pk).exists()
    assert set(AuditEntry.objects.values_list("action", flat=True)) >= {
        "printer.add",
        "printer.edit",
        "printer.delete",
    }


def test_printer_validation_errors_name_the_fields(admin):
    PrinterFactory(name="taken")
    response = post(
        admin, "/api/v1/printers", {"name": "taken", "protocol": "moonraker", "base_url": "ftp://x"}
    )
    fields = assert_error(response, 422, "invalid")["fields"]
    assert {"name", "base_url"} <= set(fields)
    response = post(admin, "/api/v1/printers", {"name": "x", "protocol": "klipper", "base_url": "http://x"})
    assert "protocol" in assert_error(response, 422, "invalid")["fields"]


@pytest.mark.parametrize(
    "address",
    ["http://user:pw@127.0.0.1:7125", "http://127.0.0.1:99999", "http://169.254.169.254", "http://[fe80::1]"],
)
def test_printer_addresses_follow_the_forms_rules(admin, address):
    p = PrinterFactory()
    created = post(admin, "/api/v1/printers", {"name": "n", "protocol": "moonraker", "base_url": address})
    assert "base_url" in assert_error(created, 422, "invalid")["fields"]
    changed = patch(admin, f"/api/v1/printers/{p.pk}", {"base_url": address})
    assert "base_url" in assert_error(changed, 422, "invalid")["fields"]
    assert Printer.objects.get(pk=p.pk).base_url == p.base_url


def test_a_stored_address_is_sent_without_its_credentials(viewer):
    p = set_status(PrinterFactory(), State.IDLE)
    Printer.objects.filter(pk=p.pk).update(base_url="http://olduser:oldpass@127.0.0.1:7125")
    snapshot.invalidate()
    for url in ("/api/v1/printers", f"/api/v1/printers/{p.pk}"):
        text = viewer.get(url).content.decode()
        assert "http://127.0.0.1:7125" in text
        assert "oldpass" not in text and "olduser" not in text


def test_commands_reach_the_printer_or_say_why_not(operator):
    p = PrinterFactory()  # nothing listens at its address
    response = post(operator, f"/api/v1/printers/{p.pk}/commands/pause")
    assert response.status_code == 409
    assert response.json()["ok"] is False and "connect" in response.json()["message"].lower()
    assert_error(post(operator, f"/api/v1/printers/{p.pk}/commands/explode"), 404, "not_found")
    assert AuditEntry.objects.filter(action="printer.command").count() == 1


def test_bed_cleared(operator):
    p = PrinterFactory()
    Printer.objects.filter(pk=p.pk).update(bed_clear=False)
    assert post(operator, f"/api/v1/printers/{p.pk}/bed-cleared").json()["bed_clear"] is True


# -- roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, set()),
        (Role.OPERATOR, {"command", "bed", "job", "file"}),
        (Role.ADMIN, {"command", "bed", "job", "file", "printer", "user"}),
    ],
)
def test_role_matrix(role, allowed):
    client, _ = api_client(role)
    p = PrinterFactory()
    file = make_file()
    jobs_before, printers_before = Job.objects.count(), Printer.objects.count()
    attempts = {
        "command": post(client, f"/api/v1/printers/{p.pk}/commands/pause"),
        "bed": post(client, f"/api/v1/printers/{p.pk}/bed-cleared"),
        "job": post(client, "/api/v1/jobs", {"file_id": file.pk}),
        "file": client.delete(f"/api/v1/files/{make_file().pk}"),
        "printer": post(
            client, "/api/v1/printers", {"name": "n", "protocol": "moonraker", "base_url": "http://127.0.0.9"}
        ),
        "user": post(client, "/api/v1/users", {"username": "u", "password": "long-enough-pass-1"}),
    }
    for name, response in attempts.items():
        if name in allowed:
            assert response.status_code in (200, 201, 204, 409), (name, response.content)
        else:
            assert_error(response, 403, "forbidden")
    if "job" not in allowed:
        assert Job.objects.count() == jobs_before
    if "printer" not in allowed:
        assert Printer.objects.count() == printers_before
    # Everyone may read.
    for url in ("/api/v1/printers", "/api/v1/status", "/api/v1/files", "/api/v1/jobs", "/api/v1/me"):
        assert client.get(url).status_code == 200


# -- files and jobs -----------------------------------------------------------------------------


def test_upload_list_detail_delete_a_file(operator):
    data = gcode_bytes(seconds=600)
    response = operator.post("/api/v1/files", {"file": SimpleUploadedFile("part.gcode", data)})
    assert response.status_code == 201, response.content
    stored = response.json()["stored"][0]
    assert (stored["name"], stored["estimated_seconds"], stored["slicer"]) == (
        "part.gcode",
        600,
        "PrusaSlicer",
    )
    again = operator.post("/api/v1/files", {"file": SimpleUploadedFile("part.gcode", data)}).json()
    assert again["reused"] == [stored["id"]] and again["stored"] == []
    renamed = operator.post("/api/v1/files", {"file": SimpleUploadedFile("copy.gcode", data)}).json()
    assert [f["name"] for f in renamed["stored"]] == ["copy.gcode"]  # a new entry, the bytes shared
    bad = operator.post("/api/v1/files", {"file": SimpleUploadedFile("x.stl", b"solid")})
    assert bad.status_code == 400 and "not a G-code file" in bad.json()["errors"][0]
    assert operator.get("/api/v1/files?q=part").json()["count"] == 1
    assert operator.get(f"/api/v1/files/{stored['id']}").json()["sha256"]
    assert operator.delete(f"/api/v1/files/{stored['id']}").status_code == 204
    assert_error(operator.get(f"/api/v1/files/{stored['id']}"), 404, "not_found")


def test_a_file_in_use_cannot_be_deleted(operator):
    file = make_file()
    Job.objects.create(file=file)
    assert_error(operator.delete(f"/api/v1/files/{file.pk}"), 409, "conflict")


def test_jobs_create_list_filter_detail_cancel_requeue_reorder(operator):
    file = make_file()
    p = PrinterFactory()
    Tag.objects.create(name="big")
    created = post(
        operator, "/api/v1/jobs", {"file_id": file.pk, "quantity": 3, "priority": 2, "tags": ["big"]}
    )
    assert created.status_code == 201, created.content
    ids = [j["id"] for j in created.json()["items"]]
    assert len(ids) == 3 and created.json()["items"][0]["required_tags"] == ["big"]
    pinned = post(
        operator, "/api/v1/jobs", {"file_id": file.pk, "printer_ids": [p.pk], "action": "upload"}
    ).json()
    assert pinned["items"][0]["target_printer_id"] == p.pk
    assert operator.get("/api/v1/jobs?state=queued").json()["count"] == 4
    assert_error(operator.get("/api/v1/jobs?state=bogus"), 422, "invalid")
    detail = operator.get(f"/api/v1/jobs/{ids[0]}").json()
    assert detail["events"][0]["to_state"] == "queued"
    cancelled = post(operator, f"/api/v1/jobs/{ids[0]}/cancel")
    assert cancelled.json()["state"] == "cancelled"
    assert_error(post(operator, f"/api/v1/jobs/{ids[0]}/cancel"), 409, "conflict")
    requeued = post(operator, f"/api/v1/jobs/{ids[0]}/requeue")
    assert requeued.status_code == 201 and requeued.json()["state"] == "queued"
    order = post(operator, "/api/v1/queue/order", {"order": [ids[2], ids[1]]}).json()
    assert [j["id"] for j in order["items"]][:2] == [ids[2], ids[1]]
    assert_error(post(operator, "/api/v1/jobs", {"file_id": 999999}), 422, "invalid")
    assert_error(post(operator, "/api/v1/jobs", {"file_id": file.pk, "tags": ["nope"]}), 422, "invalid")
    assert_error(post(operator, "/api/v1/jobs", {"file_id": file.pk, "quantity": 0}), 422, "invalid")
    assert_error(operator.get("/api/v1/jobs/999999"), 404, "not_found")


# -- users --------------------------------------------------------------------------------------


def test_users_admin_only_and_last_admin_guard(admin, viewer):
    assert_error(viewer.get("/api/v1/users"), 403, "forbidden")
    created = post(
        admin, "/api/v1/users", {"username": "ann", "role": "operator", "password": "correct-horse-9"}
    )
    assert created.status_code == 201 and created.json()["role"] == "operator"
    weak = post(admin, "/api/v1/users", {"username": "bob", "password": "123"})
    assert "password" in assert_error(weak, 422, "invalid")["fields"]
    dup = post(admin, "/api/v1/users", {"username": "ann", "password": "correct-horse-9"})
    assert "username" in assert_error(dup, 422, "invalid")["fields"]
    ann = created.json()["id"]
    assert patch(admin, f"/api/v1/users/{ann}", {"is_active": False}).json()["is_active"] is False
    me = admin.get("/api/v1/me").json()
    assert_error(patch(admin, f"/api/v1/users/{me['id']}", {"role": "viewer"}), 409, "conflict")
    assert admin.get("/api/v1/users").json()["count"] >= 3


# -- secrets never leave ------------------------------------------------------------------------


def test_a_printer_key_is_in_no_api_response(admin):
    p = set_status(PrinterFactory(api_key=SECRET_KEY_TEXT), State.IDLE)
    for url in ("/api/v1/printers", f"/api/v1/printers/{p.pk}", "/api/v1/status", "/api/v1/openapi.json"):
        assert SECRET_KEY_TEXT not in admin.get(url).content.decode()
    assert SECRET_KEY_TEXT not in patch(admin, f"/api/v1/printers/{p.pk}", {"location": "x"}).content.decode()


# -- OctoPrint-compatible endpoints for slicers -------------------------------------------------


def test_slicer_connection_test_and_upload_to_the_library():
    user = UserFactory()
    set_role(user, Role.OPERATOR)
    key = token_create(user, "PrusaSlicer").secret
    slicer = Client(HTTP_X_API_KEY=key)
    version = slicer.get("/api/version")
    assert version.status_code == 200 and version.json()["text"].startswith("OctoPrint")
    assert Client().get("/api/version").status_code == 403  # as OctoPrint answers a missing key
    response = slicer.post(
        "/api/files/local", {"file": SimpleUploadedFile("benchy.gcode", gcode_bytes()), "select": "false"}
    )
    assert response.status_code == 201, response.content
    assert response.json()["files"]["local"]["name"] == "benchy.gcode"
    assert GcodeFile.objects.filter(name="benchy.gcode").exists()
    assert not Job.objects.exists()
    assert AuditEntry.objects.filter(action="file.upload", via="slicer").exists()


def test_slicer_upload_and_print_queues_for_the_tokens_printer():
    user = UserFactory()
    set_role(user, Role.OPERATOR)
    p = PrinterFactory(name="mk4-left")
    key = token_create(user, "Orca", printer=p).secret
    response = Client(HTTP_X_API_KEY=key).post(
        "/api/files/local", {"file": SimpleUploadedFile("a.gcode", gcode_bytes()), "print": "true"}
    )
    assert response.status_code == 201 and response.json()["effectivePrint"] is True
    job = Job.objects.get()
    assert (job.target_printer, job.state) == (p, "queued")


def test_slicer_upload_refused_for_a_viewer_and_for_bad_files():
    user = UserFactory()
    set_role(user, Role.VIEWER)
    viewer = Client(HTTP_X_API_KEY=token_create(user, "cura").secret)
    assert viewer.post("/api/files/local", {"file": SimpleUploadedFile("a.gcode", b"G28")}).status_code == 403
    operator_user = UserFactory()
    set_role(operator_user, Role.OPERATOR)
    operator = Client(HTTP_X_API_KEY=token_create(operator_user, "cura").secret)
    bad = operator.post("/api/files/local", {"file": SimpleUploadedFile("a.stl", b"solid")})
    assert bad.status_code == 400 and "not a G-code file" in bad.json()["error"]
    bad = operator.post("/api/files/local", {"file": SimpleUploadedFile("a.3mf", b"PK")})
    assert bad.status_code == 400 and "a.3mf: not a readable 3MF" in bad.json()["error"]
    assert not GcodeFile.objects.exists()


def test_numbers_past_the_database_range_never_500(viewer):
    # SQLite refuses integers past 64 bits (422 here); PostgreSQL just finds nothing.
    huge = 10**30
    assert_error(viewer.get(f"/api/v1/printers/{huge}"), 404, "not_found")
    for url in (f"/api/v1/jobs/{huge}", f"/api/v1/jobs?printer_id={huge}", f"/api/v1/files?offset={huge}"):
        response = viewer.get(url)
        assert response.status_code in (200, 404, 422), (url, response.content)
        assert response["Content-Type"].startswith("application/json")
