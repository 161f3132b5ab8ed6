"""The three ways in for G-code (the web library, `POST /api/v1/files`, the slicers'
`POST /api/files/local`) give the same verdict for the same file and write the same audit entry."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from jobs import library
from jobs.models import GcodeFile
from jobs.tests.factories import gcode_bytes
from printers.tests.factories import UserFactory
from printfarm.accounts.models import AuditEntry, Role
from printfarm.accounts.tokens import token_create

pytestmark = pytest.mark.django_db

PATHS = ("web", "api", "slicer")  # also each path's `via` in the audit log
BOUNDARY = "farm-boundary-7d3"


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path):
    settings.PRINTFARM_FILES_DIR = tmp_path / "files"
    return settings.PRINTFARM_FILES_DIR


@pytest.fixture
def operator():
    return UserFactory(role=Role.OPERATOR)


@pytest.fixture
def send(operator):
    """send(path, name, data) posts one file (or, with name None, no file part) through `path`
    as the same operator, and returns (status, error lines, body)."""
    web = Client()
    web.force_login(operator)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token_create(operator, 'api').secret}")
    slicer = Client(HTTP_X_API_KEY=token_create(operator, "slicer").secret)

    def post(path: str, name: str | None, data: bytes = b""):
        # Built by hand: the test client would cut the name to its base name, as Django's parser did.
        part = f'name="file"; filename="{name}"' if name else 'name="note"'
        body = f"--{BOUNDARY}\r\nContent-Disposition: form-data; {part}\r\n\r\n".encode()
        form = {"data": body + (data if name else b"no file here") + f"\r\n--{BOUNDARY}--\r\n".encode()}
        form["content_type"] = f"multipart/form-data; boundary={BOUNDARY}"
        if path == "web":
            response = web.post(reverse("jobs:upload"), **form, headers={"Accept": "application/json"})
        elif path == "api":
            response = api.post("/api/v1/files", **form)
        else:
            response = slicer.post("/api/files/local", **form)
        body = response.json()
        errors = ([body["error"]] if "error" in body else []) if path == "slicer" else body["errors"]
        return response.status_code, errors, body

    return post


def nothing_kept(files_dir) -> bool:
    incoming = files_dir / "incoming"
    leftovers = list(incoming.iterdir()) if incoming.exists() else []
    return not GcodeFile.objects.exists() and not leftovers and not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("name", "data", "status", "error"),
    [
        ("empty.gcode", b"", 400, "empty.gcode: the file is empty; nothing was stored."),
        (
            "model.stl",
            b"solid cube",
            400,
            "model.stl: not a G-code file. Accepted: .gcode, .gco, .g, .bgcode, .gcode.3mf, .3mf.",
        ),
        ("big.gcode", gcode_bytes(padding=5000), 413, "big.gcode: larger than the 1000 bytes limit"),
    ],
)
def test_a_bad_file_gets_the_same_answer_on_every_path(send, settings, files_dir, name, data, status, error):
    settings.PRINTFARM_UPLOAD_MAX_BYTES = 1000
    answers = {path: send(path, name, data)[:2] for path in PATHS}
    assert answers["web"] == answers["api"] == answers["slicer"]
    got_status, errors = answers["web"]
    assert got_status == status
    assert len(errors) == 1 and errors[0].startswith(error)
    assert nothing_kept(files_dir)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("../../etc/cube.gcode", "../../etc/cube.gcode: a file name can't hold a folder"),
        ("C:\\models\\cube.gcode", "C:\\models\\cube.gcode: a file name can't hold a folder"),
        ("cu\x1bbe.gcode", "cu?be.gcode: refused, it holds control characters"),
        ("x" * 300 + ".gcode", "xxx"),
    ],
)
def test_a_bad_name_is_refused_not_cleaned_the_same_way_on_every_path(send, files_dir, name, error):
    answers = {path: send(path, name, gcode_bytes())[:2] for path in PATHS}
    assert answers["web"] == answers["api"] == answers["slicer"]
    status, errors = answers["web"]
    assert status == 400 and len(errors) == 1 and errors[0].startswith(error)
    assert nothing_kept(files_dir)


def test_the_same_content_under_another_name_is_a_new_entry_on_every_path(send, files_dir):
    data = gcode_bytes()
    statuses = [send(path, f"{path}.gcode", data)[0] for path in PATHS]
    assert statuses == [201] * 3
    assert sorted(GcodeFile.objects.values_list("name", flat=True)) == sorted(f"{p}.gcode" for p in PATHS)
    assert len(list(files_dir.rglob("*.gcode"))) == 1  # the bytes, stored once


def test_no_file_at_all_gets_the_same_answer_on_every_path(send, files_dir):
    answers = {path: send(path, None)[:2] for path in PATHS}
    assert answers["web"] == answers["api"] == answers["slicer"]
    assert answers["web"][0] == 400 and "No file arrived" in answers["web"][1][0]
    assert nothing_kept(files_dir)


def entries_by_path() -> dict[str, tuple]:
    """Each path's one "file.upload" entry, without its `via` and target id (told apart)."""
    entries = {}
    for e in AuditEntry.objects.filter(action="file.upload").order_by("pk"):
        assert e.via not in entries, "one entry per upload"
        entries[e.via] = (e.action, e.username, e.target_type, e.target_label, e.detail)
    return entries


def test_a_good_file_is_stored_and_audited_the_same_way_on_every_path(send, operator):
    # Different content of the same size, so each path stores a new file with the same message.
    contents = {path: gcode_bytes(seconds=600) + f"; sent {i}\n".encode() for i, path in enumerate(PATHS)}
    statuses = {path: send(path, "part.gcode", contents[path])[0] for path in PATHS}
    assert statuses == dict.fromkeys(PATHS, 201)
    files = {f.sha256: f for f in GcodeFile.objects.all()}
    assert len(files) == 3
    assert {(f.name, f.estimated_seconds, f.uploaded_by) for f in files.values()} == {
        ("part.gcode", 600, operator)
    }
    stored = entries_by_path()
    assert set(stored) == set(PATHS)
    assert stored["web"] == stored["api"] == stored["slicer"]
    action, username, target_type, label, detail = stored["web"]
    assert (action, username, target_type, label) == (
        "file.upload",
        operator.get_username(),
        "file",
        "part.gcode",
    )
    assert detail == f"part.gcode: stored ({library.human_size(len(contents['web']))})."
    assert {e.target_id for e in AuditEntry.objects.all()} == {str(f.pk) for f in files.values()}

    # The same content and name again: reused on every path, and every path says so in the log.
    AuditEntry.objects.all().delete()
    again = {path: send(path, "part.gcode", contents["web"]) for path in PATHS}
    assert {path: status for path, (status, _, _) in again.items()} == dict.fromkeys(PATHS, 201)
    assert GcodeFile.objects.count() == 3
    reused = entries_by_path()
    assert reused["web"] == reused["api"] == reused["slicer"]
    assert "already in the library" in reused["web"][4]


def test_a_file_whose_metadata_cannot_be_read_is_stored_on_every_path(send, monkeypatch):
    def unreadable(path):  # a slicer format the parser trips over
        raise ValueError("cannot parse")

    monkeypatch.setattr(library, "read_metadata", unreadable)
    for i, path in enumerate(PATHS):
        assert send(path, "odd.gcode", gcode_bytes(seconds=600) + f"; {i}\n".encode())[0] == 201
    assert list(GcodeFile.objects.values_list("slicer", "estimated_seconds")) == [("", None)] * 3
    assert set(entries_by_path()) == set(PATHS)
