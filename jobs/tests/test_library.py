"""The library: streamed uploads (good, duplicate, refused), list, thumbnail, delete."""

from __future__ import annotations

import base64
import io
import os
import struct
import time
import zlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import library
from jobs.models import GcodeFile, Job
from jobs.tests.factories import gcode_bytes, make_file
from printers.tests.factories import PrinterFactory, UserFactory

pytestmark = pytest.mark.django_db


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0\0\0\0\0"))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def with_thumbnail(data: bytes) -> bytes:
    png = base64.b64encode(tiny_png()).decode()
    block = f"; thumbnail begin 1x1 {len(png)}\n; {png}\n; thumbnail end\n"
    return block.encode() + data


@pytest.fixture
def client(user) -> Client:
    """Signed in as `user`, like the root conftest's `web` (every test here takes it as `client`)."""
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, name: str, data: bytes, *, json: bool = False):
    headers = {"Accept": "application/json"} if json else {}
    return client.post(reverse("jobs:upload"), {"file": SimpleUploadedFile(name, data)}, headers=headers)


def incoming_files() -> list:
    folder = library.files_dir() / "incoming"
    return list(folder.iterdir()) if folder.exists() else []


def test_upload_stores_the_file_by_content_with_its_metadata(client, user):
    data = with_thumbnail(gcode_bytes(seconds=3723, material="PETG"))
    response = upload(client, "benchy.gcode", data)
    assert response.status_code == 302
    file = GcodeFile.objects.get()
    assert (file.name, file.size, file.uploaded_by) == ("benchy.gcode", len(data), user)
    assert library.stored_path(file).read_bytes() == data
    assert file.slicer == "PrusaSlicer"
    assert file.estimated_seconds == 3723
    assert file.filament_type == "PETG"
    assert file.thumbnail_type == "image/png"
    assert incoming_files() == []
    page = client.get(reverse("jobs:library"))
    assert b"benchy.gcode: stored" in page.content
    thumb = client.get(reverse("jobs:thumbnail", args=[file.pk]))
    assert thumb["Content-Type"] == "image/png"
    assert b"".join(thumb.streaming_content) == tiny_png()


def test_several_files_in_one_request_each_get_a_verdict(client):
    response = client.post(
        reverse("jobs:upload"),
        {"file": [SimpleUploadedFile("a.gcode", gcode_bytes()), SimpleUploadedFile("b.stl", b"solid x")]},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 207
    body = response.json()
    assert [s["name"] for s in body["stored"]] == ["a.gcode"]
    assert body["errors"] == [
        "b.stl: not a G-code file. Accepted: .gcode, .gco, .g, .bgcode, .gcode.3mf, .3mf."
    ]


def test_the_same_content_and_name_again_reuses_the_entry(client):
    data = gcode_bytes()
    assert upload(client, "one.gcode", data, json=True).status_code == 201
    again = upload(client, "one.gcode", data, json=True)
    assert again.status_code == 201
    assert again.json()["stored"][0]["created"] is False
    assert "already in the library" in again.json()["stored"][0]["message"]
    assert GcodeFile.objects.count() == 1
    assert incoming_files() == []


def test_the_same_content_under_a_new_name_is_a_new_entry_sharing_the_bytes(client):
    data = gcode_bytes()
    upload(client, "one.gcode", data)
    renamed = upload(client, "two.gcode", data, json=True).json()["stored"][0]
    other_extension = upload(client, "three.gco", data, json=True).json()["stored"][0]
    assert (renamed["created"], other_extension["created"]) == (True, True)
    one, two, three = (GcodeFile.objects.get(name=n) for n in ("one.gcode", "two.gcode", "three.gco"))
    assert library.stored_path(one) == library.stored_path(two)
    # Another extension is another stored name: a hard link to the same bytes, not a copy.
    assert library.stored_path(three).stat().st_ino == library.stored_path(one).stat().st_ino
    assert incoming_files() == []


def test_deleting_an_entry_keeps_the_bytes_another_entry_uses(client):
    data = with_thumbnail(gcode_bytes())
    for name in ("one.gcode", "two.gcode", "three.gco"):
        upload(client, name, data)
    one, two, three = (GcodeFile.objects.get(name=n) for n in ("one.gcode", "two.gcode", "three.gco"))
    library.delete(one)
    assert library.stored_path(two).read_bytes() == data
    assert library.thumbnail_path(two).exists()
    library.delete(two)
    assert not library.stored_path(two).exists()  # the .gcode name: no entry uses it any more
    assert library.stored_path(three).read_bytes() == data
    assert library.thumbnail_path(three).exists()
    library.delete(three)
    assert not any(p.is_file() for p in library.files_dir().rglob("*"))


def test_clean_keeps_bytes_any_present_entry_uses():
    data = gcode_bytes()
    first = make_file("a.gcode", unique=False)
    second = make_file("b.gco", unique=False)
    aged(library.stored_path(first))
    aged(library.stored_path(second))
    library.delete(first)
    result = library.clean()
    assert result.removed == [] and library.stored_path(second).read_bytes() == data


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("model.stl", b"solid cube", "not a G-code file"),
        ("notes.txt", b"hello", "not a G-code file"),
        ("empty.gcode", b"", "the file is empty"),
    ],
)
def test_bad_files_are_refused_and_nothing_is_stored(client, name, data, message):
    response = upload(client, name, data, json=True)
    assert response.status_code == 400
    assert message in response.json()["errors"][0]
    assert not GcodeFile.objects.exists()
    assert incoming_files() == []
    assert not any(p.is_file() for p in library.files_dir().rglob("*"))


def test_a_file_over_the_limit_is_refused_and_nothing_is_stored(client, settings):
    settings.PRINTFARM_UPLOAD_MAX_BYTES = 1000
    response = upload(client, "big.gcode", gcode_bytes(padding=5000), json=True)
    assert response.status_code == 413
    assert "larger than the 1000 bytes limit" in response.json()["errors"][0]
    assert not GcodeFile.objects.exists()
    assert incoming_files() == []


def test_without_js_a_refusal_is_a_message_on_the_library(client):
    response = upload(client, "x.stl", b"solid")
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert b"x.stl: not a G-code file" in page.content


def test_upload_needs_the_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = upload(client, "a.gcode", gcode_bytes())
    assert response.status_code == 403
    assert not GcodeFile.objects.exists()
    assert incoming_files() == []


def test_upload_needs_a_login():
    response = upload(Client(), "a.gcode", gcode_bytes())
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert not GcodeFile.objects.exists()


def test_list_searches_and_sorts(client):
    make_file("cube.gcode", seconds=600)
    make_file("benchy.gcode", seconds=60)
    page = client.get(reverse("jobs:library"), {"q": "ben"})
    assert b"benchy.gcode" in page.content and b"cube.gcode" not in page.content
    by_time = client.get(reverse("jobs:library"), {"sort": "time"}).content
    assert by_time.index(b"benchy.gcode") < by_time.index(b"cube.gcode")
    fragment = client.get(reverse("jobs:library"), {"q": "cube"}, headers={"HX-Request": "true"})
    assert fragment.content.lstrip().startswith(b'<section id="file-table"')


def test_a_file_a_job_waits_for_cannot_be_deleted(client):
    file = make_file()
    Job.objects.create(file=file)
    response = client.post(reverse("jobs:file_delete", args=[file.pk]), follow=True)
    assert b"used by 1 waiting or running job" in response.content
    assert library.stored_path(file).exists()


def test_deleting_a_file_with_history_keeps_the_record(client):
    file = make_file()
    job = Job.objects.create(file=file, state=Job.State.COMPLETED, printer=PrinterFactory())
    client.post(reverse("jobs:file_delete", args=[file.pk]))
    file.refresh_from_db()
    assert file.deleted_at is not None
    assert not library.stored_path(file).exists()
    listed = client.get(reverse("jobs:library")).content
    assert f'href="{reverse("jobs:file", args=[file.pk])}"'.encode() not in listed
    assert client.get(reverse("jobs:job", args=[job.pk])).status_code == 200


def test_deleting_an_unused_file_removes_it(client):
    file = make_file()
    path = library.stored_path(file)
    client.post(reverse("jobs:file_delete", args=[file.pk]))
    assert not GcodeFile.objects.exists()
    assert not path.exists()


def test_uploading_a_deleted_file_again_brings_it_back(client):
    data = gcode_bytes()
    upload(client, "old.gcode", data)
    file = GcodeFile.objects.get()
    Job.objects.create(file=file, state=Job.State.FAILED)
    library.delete(file)
    upload(client, "old.gcode", data)
    file.refresh_from_db()
    assert (file.deleted_at, file.name) == (None, "old.gcode")
    assert library.stored_path(file).read_bytes() == data
    assert GcodeFile.objects.count() == 1
    upload(client, "new.gcode", data)  # the same content under a new name: a new entry
    assert sorted(GcodeFile.objects.present().values_list("name", flat=True)) == ["new.gcode", "old.gcode"]


def test_names_with_folders_control_characters_or_too_long_are_refused_not_cleaned():
    assert "can't hold a folder" in library.name_problem("C:\\models\\cube.gcode")
    assert "can't hold a folder" in library.name_problem("../../etc/x.gcode")
    assert "control characters" in library.name_problem("a\x00b\n.gcode")
    assert "longer than 255" in library.name_problem("x" * 250 + ".gcode")
    assert library.name_problem("x" * 249 + ".gcode") == ""
    assert library.name_problem("Benchy (PETG) 0.2mm ÄÖ.gcode") == ""


def test_a_folder_is_trimmed_and_refused_when_it_leaves_the_library():
    assert library.folder_from("/customers//anna/") == ("customers/anna", "")
    assert library.folder_from("customers\\anna") == ("customers/anna", "")
    assert library.folder_from("") == ("", "")
    assert "can't contain" in library.folder_from("a/../../b")[1]
    assert "control characters" in library.folder_from("a\tb")[1]
    assert "longer than 255" in library.folder_from("x" * 256)[1]


def test_demo_files_are_stored_once_with_their_thumbnails():
    from django.core.management import call_command

    call_command("demo_files")
    call_command("demo_files")
    files = GcodeFile.objects.all()
    assert len(files) == 3
    assert all(f.thumbnail_type == "image/png" and f.estimated_seconds for f in files)


async def test_a_body_declared_larger_than_the_limit_is_refused_unread(settings):
    from printfarm.asgi_http import FarmASGIHandler

    settings.PRINTFARM_UPLOAD_MAX_BYTES = 1000
    sent = []

    async def receive():
        raise AssertionError("the body must not be read")

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/files/upload/",
        "headers": [(b"content-length", str(5 * 1024 * 1024).encode())],
    }
    await FarmASGIHandler()(scope, receive, send)
    assert sent[0]["status"] == 413
    assert b"nothing was stored" in sent[1]["body"]


async def test_request_bodies_spool_into_the_data_directory(settings, tmp_path):
    from printfarm.asgi_http import FarmASGIHandler

    settings.FILE_UPLOAD_TEMP_DIR = tmp_path
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10
    messages = [{"type": "http.request", "body": b"x" * 100, "more_body": True}, {"type": "http.request"}]

    async def receive():
        return messages.pop(0)

    body = await FarmASGIHandler().read_body(receive)
    assert body.read() == b"x" * 100
    assert body._rolled  # on disk, and on which disk: the (unnamed) file's directory
    assert os.readlink(f"/proc/self/fd/{body.fileno()}").startswith(str(tmp_path))


# -- thumbnails that claim to be huge ------------------------------------------------------------


def qoi_claiming(width: int, height: int) -> bytes:
    return b"qoif" + struct.pack(">IIBB", width, height, 3, 0) + b"\xfe\xed\x6b\x21" + b"\x00" * 7 + b"\x01"


def test_an_upload_whose_thumbnail_claims_13000_by_13000_pixels_is_stored_without_it(client):
    text = base64.b64encode(qoi_claiming(13000, 13000)).decode()
    block = f"; thumbnail_QOI begin 300x300 {len(text)}\n; {text}\n; thumbnail_QOI end\n"
    response = upload(client, "bomb.gcode", block.encode() + gcode_bytes(seconds=3723), json=True)
    assert response.status_code == 201
    file = GcodeFile.objects.get()
    assert (file.thumbnail_type, file.estimated_seconds) == ("", 3723)
    assert not library.thumbnail_path(file).exists()


def test_a_qoi_claiming_13000_by_13000_pixels_is_never_decoded(monkeypatch):
    from PIL import ImageFile

    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size) or load(image))
    assert library._browser_image(qoi_claiming(13000, 13000), "qoi") == (b"", "")
    assert decoded == []
    small = qoi_claiming(1, 1)
    assert library._browser_image(small, "qoi")[1] == "image/png"
    assert set(decoded) == {(1, 1)}


# -- nothing left behind ----------------------------------------------------------------------------

HOUR = 3600


def leftover(relative: str, *, age: float = 2 * HOUR, root: Path | None = None) -> Path:
    path = (root or library.files_dir()) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left over")
    return aged(path, age)


def aged(path: Path, age: float = 2 * HOUR) -> Path:
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_store_puts_the_bytes_in_place_before_the_row_commits(monkeypatch):
    seen = []
    save = GcodeFile.save

    def watching_save(file, *args, **kwargs):
        seen.append((library.stored_path(file).read_bytes(), library.thumbnail_path(file).exists()))
        save(file, *args, **kwargs)

    monkeypatch.setattr(GcodeFile, "save", watching_save)
    file = make_file(thumbnail=(1, 2, 3))
    assert seen == [(library.stored_path(file).read_bytes(), True)]
    assert incoming_files() == []


def test_parts_the_slicer_endpoint_ignores_are_removed_with_the_request():
    from printfarm.accounts.models import Role
    from printfarm.accounts.roles import set_role
    from printfarm.accounts.tokens import token_create
    from printfarm.api.auth import forget_tokens

    user = UserFactory()
    set_role(user, Role.OPERATOR)
    slicer = Client(HTTP_X_API_KEY=token_create(user, "slicer").secret)
    # OctoPrint's upload takes one file: the second part is received, then never stored.
    files = [
        SimpleUploadedFile("a.gcode", gcode_bytes()),
        SimpleUploadedFile("b.gcode", gcode_bytes(seconds=9)),
    ]
    forget_tokens()
    try:
        assert slicer.post("/api/files/local", {"file": files}).status_code == 201
    finally:
        forget_tokens()
    assert GcodeFile.objects.count() == 1
    assert incoming_files() == []


def test_an_upload_whose_storing_fails_leaves_no_part_file(client, monkeypatch):
    def failing(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(library, "_fill_metadata", failing)
    with pytest.raises(OSError):
        upload(client, "a.gcode", gcode_bytes())
    assert not any(p.is_file() for p in library.files_dir().rglob("*"))
    assert not GcodeFile.objects.exists()


def test_clean_removes_old_leftovers_and_keeps_what_is_live_or_fresh(settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = tmp_path / "tmp"
    live = make_file(thumbnail=(1, 2, 3))
    aged(library.stored_path(live))
    aged(library.thumbnail_path(live))
    history = make_file()
    Job.objects.create(file=history, state=Job.State.COMPLETED)
    GcodeFile.objects.filter(pk=history.pk).update(deleted_at=timezone.now())  # killed before the unlink
    aged(library.stored_path(history))
    sha = "ab" * 32
    gone = [
        leftover("incoming/0123.part"),
        leftover("outgoing/job7-0123.gcode"),  # a 3MF plate the poller was sending when killed
        leftover(f"ab/{sha}.gcode"),  # killed between the rename and the commit
        leftover(f"ab/{sha}.thumb"),
        library.stored_path(history),
        leftover("tmpab_c1234.upload.gcode", root=settings.FILE_UPLOAD_TEMP_DIR),  # Django's handler
    ]
    kept = [
        leftover("incoming/4567.part", age=60),  # may be another worker's upload in progress
        leftover("outgoing/job8-4567.gcode", age=60),  # a plate being sent
        leftover(f"cd/{'cd' * 32}.gcode", age=60),  # may be committing right now
        leftover("notes.txt", root=settings.FILE_UPLOAD_TEMP_DIR),
        library.stored_path(live),
        library.thumbnail_path(live),
    ]
    result = library.clean()
    assert sorted(result.removed) == sorted(gone)
    assert not any(p.exists() for p in gone)
    assert all(p.exists() for p in kept)
    assert (result.records, result.refused) == ([], [])
    assert GcodeFile.objects.count() == 2


def test_records_whose_bytes_are_missing_are_settled():
    alone, finished, waited_for, fine = (
        make_file("a.gcode"),
        make_file("b.gcode"),
        make_file("c.gcode"),
        make_file(),
    )
    Job.objects.create(file=finished, state=Job.State.FAILED)
    Job.objects.create(file=waited_for)
    for file in (alone, finished, waited_for):
        library.stored_path(file).unlink()
    result = library.clean()
    assert result.records == [
        f"removed the record of a.gcode (#{alone.pk}): its bytes were missing",
        f"removed the record of b.gcode (#{finished.pk}): its bytes were missing",
        f"kept c.gcode (#{waited_for.pk}): its bytes are missing and jobs wait for it",
    ]
    assert not GcodeFile.objects.filter(pk=alone.pk).exists()
    assert GcodeFile.objects.get(pk=finished.pk).deleted_at is not None  # history keeps its name
    assert GcodeFile.objects.present().filter(pk__in=[waited_for.pk, fine.pk]).count() == 2


def test_a_library_that_disagrees_with_its_database_wholesale_is_left_alone():
    orphans = [leftover(f"{n:02x}/{f'{n:02x}' * 32}.gcode") for n in range(11)]
    result = library.clean()
    assert result.removed == []
    assert result.refused == [
        "11 of 11 stored files have no record: left alone. Is DATABASE_URL the library's database?"
    ]
    assert all(p.exists() for p in orphans)
    for path in orphans:
        path.unlink()
    files = [make_file() for _ in range(11)]
    for file in files:
        library.stored_path(file).unlink()
    result = library.clean()
    assert result.refused[0].startswith("11 of 11 files have no bytes on disk: records left alone.")
    assert GcodeFile.objects.present().count() == 11


def test_reuploading_content_whose_bytes_went_missing_restores_them(client):
    data = gcode_bytes()
    upload(client, "a.gcode", data)
    file = GcodeFile.objects.get()
    library.stored_path(file).unlink()
    response = upload(client, "a.gcode", data, json=True)
    assert response.json()["stored"][0]["created"] is True
    assert library.stored_path(file).read_bytes() == data
    assert GcodeFile.objects.count() == 1


def test_clean_files_reports_what_it_removed_and_a_dry_run_removes_nothing():
    part = leftover("incoming/0123.part")
    out = io.StringIO()
    call_command("clean_files", "--dry-run", stdout=out)
    assert out.getvalue() == f"would remove {part}\n"
    assert part.exists()
    out = io.StringIO()
    call_command("clean_files", stdout=out)
    assert out.getvalue() == f"removed {part}\n"
    assert not part.exists()
    out = io.StringIO()
    call_command("clean_files", stdout=out)
    assert out.getvalue() == "clean_files: nothing to clean.\n"
