"""Jobs and library files as pages, cards and the API show them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from django.urls import reverse

from jobs.metadata.fields import Filament
from jobs.models import GcodeFile, Job
from jobs.services import plate_of
from printers.colours import colour_name, safe_colour
from printers.formatting import format_number
from printers.presenters import CardFilament, CardJob


def card_jobs(printer_ids: Iterable[int]) -> dict[int, CardJob]:
    """The active job on each of these printers, for its card (one query)."""
    ids = list(printer_ids)
    if not ids:
        return {}
    jobs = Job.objects.active().filter(printer_id__in=ids).select_related("file").order_by()
    return {
        job.printer_id: CardJob(
            pk=job.pk,
            label=job.file.name,
            url=reverse("jobs:job", args=[job.pk]),
            state_label=job.get_state_display(),
            state=job.state,
            thumbnail_url=reverse("jobs:thumbnail", args=[job.file_id]) if job.file.thumbnail_type else "",
            transfer_percent=job.transfer_percent
            if job.state in (Job.State.ASSIGNED, Job.State.UPLOADING)
            else None,
            # An assigned job's note is where it went ("to sim-3") unless it waits for a retry.
            note=job.reason if job.state != Job.State.ASSIGNED or job.retry_at else "",
            filaments=card_filaments(job_filaments(job)),
        )
        for job in jobs
    }


def card_filaments(filaments: Iterable[Filament]) -> tuple[CardFilament, ...]:
    """A job's filaments as its card line shows them: type, colour and grams per slot."""
    shown = []
    for filament in filaments:
        if not (filament.type or filament.colour or filament.grams):
            continue  # a slot the file names but says nothing about
        grams = f"{format_number(filament.grams)} g" if filament.grams else ""
        what = " ".join(w for w in (filament.type, colour_name(filament.colour)) if w) or "filament"
        title = f"slot {filament.slot}: {what}{f', {grams}' if grams else ''}"
        shown.append(CardFilament(type=filament.type, colour=filament.colour, grams=grams, title=title))
    return tuple(shown)


# -- a library file's facts: what a farm needs to choose a printer --------------------------------


@dataclass(frozen=True, slots=True)
class PlateFacts:
    """One plate of a 3MF, as the file page and the API show it."""

    index: int
    name: str
    estimated_seconds: int | None
    filament_g: float | None
    object_height: float | None
    filaments: tuple[Filament, ...]
    thumbnail_url: str  # "" when the plate has no image


@dataclass(frozen=True, slots=True)
class FileFacts:
    """A library file's facts for the list, its page, the queue form and the API."""

    filaments: tuple[Filament, ...]  # one per slot; the old single material for older files
    grams: float | None
    estimated_seconds: int | None
    nozzle: float | None
    printer_model: str
    plates: tuple[PlateFacts, ...]
    folder: str
    thumbnail_url: str

    @property
    def materials(self) -> list[str]:
        """The distinct material types, in slot order ("PLA", "PETG")."""
        return list(dict.fromkeys(f.type for f in self.filaments if f.type))


def _number(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return float(value) if ok else None


def _index(value: object) -> int | None:
    """A slot or plate number: a whole number from 1."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _text(value: object, limit: int = 64) -> str:
    return value.strip()[:limit] if isinstance(value, str) and value.isprintable() else ""


def _filaments(rows: object) -> tuple[Filament, ...]:
    """Slots from stored JSON, each value checked: the JSON came from a file anyone uploads."""
    if not isinstance(rows, list):
        return ()
    return tuple(
        Filament(
            slot=_index(row.get("slot")) or n,
            type=_text(row.get("type"), 40),
            colour=safe_colour(row.get("colour")),
            grams=_number(row.get("grams")),
            mm=_number(row.get("mm")),
        )
        for n, row in enumerate(rows, start=1)
        if isinstance(row, dict)
    )


def _older_filaments(file: GcodeFile) -> tuple[Filament, ...]:
    """Files read before slots were: the types in `filament_type` ("PLA;PETG", repeated once per
    extruder by PrusaSlicer), with the totals when there is one material."""
    kinds = list(dict.fromkeys(k.strip() for k in file.filament_type.split(";") if k.strip()))
    if len(kinds) == 1:
        return (Filament(slot=1, type=kinds[0], grams=file.filament_g, mm=file.filament_mm),)
    return tuple(Filament(slot=n, type=kind) for n, kind in enumerate(kinds, start=1))


def job_filaments(job: Job) -> tuple[Filament, ...]:
    """The slots a job prints with: its plate's, or its file's (a G-code file, or a plate that
    names none)."""
    plate = plate_of(job)
    return (
        (_filaments(plate.get("filaments")) if plate else ())
        or _filaments(job.file.filaments)
        or _older_filaments(job.file)
    )


def _total(values: Iterable[float | int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _plates(file: GcodeFile) -> tuple[PlateFacts, ...]:
    rows = file.plates if isinstance(file.plates, list) else []
    return tuple(
        PlateFacts(
            index=index,
            name=_text(row.get("name"), 120),
            estimated_seconds=int(s) if (s := _number(row.get("estimated_seconds"))) else None,
            filament_g=_number(row.get("filament_g")),
            object_height=_number(row.get("object_height")),
            filaments=_filaments(row.get("filaments")),
            thumbnail_url=reverse("jobs:plate_thumbnail", args=[file.pk, index])
            if row.get("thumbnail") is True
            else "",
        )
        for row in rows
        if isinstance(row, dict) and (index := _index(row.get("index")))
    )


def file_facts(file: GcodeFile) -> FileFacts:
    """The one reading of a file's material, colour, grams, time, nozzle, model and plates."""
    filaments = _filaments(file.filaments) or _older_filaments(file)
    plates = _plates(file)
    return FileFacts(
        filaments=filaments,
        grams=file.filament_g or _total(f.grams for f in filaments),
        estimated_seconds=file.estimated_seconds or _total(p.estimated_seconds for p in plates),
        nozzle=file.nozzle_diameter,
        printer_model=file.printer_model,
        plates=plates,
        folder=file.folder,
        thumbnail_url=reverse("jobs:thumbnail", args=[file.pk]) if file.thumbnail_type else "",
    )
