"""A job's filament slots matched to a printer's loaded trays (Bambu AMS): the rule, the queue's
words for a mismatch, and the tray mapping the dispatcher starts the print with."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from jobs import services
from jobs.library import stored_path
from jobs.matching import Candidate, Needs, ReasonCode, mismatches, plan
from jobs.models import Job, JobEvent
from jobs.queries import slots_of
from jobs.spools import Slot, material_family, shortfall, tray_mapping
from jobs.tests.test_dispatch import add_printers, count, running
from jobs.tests.test_threemf_jobs import store_threemf
from jobs.tests.threemf_samples import SamplePlate, two_plates, write_threemf
from jobs.transfer import remote_name_for, upload_source
from printers.colours import colour_name, same_colour
from printers.drivers import DRIVERS
from printers.drivers.base import DriverError, PrintOptions
from printers.drivers.moonraker import MoonrakerDriver
from printers.models import Printer
from printers.state import EXTERNAL_TRAY, State, Tray
from printers.tests.factories import PrinterFactory, set_status
from printfarm.accounts.models import Role
from printfarm.api.tests.clients import api_client
from printfarm.testing import eventually

BLACK, WHITE, RED, GREEN = "#000000", "#FFFFFF", "#FF0000", "#00FF00"

# -- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("PLA", "pla", True),
        ("PLA Basic", "PLA", True),
        ("PLA Matte", "PLA Silk", True),
        ("PLA+", "PLA", True),
        ("PETG HF", "PETG", True),
        ("PLA-CF", "PLA", False),  # fibre-filled: another material (hardened nozzle)
        ("PETG-CF", "PETG", False),
        ("PETG", "PLA", False),
        ("ABS", "ASA", False),
        ("", "", False),  # an empty tray is no material
    ],
)
def test_material_families(a, b, same):
    assert (material_family(a) == material_family(b) != "") is same


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("#C12E1F", "#DE4343", True),  # Bambu red and another brand's red
        ("#000000", "#161616", True),
        ("#000000", "#545454", False),  # dark grey is not black
        ("#0A2989", "#0056B8", False),  # navy is not cobalt
        (BLACK, WHITE, False),
    ],
)
def test_colour_distance(a, b, same):
    assert same_colour(a, b) is same


@pytest.mark.parametrize(
    ("colour", "name"),
    [
        ("#000000", "black"),
        ("#FFFFFF", "white"),
        ("#8E9089", "grey"),
        ("#C12E1F", "red"),
        ("#FF6A13", "orange"),
        ("#F4EE2A", "yellow"),
        ("#00AE42", "green"),
        ("#0056B8", "blue"),
        ("#5E43B7", "purple"),
        ("#F55A74", "pink"),
        ("#9D432C", "brown"),
        ("#00FF00", "green"),
        ("#808080", "grey"),
        ("#008B8B", "teal"),
        ("#7FFFD4", "#7FFFD4"),  # nothing named near it: its hex
        ("", ""),
    ],
)
def test_colour_names(colour, name):
    assert colour_name(colour) == name


def trays(*loaded: tuple[int, str, str]) -> tuple[Tray, ...]:
    return tuple(Tray(id=tray_id, type=kind, colour=colour) for tray_id, kind, colour in loaded)


@pytest.mark.parametrize(
    ("slots", "loaded", "mapping"),
    [
        # Each slot to the tray of its material and colour, by slot number.
        (
            [Slot(1, "PLA", BLACK), Slot(2, "PETG", WHITE)],
            [(0, "PETG", WHITE), (1, "PLA", BLACK)],
            (1, 0),
        ),
        ([Slot(1, "PLA Matte", BLACK)], [(3, "PLA", "#111111")], (3,)),  # family; a near colour
        ([Slot(1, "PLA", BLACK)], [(0, "PLA", WHITE)], None),  # colour too far
        ([Slot(1, "PETG", BLACK)], [(0, "PLA", BLACK)], None),  # another material
        ([Slot(1, "PLA", "")], [(2, "PLA", RED)], (2,)),  # a slot without colour takes any
        ([Slot(1, "", "")], [(0, "", ""), (1, "TPU", RED)], (1,)),  # ...a slot without type, any loaded
        ([Slot(1, "PLA", RED)], [(0, "PLA", "")], None),  # a tray of unknown colour doesn't feed red
        ([Slot(1, "PLA", RED)], [(EXTERNAL_TRAY, "PLA", RED)], (EXTERNAL_TRAY,)),  # external spool
        # Distinct trays: one tray can't feed two slots...
        ([Slot(1, "PLA", BLACK), Slot(2, "PLA", BLACK)], [(0, "PLA", BLACK)], None),
        ([Slot(1, "PLA", BLACK), Slot(2, "PLA", BLACK)], [(0, "PLA", BLACK), (5, "PLA", BLACK)], (0, 5)),
        # ...and a slot that could take either tray leaves the other slot the one it needs.
        ([Slot(1, "PLA", ""), Slot(2, "PLA", RED)], [(0, "PLA", RED), (1, "PLA", WHITE)], (1, 0)),
        # Slots the plate doesn't use are -1; the closest colour wins.
        ([Slot(3, "PLA", "#101010")], [(0, "PLA", "#303030"), (1, "PLA", BLACK)], (-1, -1, 1)),
        ([], [(0, "PLA", BLACK)], ()),
    ],
)
def test_tray_mapping(slots, loaded, mapping):
    assert tray_mapping(tuple(slots), trays(*loaded)) == mapping


@pytest.mark.parametrize(
    ("slots", "loaded", "text"),
    [
        (
            [Slot(1, "PLA", BLACK), Slot(2, "PETG", BLACK)],
            [(0, "PLA", BLACK), (1, "PETG", WHITE)],
            "needs PETG black in slot 2; AMS has PLA black, PETG white",
        ),
        (
            [Slot(1, "PLA", BLACK), Slot(2, "PLA", BLACK)],
            [(0, "PLA", BLACK), (EXTERNAL_TRAY, "PLA", RED)],
            "needs PLA black in slot 2 too (each slot needs a tray of its own); "
            "AMS has PLA black, PLA red on the external spool",
        ),
        (
            [Slot(1, "PLA", "#0A2989")],
            [(0, "PLA", "#3C78F0")],
            "needs PLA dark blue in slot 1; AMS has PLA blue",
        ),
        (  # two blues: the names alone would read the same, so the hex is added
            [Slot(1, "PLA", "#0046C8"), Slot(2, "TPU", "")],
            [(0, "PLA", "#3C78F0"), (1, "", ""), (2, "PETG", "#0046C8")],
            "needs PLA blue #0046C8 in slot 1, TPU in slot 2; AMS has PLA blue #3C78F0, PETG blue",
        ),
        ([Slot(1, "PLA", "")], [(0, "", "")], "needs PLA in slot 1; no filament loaded"),
    ],
)
def test_the_shortfall_in_words(slots, loaded, text):
    assert tray_mapping(tuple(slots), trays(*loaded)) is None
    assert shortfall(tuple(slots), trays(*loaded)) == text


# -- the queue's rule ----------------------------------------------------------------------------


def candidate(**fields) -> Candidate:
    return Candidate(pk=1, name="p", **fields)


def test_a_printer_without_trays_keeps_the_material_rule():
    needs = Needs(1, material="PETG", slots=(Slot(1, "PETG", BLACK),))
    assert [r.code for r in mismatches(needs, candidate(material="PLA"))] == [ReasonCode.MATERIAL]
    assert mismatches(needs, candidate(material="PETG")) == []


def test_a_printer_with_trays_is_matched_by_them_not_by_its_material():
    needs = Needs(1, material="PETG", slots=(Slot(1, "PETG", BLACK),))
    loaded = trays((0, "PETG", BLACK))
    assert mismatches(needs, candidate(material="PLA", trays=loaded)) == []
    reasons = mismatches(needs, candidate(material="PETG", trays=trays((0, "PLA", BLACK))))
    assert [(r.code, r.text) for r in reasons] == [
        (ReasonCode.MATERIAL, "no PETG loaded"),
        (ReasonCode.FILAMENT, "needs PETG black in slot 1; AMS has PLA black"),
    ]


def test_plan_gives_the_job_to_the_printer_whose_trays_fit():
    needs = Needs(7, slots=(Slot(1, "PLA", RED), Slot(2, "PETG", GREEN)))
    wrong = Candidate(pk=1, name="a", trays=trays((0, "PLA", RED), (1, "PETG", WHITE)))
    right = Candidate(pk=2, name="b", trays=trays((0, "PETG", GREEN), (1, "PLA", RED)))
    assert plan([needs], [wrong, right]) == {2: 7}


# -- slots from the job's file or plate ----------------------------------------------------------


@pytest.fixture
def set_3mf(db, tmp_path):
    return store_threemf("set.gcode.3mf", two_plates(tmp_path / "set.gcode.3mf").read_bytes())


def test_a_plate_job_needs_its_plates_slots_and_a_file_job_the_files(set_3mf):
    first, second = services.jobs_create(file=set_3mf)
    assert slots_of(first) == (Slot(1, "PLA", RED),)
    assert slots_of(second) == (Slot(1, "PLA", RED), Slot(2, "PETG", GREEN))
    second.plate = None  # a job for the whole file: every slot any plate uses
    assert slots_of(second) == (Slot(1, "PLA", RED), Slot(2, "PETG", GREEN))


def test_a_plain_gcode_file_needs_its_material(db):
    from jobs.tests.factories import make_file

    (job,) = services.jobs_create(file=make_file())
    assert slots_of(job) == (Slot(1, "PLA", ""),)


# -- the queue page and the API say why ----------------------------------------------------------


def test_the_queue_and_the_api_explain_a_filament_mismatch_with_its_code(set_3mf, web):
    set_status(
        PrinterFactory(name="bambu-1"),
        State.IDLE,
        trays=(Tray(0, "PLA", RED, 90), Tray(1, "PETG", WHITE, 40, active=True)),
    )
    (job,) = services.jobs_create(file=set_3mf, plates=[2])
    viewer, _ = api_client(Role.VIEWER)
    waiting = viewer.get(f"/api/v1/jobs/{job.pk}").json()["waiting"]
    text = "needs PETG green in slot 2; AMS has PLA red, PETG white"
    assert waiting["printers"][0]["reasons"] == [{"code": "filament", "text": text}]
    assert waiting["summary"] == f"1× {text}"
    page = web.get(reverse("jobs:explain", args=[job.pk])).content.decode()
    assert f'<span class="reason" data-code="filament">{text}</span>' in page


# -- dispatch: the mapping reaches the driver ----------------------------------------------------


class LoadedMoonraker(MoonrakerDriver):
    """The real Moonraker driver with AMS-style trays added to its readings (Moonraker reports
    none), recording the options each upload and start was given."""

    loaded: dict[str, tuple[Tray, ...]] = {}  # base_url -> its trays
    calls: list[tuple[str, str, PrintOptions | None]] = []  # (call, remote name, options)
    upload_gate: asyncio.Event | None = None  # uploads wait for it when set

    async def fetch_status(self):
        status = await super().fetch_status()
        return dataclasses.replace(status, trays=self.loaded.get(self.config.base_url, ()))

    async def upload(self, path: Path, *, remote_name: str, options: PrintOptions | None = None, **kw):
        self.calls.append(("upload", remote_name, options))
        if self.upload_gate is not None:
            await self.upload_gate.wait()
        await super().upload(path, remote_name=remote_name, options=options, **kw)

    async def start(self, remote_name: str, options: PrintOptions | None = None) -> None:
        self.calls.append(("start", remote_name, options))
        await super().start(remote_name, options=options)


@pytest.fixture
def loaded_moonraker(monkeypatch):
    monkeypatch.setitem(DRIVERS, "moonraker", LoadedMoonraker)
    monkeypatch.setattr(LoadedMoonraker, "loaded", {})
    monkeypatch.setattr(LoadedMoonraker, "calls", [])
    monkeypatch.setattr(LoadedMoonraker, "upload_gate", None)
    return LoadedMoonraker


async def _stored_3mf(tmp_path: Path):
    path = two_plates(tmp_path / "set.gcode.3mf")
    return await sync_to_async(store_threemf)("set.gcode.3mf", path.read_bytes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_dispatch_starts_on_the_printer_whose_trays_fit_with_their_mapping(
    make_farm, loaded_moonraker, tmp_path
):
    farm = await make_farm("moonraker", count=2, speed=1.0)
    white_only, fits = farm.printers
    loaded_moonraker.loaded = {
        white_only.base_url: trays((0, "PLA", WHITE), (1, "PETG", WHITE)),
        fits.base_url: trays((0, "PLA", WHITE), (2, "PETG", "#00F010"), (EXTERNAL_TRAY, "PLA", RED)),
    }
    printers = await add_printers(farm)
    (job,) = await sync_to_async(services.jobs_create)(file=await _stored_3mf(tmp_path), plates=[2])

    async with running():
        await eventually(lambda: _state_is(job, Job.State.PRINTING))

    await job.arefresh_from_db()
    assert job.printer_id == printers[1].pk
    options = PrintOptions(plate=2, trays=(EXTERNAL_TRAY, 2))
    name = f"set_plate2-job{job.pk}.gcode"  # a G-code printer is sent the plate's G-code
    assert loaded_moonraker.calls == [("upload", name, options), ("start", name, options)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_trays_changed_during_the_upload_put_the_job_back_in_the_queue(
    make_farm, loaded_moonraker, tmp_path
):
    farm = await make_farm("moonraker", count=1, speed=1.0)
    (sim,) = farm.printers
    loaded_moonraker.loaded = {sim.base_url: trays((0, "PLA", RED), (1, "PETG", GREEN))}
    loaded_moonraker.upload_gate = asyncio.Event()
    (printer,) = await add_printers(farm)
    (job,) = await sync_to_async(services.jobs_create)(file=await _stored_3mf(tmp_path), plates=[2])

    async with running() as dispatcher:
        await eventually(lambda: _state_is(job, Job.State.UPLOADING))
        # An operator swaps the PETG for white while the file is on its way.
        loaded_moonraker.loaded = {sim.base_url: trays((0, "PLA", RED), (1, "PETG", WHITE))}
        poller = dispatcher.coordinator.printers[printer.pk]
        await eventually(lambda: _true(poller.last is not None and poller.last.trays[1].colour == WHITE))
        loaded_moonraker.upload_gate.set()
        await eventually(lambda: _state_is(job, Job.State.QUEUED))

    assert [c[0] for c in loaded_moonraker.calls] == ["upload"]  # never started
    events = [e async for e in JobEvent.objects.filter(job=job).values_list("to_state", "reason")]
    changed = "The printer's filament changed: it needs PETG green in slot 2; AMS has PLA red, PETG white"
    assert [state for state, _ in events] == ["queued", "assigned", "uploading", "assigned", "queued"]
    assert events[3][1].startswith(f"{changed}. Retrying in")
    assert events[4][1] == f"Back in the queue: {changed}"
    assert await count(state=Job.State.PRINTING) == 0


async def _state_is(job: Job, state: str) -> bool:
    return await Job.objects.filter(pk=job.pk, state=state).aexists()


async def _true(value: bool) -> bool:
    return value


def test_a_3mf_without_the_jobs_plate_is_refused_before_it_is_sent_whole(db, tmp_path):
    one_plate = write_threemf(tmp_path / "one.gcode.3mf", [SamplePlate(1)])
    file = store_threemf("one.gcode.3mf", one_plate.read_bytes())
    (job,) = services.jobs_create(file=file)
    job.plate = 2  # the stored bytes and the job disagree (a file replaced behind our back)
    job.printer = Printer(name="x1", protocol=Printer.Protocol.BAMBU)

    async def send() -> None:
        async with upload_source(job, stored_path(file)):
            pytest.fail("a file without the plate was sent")

    with pytest.raises(DriverError, match=r"one.gcode.3mf has no plate 2") as refused:
        asyncio.run(send())
    assert refused.value.permanent
    job.plate = 1
    assert remote_name_for(job) == f"one-job{job.pk}.gcode.3mf"  # a Bambu printer gets the 3MF itself


# -- end to end: a simulated Bambu printer ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_a_two_slot_plate_prints_on_the_bambu_printer_whose_ams_fits_with_its_mapping(
    make_farm, tmp_path
):
    from printers.realtime import render_cards
    from printers.simulator.bambu_state import TraySpec

    farm = await make_farm("bambu", count=2, speed=60.0)
    other, fits = (farm.bambu(i) for i in range(2))
    # The plate needs PLA red (slot 1) and PETG green (slot 2). The first printer (offered jobs
    # first) has neither; the second has them in AMS slots 4 and 2.
    other.trays = [TraySpec("PLA", "000000FF", 80), TraySpec("PETG", "FFFFFFFF", 30)]
    fits.trays = [
        TraySpec("PLA", "FFFFFFFF", 90),
        TraySpec("PETG", "00FF00FF", 60),
        TraySpec(),
        TraySpec("PLA", "FF0000FF", 75),
    ]
    printers = [
        await sync_to_async(printers_create_bambu)(farm.printers[i], d) for i, d in enumerate((other, fits))
    ]
    file = await _stored_3mf(tmp_path)
    (job,) = await sync_to_async(services.jobs_create)(file=file, plates=[2])

    async with running():
        await eventually(lambda: _state_is(job, Job.State.PRINTING))

    await job.arefresh_from_db()
    assert job.printer_id == printers[1].pk
    # The 3MF itself went over FTPS, and its plate 2 was started with slot 1 <- tray 3 and
    # slot 2 <- tray 1, as the simulated firmware received them.
    sent = farm.printers[1].files_dir / f"set-job{job.pk}.gcode.3mf"
    assert sent.read_bytes() == stored_path(file).read_bytes()
    assert fits.job.gcode_file == "/data/Metadata/plate_2.gcode"
    assert fits.job.ams_mapping == [3, 1]
    # The card shows what the printer reported.
    card = await sync_to_async(render_cards)([printers[0].pk])
    assert 'title="AMS 1 slot 2: PETG white, 30% left"' in card


def printers_create_bambu(sim, device) -> Printer:
    from printers.services import printer_create

    return printer_create(
        fields={
            "name": sim.name,
            "protocol": "bambu",
            "base_url": sim.base_url,
            "api_key": device.access_code,
            "serial": device.serial,
        }
    )
