"""Cura's OctoPrint Connection plugin (fieldOfView/Cura-OctoPrintPlugin 3.7) against the farm,
over real HTTP: the requests it sends when it connects, while it monitors, and when the user
presses "Print with OctoPrint" or "Queue job", with its headers and multipart part order.

What the plugin does with each answer (OctoPrintOutputDevice.py): anything but a 200 from
`/api/printer` marks the printer offline; it reads every state flag of `/api/printer` and
`job.file.name` and `progress.printTime` of `/api/job` without a default (a missing one is a
crash in its poll loop); after an upload it takes the part of `Location` after `api/` as the
file's endpoint, polls it until `gcodeAnalysis.progress` is there, then posts its select
command to it.
"""

from __future__ import annotations

import json

import httpx
import pytest

from jobs.models import GcodeFile, Job
from jobs.tests.factories import gcode_bytes, make_file
from printers.models import Tag
from printers.state import State
from printers.tests.factories import PrinterFactory, UserFactory, set_status
from printfarm.accounts.models import Role
from printfarm.accounts.tokens import token_create
from printfarm.testing import web_server

pytestmark = pytest.mark.django_db(transaction=True)

USER_AGENT = "Cura/5.8.1 OctoPrintPlugin/3.7.3"
# Qt's QHttpMultiPart boundary ("boundary_.oOo._" + base64), sent quoted in the Content-Type.
BOUNDARY = "boundary_.oOo._MjAyNi0wMS0wMSBwcmludGZhcm0+/Q=="
FLAGS = ("operational", "paused", "pausing", "printing", "cancelling", "ready", "error", "closedOrError")


class Cura:
    """The plugin's requests: X-Api-Key and its User-Agent on each, and the JSON content type
    it sets even on GETs (`_createEmptyRequest`)."""

    def __init__(self, http: httpx.Client, key: str) -> None:
        self.http = http
        self.headers = {"X-Api-Key": key, "User-Agent": USER_AGENT}

    def get(self, end_point: str) -> httpx.Response:
        return self.http.get(end_point, headers={**self.headers, "Content-Type": "application/json"})

    def command(self, end_point: str, command: dict) -> httpx.Response:
        """`_sendCommandToApi`: a JSON object posted to the endpoint."""
        headers = {**self.headers, "Content-Type": "application/json"}
        return self.http.post(end_point, content=json.dumps(command).encode(), headers=headers)

    def connect(self) -> dict[str, httpx.Response]:
        """`connect()` then `getAdditionalData()`, as the plugin orders them."""
        return {
            "printer": self.get("/api/printer"),
            "job": self.get("/api/job"),
            "settings": self.get("/api/settings"),
            "version": self.get("/api/version"),
            "login": self.command("/api/login", {"passive": True}),
            "printerprofiles": self.get("/api/printerprofiles"),
        }

    def upload(self, name: str, data: bytes, *, path: str = "", select: bool, print_: bool) -> httpx.Response:
        """`_sendPrintJob`: parts `path`, `file`, then `select` and `print` when it prints at once."""
        parts = [(b'name="path"', path.encode(), b"text/plain")]
        parts.append((f'name="file"; filename="{name}"'.encode(), data, b"application/octet-stream"))
        if select:
            parts.append((b'name="select"', b"true", b"text/plain"))
        if print_:
            parts.append((b'name="print"', b"true", b"text/plain"))
        body = b"".join(
            b"--%s\r\nContent-Disposition: form-data; %s\r\nContent-Type: %s\r\n\r\n%s\r\n"
            % (BOUNDARY.encode(), disposition, kind, content)
            for disposition, content, kind in parts
        )
        body += b"--%s--\r\n" % BOUNDARY.encode()
        headers = {**self.headers, "Content-Type": f'multipart/form-data; boundary="{BOUNDARY}"'}
        return self.http.post("/api/files/local", content=body, headers=headers)


def end_point(location: str) -> str:
    """What the plugin polls and posts to after an upload: `Location` after its `api/`."""
    return "/api/" + location.split("api/", 1)[1]


def cura_state(printer: dict) -> str:
    """The printer state Cura derives from `/api/printer`'s flags (its order of checks)."""
    flags = printer["state"]["flags"]
    if flags["error"] or flags["closedOrError"]:
        return "error"
    if flags["paused"] or flags["pausing"]:
        return "paused"
    if flags["printing"]:
        return "printing"
    if flags["cancelling"]:
        return "aborted"
    return "idle" if flags["ready"] or flags["operational"] else "offline"


def operator_key(**where) -> str:
    return token_create(UserFactory(role=Role.OPERATOR), "Cura", **where).secret


def test_connecting_with_an_unbound_token_describes_the_farm():
    set_status(PrinterFactory(), State.IDLE, hotend_actual=24.0)
    set_status(PrinterFactory(), State.PRINTING, hotend_actual=215.0, progress=40.0)
    user = UserFactory(username="alice", role=Role.OPERATOR)
    key = token_create(user, "Cura").secret
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        probe = cura.get("/plugin/appkeys/probe")  # the discovery dialog asks for AppKeys first
        answers = cura.connect()
        connection = cura.get("/api/connection")
        connect = cura.command("/api/connection", {"command": "connect"})

    assert probe.status_code == 404 and probe.text  # not 204: Cura asks for a key instead
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 200)
    assert all(r.headers["Content-Type"] == "application/json" for r in answers.values())
    assert answers["version"].json()["server"]
    assert answers["login"].json()["name"] == "alice"
    profiles = answers["printerprofiles"].json()["profiles"]
    assert [p["name"] for p in profiles.values() if p["current"]] == ["printfarm"]

    printer = answers["printer"].json()
    assert set(FLAGS) <= set(printer["state"]["flags"])
    # A farm with a free printer takes the print although another one is busy printing.
    assert cura_state(printer) == "idle" and printer["state"]["flags"]["ready"] is True
    assert "temperature" not in printer  # no one printer is meant

    job = answers["job"].json()
    assert job["job"]["file"]["name"] is None  # OctoPrint's "no file selected"
    assert set(job["progress"]) >= {"completion", "printTime", "printTimeLeft"}
    assert job["state"] == "Operational"

    assert connection.status_code == 200 and connection.json()["current"]["state"] == "Operational"
    assert connect.status_code == 204


def test_a_token_bound_to_a_printer_shows_its_temperatures_and_state():
    printer = PrinterFactory(name="mk4-left", model="Original Prusa MK4")
    set_status(
        printer, State.PRINTING, hotend_actual=214.6, hotend_target=215.0, bed_actual=59.8, bed_target=60.0
    )
    set_status(PrinterFactory(), State.IDLE)
    key = operator_key(printer=printer)
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        printing = cura.get("/api/printer").json()
        profile = next(iter(cura.get("/api/printerprofiles").json()["profiles"].values()))
        set_status(printer, State.PAUSED, hotend_actual=180.0, hotend_target=215.0)
        paused = cura.get("/api/printer").json()
        set_status(printer, State.OFFLINE)
        offline = cura.get("/api/printer")

    assert (profile["name"], profile["model"]) == ("mk4-left", "Original Prusa MK4")
    assert cura_state(printing) == "printing" and printing["state"]["text"] == "Printing"
    assert printing["temperature"]["tool0"] == {"actual": 214.6, "target": 215.0, "offset": 0}
    assert printing["temperature"]["bed"] == {"actual": 59.8, "target": 60.0, "offset": 0}
    assert cura_state(paused) == "paused" and paused["temperature"]["tool0"]["actual"] == 180.0
    # Still a 200 (a 409 would make Cura refuse to print): the farm holds jobs until it is back.
    assert offline.status_code == 200
    assert offline.json()["state"]["text"] == "Offline" and cura_state(offline.json()) == "idle"
    assert offline.json()["temperature"]["tool0"]["actual"] is None


def test_a_tag_with_one_printer_is_that_printer_and_with_several_the_farm():
    set_status(PrinterFactory(tags=["resin"]), State.IDLE, hotend_actual=30.0)
    for _ in range(2):
        set_status(PrinterFactory(tags=["pla"]), State.PRINTING)
    one, several = (
        operator_key(tag=Tag.objects.get(name="resin")),
        operator_key(tag=Tag.objects.get(name="pla")),
    )
    with web_server() as url, httpx.Client(base_url=url) as http:
        one_printer = Cura(http, one).get("/api/printer").json()
        tagged = Cura(http, several).get("/api/printer").json()
    assert one_printer["temperature"]["tool0"]["actual"] == 30.0
    assert "temperature" not in tagged
    assert cura_state(tagged) == "idle" and tagged["state"]["flags"]["ready"] is False  # none free


def test_print_with_octoprint_queues_the_job_and_the_monitor_follows_it():
    printer = set_status(PrinterFactory(name="mk4-left"), State.IDLE)
    key = operator_key(printer=printer)
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        cura.connect()
        upload = cura.upload("cube.gcode", gcode_bytes(seconds=600), path="cura", select=True, print_=True)
        job = Job.objects.get()
        queued = cura.get("/api/job").json()

        Job.objects.filter(pk=job.pk).update(
            state=Job.State.PRINTING, printer=printer, printer_name="mk4-left"
        )
        set_status(printer, State.PRINTING, progress=25.0, elapsed=150, remaining=450, file="cube.gcode")
        printing = cura.get("/api/job").json()
        set_status(printer, State.PAUSED, progress=25.0, elapsed=150, remaining=450)
        paused = cura.get("/api/job").json()

        Job.objects.filter(pk=job.pk).update(state=Job.State.COMPLETED, print_seconds=610)
        set_status(printer, State.FINISHED)
        done = cura.get("/api/job").json()

    assert upload.status_code == 201, upload.text
    body = upload.json()
    assert body["effectivePrint"] is True
    file = GcodeFile.objects.get()
    assert upload.headers["Location"] == body["files"]["local"]["refs"]["resource"]
    assert upload.headers["Location"].startswith(url + "/api/files/local/")
    assert upload.headers["Location"].endswith("/cube.gcode")
    assert body["files"]["local"]["refs"]["printfarm"] == f"{url}/files/{file.pk}/"
    assert (job.target_printer, job.state) == (printer, Job.State.QUEUED)

    assert queued["job"]["file"]["name"] == "cube.gcode"
    assert queued["job"]["estimatedPrintTime"] == 600
    assert queued["state"] == "Starting" and queued["printfarm"]["job"] == job.pk
    assert printing["state"] == "Printing"
    progress = printing["progress"]
    assert (progress["completion"], progress["printTime"], progress["printTimeLeft"]) == (25.0, 150, 450)
    assert paused["state"] == "Paused"
    assert done["state"] == "Operational" and done["progress"]["completion"] == 100.0
    assert done["progress"]["printTime"] == 610


def test_waiting_for_analysis_then_select_and_print_at_the_location():
    key = operator_key()
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        # With analysis to wait for, Cura uploads without select/print, polls the file, then selects.
        upload = cura.upload(
            "bracket.gcode", gcode_bytes(seconds=3600), path="parts", select=False, print_=False
        )
        nothing_yet = Job.objects.exists()
        target = end_point(upload.headers["Location"])
        info = cura.get(target)
        selected = cura.command(target, {"command": "select", "print": True})
        monitored = cura.get("/api/job").json()

    assert upload.status_code == 201 and upload.json()["effectivePrint"] is False
    assert not nothing_yet
    assert info.status_code == 200
    analysis = info.json()["gcodeAnalysis"]
    assert "progress" in analysis and analysis["estimatedPrintTime"] == 3600
    assert analysis["filament"]["tool0"]["length"] == pytest.approx(1234.5)
    assert selected.status_code == 204
    job = Job.objects.get()
    assert (job.file.name, job.target_printer, job.state) == ("bracket.gcode", None, Job.State.QUEUED)
    assert monitored["job"]["file"]["name"] == "bracket.gcode" and monitored["printfarm"]["job"] == job.pk


def test_queue_job_while_the_printer_is_busy_queues_it_for_that_printer():
    # Cura offers "Queue job" when the token's printer is printing: it uploads, then selects
    # without printing. On a farm, selecting is queueing: the job waits for that printer.
    printer = set_status(PrinterFactory(), State.PRINTING, progress=50.0)
    key = operator_key(printer=printer)
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        busy = cura.get("/api/printer").json()["state"]["flags"]
        upload = cura.upload("later.gcode", gcode_bytes(), select=False, print_=False)
        assert not Job.objects.exists()  # a plain upload only fills the library
        selected = cura.command(end_point(upload.headers["Location"]), {"command": "select"})
        monitored = cura.get("/api/job").json()
    assert busy["printing"] and not busy["ready"]
    assert selected.status_code == 204
    job = Job.objects.get()
    assert (job.file.name, job.target_printer, job.state) == ("later.gcode", printer, Job.State.QUEUED)
    assert monitored["job"]["file"]["name"] == "later.gcode"


def test_select_and_print_by_folder_and_name_takes_the_newest_present_entry():
    printer = PrinterFactory()
    older = make_file("gear wheel.gcode")
    newer = make_file("gear wheel.gcode")
    elsewhere = make_file("gear wheel.gcode")
    GcodeFile.objects.filter(pk__in=[older.pk, newer.pk]).update(folder="cura/gears")
    GcodeFile.objects.filter(pk=newer.pk).update(uploaded_at=older.uploaded_at.replace(year=2099))
    key = operator_key(printer=printer)
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        info = cura.get("/api/files/local/cura/gears/gear%20wheel.gcode")
        selected = cura.command(
            "/api/files/local/cura/gears/gear%20wheel.gcode", {"command": "select", "print": True}
        )
    assert info.status_code == 200 and info.json()["path"] == "cura/gears/gear wheel.gcode"
    assert info.json()["refs"]["resource"] == f"{url}/api/files/local/cura/gears/gear%20wheel.gcode"
    assert selected.status_code == 204
    job = Job.objects.get()
    assert (job.file_id, job.target_printer) == (newer.pk, printer)
    assert elsewhere.folder == ""


def test_an_unknown_file_is_a_404_cura_shows():
    key = operator_key()
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        info = cura.get("/api/files/local/cura/missing.gcode")
        selected = cura.command("/api/files/local/cura/missing.gcode", {"command": "select", "print": True})
    for response in (info, selected):
        assert response.status_code == 404
        # Cura shows an error's text only when it is text/plain.
        assert response.headers["Content-Type"] == "text/plain"
        assert "missing.gcode" in response.text
    assert not Job.objects.exists()


def test_a_viewer_token_monitors_but_may_not_print():
    make_file("part.gcode")
    key = token_create(UserFactory(role=Role.VIEWER), "Cura").secret
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        answers = cura.connect()
        selected = cura.command("/api/files/local/part.gcode", {"command": "select", "print": True})
    assert answers["printer"].status_code == 200 and answers["job"].status_code == 200
    assert selected.status_code == 403 and "operator role" in selected.text
    assert not Job.objects.exists()


def test_what_the_farm_does_not_offer_answers_in_words_cura_shows():
    key = operator_key()
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        answers = {
            "appkeys": http.post("/plugin/appkeys/request", json={"app": "Cura"}),
            "gcode": cura.command("/api/printer/command", {"commands": ["G28"]}),
            "pause": cura.command("/api/job", {"command": "pause", "action": "pause"}),
            "disconnect": cura.command("/api/connection", {"command": "disconnect"}),
            "analyse": cura.command("/api/files/local/x.gcode", {"command": "analyse"}),
        }
    assert {name: r.status_code for name, r in answers.items()} == {
        "appkeys": 404,  # Cura then asks for the key to be pasted
        "gcode": 404,
        "pause": 409,
        "disconnect": 400,
        "analyse": 404,
    }
    assert answers["appkeys"].json()["error"]  # any other client is answered in JSON
    assert all(
        r.headers["Content-Type"] == "text/plain" and r.text
        for name, r in answers.items()
        if name != "appkeys"
    )


def test_the_monitor_shows_the_job_of_this_tokens_uploads_only():
    printer = set_status(PrinterFactory(), State.IDLE)
    user = UserFactory(role=Role.OPERATOR)
    bound, unbound = token_create(user, "Cura mk4", printer=printer).secret, token_create(user, "Cura").secret
    someone_else = operator_key(printer=printer)
    with web_server() as url, httpx.Client(base_url=url) as http:
        Cura(http, bound).upload("first.gcode", gcode_bytes(seconds=61), select=True, print_=True)
        Cura(http, bound).upload("second.gcode", gcode_bytes(seconds=62), select=True, print_=True)
        seen = {key: Cura(http, key).get("/api/job").json() for key in (bound, unbound, someone_else)}
    assert seen[bound]["job"]["file"]["name"] == "second.gcode"
    assert seen[unbound]["job"]["file"]["name"] is None  # its jobs would go to any printer
    assert seen[someone_else]["job"]["file"]["name"] is None


def test_a_refused_upload_is_worded_so_cura_shows_it(files_dir):
    key = operator_key()
    with web_server() as url, httpx.Client(base_url=url) as http:
        cura = Cura(http, key)
        wrong_kind = cura.upload("cube.stl", b"solid cube\n", select=True, print_=True)
        empty = cura.upload("empty.gcode", b"", select=True, print_=True)
        escaping = cura.upload("cube.gcode", gcode_bytes(), path="../../etc", select=True, print_=True)
    for response in (wrong_kind, empty, escaping):
        assert response.status_code == 400
        assert response.headers["Content-Type"] == "text/plain"  # else Cura says "unknown error"
    assert "not a G-code file" in wrong_kind.text
    assert "empty" in empty.text
    assert ".." in escaping.text
    assert not GcodeFile.objects.exists() and not Job.objects.exists()
    assert not [p for p in files_dir.rglob("*") if p.is_file()]
