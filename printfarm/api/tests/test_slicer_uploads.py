"""PrusaSlicer's and OrcaSlicer's "send to OctoPrint", byte for byte, against the farm over real HTTP.

Both slicers share PrusaSlicer's src/slic3r/Utils/OctoPrint.cpp: a connection test
(GET /api/version with X-Api-Key), then one libcurl POST /api/files/local with the form parts
`print` ("true"/"false"), `path` (the folder typed before the name, often "") and `file`, in
that order; libcurl's boundary is not quoted, and for a large body libcurl sends
`Expect: 100-continue` and waits for the server's go-ahead before the body.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from jobs import library
from jobs.models import GcodeFile, Job
from jobs.tests.factories import gcode_bytes
from printers.tests.factories import UserFactory
from printfarm.accounts.models import AuditEntry, Role
from printfarm.accounts.roles import set_role
from printfarm.accounts.tokens import token_create, token_revoke
from printfarm.testing import web_server

pytestmark = pytest.mark.django_db(transaction=True)

# OctoPrint (1.4 and later) answers a missing or wrong key with Flask's 403 text as {"error": ...}.
OCTOPRINT_FORBIDDEN = (
    "You don't have the permission to access the requested resource. "
    "It is either read-protected or not readable by the server."
)


def key_for(role: Role) -> tuple[str, object]:
    user = UserFactory()
    set_role(user, role)
    return token_create(user, f"{role.value} slicer").secret, user


def curl_form(parts: list[tuple[str, str | bytes, str | None]]) -> tuple[str, bytes]:
    """(content type, body) as libcurl's mime API writes them: one (name, value, filename) a part."""
    boundary = "-" * 24 + secrets.token_hex(11)
    body = b""
    for name, value, filename in parts:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"\r\nContent-Type: application/octet-stream'
        data = value.encode() if isinstance(value, str) else value
        body += f"--{boundary}\r\n{disposition}\r\n\r\n".encode() + data + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", body + f"--{boundary}--\r\n".encode()


def prusaslicer_form(name: str, data: bytes, *, folder: str = "", start: bool = False) -> tuple[str, bytes]:
    return curl_form(
        [("print", "true" if start else "false", None), ("path", folder, None), ("file", data, name)]
    )


class Answer:
    def __init__(self, head: bytes, body: bytes, continued: bool) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        self.body = body
        self.continued = continued  # the server said "100 Continue" and the body was sent

    def json(self) -> dict:
        return json.loads(self.body)


def _read_head(sock: socket.socket, buffer: bytearray) -> bytes:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    return head


def curl_post(
    url: str, target: str, headers: dict[str, str], body: bytes, *, length: int | None = None
) -> Answer:
    """POST as libcurl does with `Expect: 100-continue`: the headers, then the body only once the
    server has said "100 Continue"; a final answer first means the body is never sent."""
    where = urlsplit(url)
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {where.netloc}",
        "User-Agent: PrusaSlicer/2.8.1",
        "Accept: */*",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body) if length is None else length}", "Expect: 100-continue", "", ""]
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode())
        buffer = bytearray()
        head = _read_head(sock, buffer)
        continued = head.startswith(b"HTTP/1.1 100")
        if continued:
            sock.sendall(body)
            head = _read_head(sock, buffer)
        answer = Answer(head, b"", continued)
        size = int(answer.headers.get("content-length", "0"))
        while len(buffer) < size:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
        answer.body = bytes(buffer[:size])
        if answer.headers.get("connection") == "close":
            assert sock.recv(1) == b"", "the server closes the connection after a refusal"
    return answer


def nothing_kept(files_dir: Path) -> bool:
    on_disk = [p for p in files_dir.rglob("*") if p.is_file()] if files_dir.exists() else []
    return not GcodeFile.objects.exists() and not on_disk and not AuditEntry.objects.exists()


# -- the whole sequence ---------------------------------------------------------------------------


def test_prusaslicer_tests_the_connection_then_uploads_and_prints(files_dir):
    key, user = key_for(Role.OPERATOR)
    data = gcode_bytes(seconds=600)
    with web_server() as url:
        version = httpx.get(f"{url}/api/version", headers={"X-Api-Key": key})
        content_type, body = prusaslicer_form("cube.gcode", data, start=True)
        answer = curl_post(url, "/api/files/local", {"X-Api-Key": key, "Content-Type": content_type}, body)
    assert version.status_code == 200 and version.json()["text"].startswith("OctoPrint")
    assert answer.continued and answer.status == 201, answer.body
    file = GcodeFile.objects.get()
    assert (file.name, file.folder, file.size, file.uploaded_by) == ("cube.gcode", "", len(data), user)
    assert library.stored_path(file).read_bytes() == data
    assert Job.objects.get().file == file


def test_the_name_and_folder_typed_in_the_slicer_are_kept_and_the_bytes_stored_once(files_dir):
    key, _ = key_for(Role.OPERATOR)
    data = gcode_bytes(seconds=600)
    sends = [
        ("cube.gcode", "", False),
        ("cube-for-anna.gcode", "", True),  # same content, a new name: a new entry, and its job
        ("cube.gcode", "customers/anna", False),  # same name in a folder: another entry
        ("cube.gcode", "/customers/anna/", False),  # the same folder again: reused
    ]
    with web_server() as url:
        answers = []
        for name, folder, start in sends:
            content_type, body = prusaslicer_form(name, data, folder=folder, start=start)
            answers.append(
                curl_post(url, "/api/files/local", {"X-Api-Key": key, "Content-Type": content_type}, body)
            )
    assert [a.status for a in answers] == [201] * 4, [a.body for a in answers]
    entries = sorted(GcodeFile.objects.values_list("folder", "name"))
    assert entries == [("", "cube-for-anna.gcode"), ("", "cube.gcode"), ("customers/anna", "cube.gcode")]
    assert Job.objects.get().file.name == "cube-for-anna.gcode"
    assert {library.stored_path(f) for f in GcodeFile.objects.all()} == {
        library.stored_path(GcodeFile.objects.first())
    }
    assert len(list(files_dir.rglob("*.gcode"))) == 1
    assert "already in the library" in AuditEntry.objects.order_by("pk").last().detail


# -- refused before the body is read --------------------------------------------------------------


def _revoked_key() -> str:
    key, user = key_for(Role.OPERATOR)
    token_revoke(user.api_tokens.get())
    return key


@pytest.mark.parametrize(
    ("who", "message"),
    [
        ("viewer", "Uploading needs the operator role; this token's user is a viewer."),
        ("revoked", OCTOPRINT_FORBIDDEN),
        ("unknown", OCTOPRINT_FORBIDDEN),
        ("missing", "create a printfarm API token"),
    ],
)
@pytest.mark.parametrize("sent_as", ["X-Api-Key", "apikey", "Bearer"])
def test_a_key_that_may_not_upload_is_refused_before_the_body_is_sent(
    settings, files_dir, who, message, sent_as
):
    settings.PRINTFARM_UPLOAD_MAX_BYTES = 100 * 1024**2
    key = {
        "viewer": lambda: key_for(Role.VIEWER)[0],
        "revoked": _revoked_key,
        "unknown": lambda: "pf_000000000000_" + "x" * 43,
        "missing": lambda: "",
    }[who]()
    headers, target = (
        {"Content-Type": "multipart/form-data; boundary=------------------------abc"},
        "/api/files/local",
    )
    if key and sent_as == "X-Api-Key":
        headers["X-Api-Key"] = key
    elif key and sent_as == "Bearer":
        headers["Authorization"] = f"Bearer {key}"
    elif key:
        target += f"?apikey={key}"
    with web_server() as url:
        # 50 MB announced, none of it sent unless the server asks for it.
        answer = curl_post(url, target, headers, b"", length=50 * 1024**2)
    assert not answer.continued
    assert answer.status == 403
    assert answer.headers["connection"] == "close"
    assert answer.headers["content-type"] == "application/json"
    assert message in answer.json()["error"]
    assert nothing_kept(files_dir)


def test_a_body_sent_without_waiting_is_refused_unstored_and_the_refusal_arrives(files_dir):
    # Qt (Cura) sends the body right behind the headers: the slicer must still read the answer.
    key, _ = key_for(Role.VIEWER)
    content_type, body = prusaslicer_form("cube.gcode", gcode_bytes(padding=3_000_000))
    with web_server() as url:
        answer = httpx.post(
            f"{url}/api/files/local", content=body, headers={"X-Api-Key": key, "Content-Type": content_type}
        )
    assert answer.status_code == 403
    assert "operator role" in answer.json()["error"]
    assert nothing_kept(files_dir)


@pytest.mark.parametrize("endpoint", ["/api/version", "/api/server", "/api/settings", "/api/printerprofiles"])
def test_every_octoprint_endpoint_answers_a_bad_key_as_octoprint_does(endpoint):
    revoked = _revoked_key()
    with web_server() as url, httpx.Client(base_url=url) as http:
        unknown = http.get(endpoint, headers={"X-Api-Key": "pf_000000000000_" + "x" * 43})
        gone = http.get(endpoint, headers={"X-Api-Key": revoked})
        missing = http.get(endpoint)
    for answer in (unknown, gone):
        assert answer.status_code == 403
        assert answer.json() == {"error": OCTOPRINT_FORBIDDEN}
    assert missing.status_code == 403
    assert missing.json()["error"].startswith(OCTOPRINT_FORBIDDEN)
    assert "printfarm API token" in missing.json()["error"]


# -- bad input: a status and a message the slicer shows, nothing left behind -----------------------


@pytest.mark.parametrize(
    ("name", "folder", "error"),
    [
        ("../../etc/cube.gcode", "", "../../etc/cube.gcode: a file name can't hold a folder"),
        ("C:\\models\\cube.gcode", "", "a file name can't hold a folder"),
        ("cu\x1bbe.gcode", "", "control characters"),
        ("x" * 300 + ".gcode", "", "longer than 255 characters"),
        ("cube.gcode", "../outside", "../outside: a folder can't contain"),
        ("cube.gcode", "a\x00b", "control characters"),
        ("cube.gcode", "x" * 300, "longer than 255 characters"),
        ("cube.stl", "", "cube.stl: not a G-code file"),
    ],
)
def test_a_bad_name_or_folder_is_refused_with_a_message(files_dir, name, folder, error):
    key, _ = key_for(Role.OPERATOR)
    content_type, body = prusaslicer_form(name, gcode_bytes(), folder=folder)
    with web_server() as url:
        answer = curl_post(url, "/api/files/local", {"X-Api-Key": key, "Content-Type": content_type}, body)
    assert answer.status == 400
    assert error in answer.json()["error"]
    assert nothing_kept(files_dir)


def test_an_upload_cut_before_its_closing_boundary_is_refused(files_dir):
    key, _ = key_for(Role.OPERATOR)
    content_type, body = prusaslicer_form("cube.gcode", gcode_bytes(padding=200_000))
    cut = body[: len(body) // 2]
    with web_server() as url:
        answer = curl_post(url, "/api/files/local", {"X-Api-Key": key, "Content-Type": content_type}, cut)
    assert answer.status == 400
    assert "cube.gcode: the upload ended before the file did" in answer.json()["error"]
    assert nothing_kept(files_dir)


@pytest.mark.parametrize(
    ("content_type", "body", "error"),
    [
        (None, b"", "the file is empty"),
        ("application/json", b'{"file": "cube.gcode"}', "No file arrived"),
        ("multipart/form-data", b"--x\r\n\r\n", "The request could not be read"),  # no boundary
    ],
)
def test_an_empty_file_or_the_wrong_kind_of_body_is_refused(files_dir, content_type, body, error):
    key, _ = key_for(Role.OPERATOR)
    if content_type is None:
        content_type, body = prusaslicer_form("cube.gcode", b"")
    with web_server() as url:
        answer = curl_post(url, "/api/files/local", {"X-Api-Key": key, "Content-Type": content_type}, body)
    assert answer.status == 400
    assert error in answer.json()["error"]
    assert nothing_kept(files_dir)


# -- the request log names the token's user -------------------------------------------------------


def test_the_request_log_names_the_token_user(caplog, files_dir):
    caplog.set_level(logging.INFO, logger="printfarm.requests")
    key, user = key_for(Role.OPERATOR)
    viewer_key, viewer = key_for(Role.VIEWER)
    content_type, body = prusaslicer_form("cube.gcode", gcode_bytes())
    with web_server() as url, httpx.Client(base_url=url) as http:
        http.get("/api/version", headers={"X-Api-Key": key})
        http.get("/api/v1/printers", headers={"Authorization": f"Bearer {key}"})
        curl_post(url, "/api/files/local", {"X-Api-Key": key, "Content-Type": content_type}, body)
        curl_post(url, "/api/files/local", {"X-Api-Key": viewer_key, "Content-Type": content_type}, body)
    lines = [r.getMessage() for r in caplog.records if r.name == "printfarm.requests"]
    expected = [
        rf"GET /api/version 200 \S+ user={user.pk} id=\w+",
        rf"GET /api/v1/printers 200 \S+ user={user.pk} id=\w+",
        rf"POST /api/files/local 201 \S+ user={user.pk} id=\w+",
        rf"POST /api/files/local 403 \S+ user={viewer.pk} id=\w+",
    ]
    assert len(lines) == len(expected), lines
    for pattern, line in zip(expected, lines, strict=True):
        assert re.fullmatch(pattern, line), line
