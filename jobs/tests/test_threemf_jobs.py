"""3MF files in the queue: one job per plate, the plate's G-code sent to G-code printers, and
matching that knows the printer model and nozzle a file was sliced for."""

from __future__ import annotations

import hashlib
import uuid
import zipfile
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from jobs import library, services
from jobs.library import IncomingFile, files_dir
from jobs.matching import Candidate, Needs, ReasonCode, mismatches
from jobs.models import GcodeFile, Job
from jobs.tests.test_dispatch import add_printers, count, running
from jobs.tests.threemf_samples import two_plates, write_threemf
from jobs.transfer import remote_name_for
from jobs.waiting import explain_waiting
from printers.models import Printer
from printers.services import printer_create
from printfarm.testing import eventually


def store_threemf(name: str, data: bytes) -> GcodeFile:
    incoming = files_dir() / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f"{uuid.uuid4().hex}.part"
    path.write_bytes(data)
    return library.store(
        IncomingFile(path=path, name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    ).file


@pytest.fixture
def set_3mf(db, tmp_path) -> GcodeFile:
    return store_threemf("set.gcode.3mf", two_plates(tmp_path / "set.gcode.3mf").read_bytes())


# -- one job per plate ---------------------------------------------------------------------------


def test_a_two_plate_file_queues_one_job_per_plate(set_3mf):
    jobs = services.jobs_create(file=set_3mf, quantity=2)
    assert [job.plate for job in jobs] == [1, 2, 1, 2]
    assert [e.reason for e in jobs[1].events.all()] == ["plate 2"]


def test_chosen_plates_only(set_3mf):
    (job,) = services.jobs_create(file=set_3mf, plates=[2])
    assert job.plate == 2


def test_an_unknown_plate_is_refused(set_3mf):
    with pytest.raises(services.JobError, match="has no plate 3"):
        services.jobs_create(file=set_3mf, plates=[3])
    assert not Job.objects.exists()


def test_plain_gcode_jobs_have_no_plate(db):
    from jobs.tests.factories import make_file

    (job,) = services.jobs_create(file=make_file())
    assert job.plate is None


def test_a_plates_filament_is_its_own(set_3mf):
    first, second = services.jobs_create(file=set_3mf)
    assert services.filament_used(first, 100.0) == 3300.0
    assert services.filament_used(second, 50.0) == 900.0  # (1000 + 800) mm, half printed


def test_a_requeued_job_keeps_its_plate(set_3mf):
    _, second = services.jobs_create(file=set_3mf)
    services.job_cancel(second)
    second.refresh_from_db()
    assert services.job_requeue(second).plate == 2


def test_a_plate_goes_to_a_gcode_printer_as_its_plate_gcode(set_3mf):
    printer = Printer(name="k", protocol=Printer.Protocol.MOONRAKER)
    _, job = services.jobs_create(file=set_3mf)
    job.printer = printer
    assert remote_name_for(job) == f"set_plate2-job{job.pk}.gcode"


# -- transfer to a simulated Moonraker printer ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_each_plate_is_sent_to_moonraker_as_its_own_gcode(make_farm, tmp_path):
    farm = await make_farm("moonraker", count=2)
    await add_printers(farm)
    path = two_plates(tmp_path / "set.gcode.3mf")
    with zipfile.ZipFile(path) as archive:
        plates = {i: archive.read(f"Metadata/plate_{i}.gcode") for i in (1, 2)}
    file = await sync_to_async(store_threemf)("set.gcode.3mf", path.read_bytes())
    jobs = await sync_to_async(services.jobs_create)(file=file, action=Job.Action.UPLOAD)

    async with running():
        await eventually(lambda: _completed(2))

    # Either printer may have taken either plate (an upload-only job frees its printer at once).
    sent = {
        p.name: p.read_bytes()
        for sim in farm.printers
        if sim.files_dir.exists()
        for p in sim.files_dir.iterdir()
    }
    assert sent == {f"set_plate{job.plate}-job{job.pk}.gcode": plates[job.plate] for job in jobs}
    assert not list((files_dir() / "outgoing").iterdir())  # the extracted plates are gone


async def _completed(n: int) -> bool:
    return await count(state=Job.State.COMPLETED) == n


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_3mf_with_a_plate_gone_fails_its_job_with_the_reason(make_farm, tmp_path):
    farm = await make_farm("moonraker", count=1)
    await add_printers(farm)
    file = await sync_to_async(store_threemf)(
        "one.gcode.3mf", write_threemf(tmp_path / "one.gcode.3mf").read_bytes()
    )
    (job,) = await sync_to_async(services.jobs_create)(file=file, action=Job.Action.UPLOAD)
    # The stored bytes replaced behind the library's back by an archive without that plate.
    other = write_threemf(tmp_path / "other.gcode.3mf", with_gcode=False)
    library.stored_path(file).write_bytes(other.read_bytes())

    async with running():
        await eventually(lambda: _failed())
    job = await Job.objects.aget(pk=job.pk)
    assert "Can't take plate 1 out of one.gcode.3mf" in job.reason


async def _failed() -> bool:
    return await count(state=Job.State.FAILED) == 1


# -- matching ------------------------------------------------------------------------------------


def printer(**fields) -> Candidate:
    return Candidate(pk=1, name="p", **({"nozzle": Decimal("0.4")} | fields))


@pytest.mark.parametrize(
    ("needs", "candidate", "reasons"),
    [
        (
            Needs(1, sliced_model="Bambu Lab P1S"),
            printer(model="Bambu Lab X1 Carbon"),
            ["sliced for Bambu Lab P1S, printer is Bambu Lab X1 Carbon"],
        ),
        (Needs(1, sliced_model="Bambu Lab P1S"), printer(model="bambu lab  p1s"), []),  # case, spaces
        (Needs(1, sliced_model="MK4"), printer(model="Original Prusa MK4"), []),  # PrusaSlicer's name
        (Needs(1, sliced_model="P1S"), printer(model="Bambu Lab P1S"), []),
        (
            Needs(1, sliced_model="MK4"),
            printer(model="Original Prusa MK3S"),
            ["sliced for MK4, printer is Original Prusa MK3S"],
        ),
        (Needs(1, sliced_model="Bambu Lab P1S"), printer(model=""), []),  # a blank model takes any
        (Needs(1, sliced_model=""), printer(model="Bambu Lab P1S"), []),  # so does a file without one
        (
            Needs(1, sliced_nozzle=0.6, sliced_model="Bambu Lab A1"),
            printer(model="Bambu Lab P1S"),
            ["sliced for a 0.6 nozzle, printer has 0.4", "sliced for Bambu Lab A1, printer is Bambu Lab P1S"],
        ),
    ],
)
def test_model_and_nozzle_reasons(needs, candidate, reasons):
    assert [r.text for r in mismatches(needs, candidate)] == reasons


def test_the_queue_explains_a_3mf_sliced_for_another_model_and_nozzle(db, tmp_path):
    file = store_threemf(
        "a1.gcode.3mf", write_threemf(tmp_path / "a.gcode.3mf", model_id="N2S", nozzle="0.6").read_bytes()
    )
    fits = printer_create(
        fields={
            "name": "a1",
            "protocol": "moonraker",
            "base_url": "http://127.0.0.1:1",
            "model": "Bambu Lab A1",
            "nozzle_diameter": Decimal("0.6"),
        }
    )
    other = printer_create(
        fields={
            "name": "x1",
            "protocol": "moonraker",
            "base_url": "http://127.0.0.1:2",
            "model": "Bambu Lab X1 Carbon",
            "nozzle_diameter": Decimal("0.4"),
        }
    )
    (job,) = services.jobs_create(file=file)
    job = Job.objects.select_related("file", "target_printer").get(pk=job.pk)

    why = {row.printer.pk: row.reasons for row in explain_waiting([job])[job.pk].printers}
    assert ReasonCode.PRINTER_MODEL not in {r.code for r in why[fits.pk]}
    assert [(r.code, r.text) for r in why[other.pk][:2]] == [
        (ReasonCode.SLICED_NOZZLE, "sliced for a 0.6 nozzle, printer has 0.4"),
        (ReasonCode.PRINTER_MODEL, "sliced for Bambu Lab A1, printer is Bambu Lab X1 Carbon"),
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_dispatch_sends_a_3mf_only_to_a_printer_of_the_model_it_was_sliced_for(make_farm, tmp_path):
    # The queue said "sliced for Bambu Lab P1S, printer is …" while the dispatcher, planning
    # without the printers' models, sent the job to the first free printer all the same.
    farm = await make_farm("moonraker", count=2)
    other, right = await add_printers(farm)
    for printer, model in ((other, "Bambu Lab X1 Carbon"), (right, "Bambu Lab P1S")):
        await Printer.objects.filter(pk=printer.pk).aupdate(model=model)
    file = await sync_to_async(store_threemf)(
        "p1s.gcode.3mf", write_threemf(tmp_path / "p1s.gcode.3mf").read_bytes()
    )
    (job,) = await sync_to_async(services.jobs_create)(file=file, action=Job.Action.UPLOAD)

    async with running():
        await eventually(lambda: _completed(1))
    await job.arefresh_from_db()
    assert job.printer_id == right.pk
