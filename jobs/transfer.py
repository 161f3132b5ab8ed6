"""Sending one file to one printer: what is sent and its name there, its progress, and the stall
watchdog."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from jobs.library import files_dir
from jobs.metadata import ArchiveRefused, is_threemf
from jobs.metadata.threemf import extract_plate, plate_member
from jobs.models import Job
from jobs.queries import slots_of
from jobs.spools import shortfall, tray_mapping
from printers.changes import announce
from printers.drivers.base import DriverError, PrintOptions
from printers.models import Printer
from printers.state import Tray

PROGRESS_EVERY = 1.0  # seconds between two transfer-progress writes
# Shown until the printer answers the upload: the bytes left us, nobody said they arrived.
UNCONFIRMED_PERCENT = 99.0
WATCH_EVERY = 0.5  # seconds between two looks at a transfer's progress
_SUFFIXES = (".gcode.3mf", ".3mf", ".bgcode", ".gcode", ".gco", ".g")
_MB = 1024 * 1024
# Printers that print a 3MF as it is (and are told which plate to start); the others are sent
# the job's plate G-code.
TAKES_3MF: frozenset[str] = frozenset({Printer.Protocol.BAMBU})


def sends_plate_gcode(job: Job) -> bool:
    """A 3MF going to a printer that prints G-code: it gets the job's plate, extracted."""
    return is_threemf(job.file.name) and job.printer is not None and job.printer.protocol not in TAKES_3MF


def remote_name_for(job: Job) -> str:
    """The file's name on the printer, unique to the job ("benchy-job42.gcode"): a re-send
    overwrites only this job's copy, and the printer's status names the job it is printing.
    A 3MF's plate sent as G-code is named for its plate ("set_plate2-job42.gcode")."""
    name = job.file.name.replace("/", "_").replace("\\", "_")
    lower = name.lower()
    suffix = next((s for s in _SUFFIXES if lower.endswith(s) and len(name) > len(s)), "")
    stem = name[: len(name) - len(suffix)]
    if sends_plate_gcode(job):
        return f"{stem}_plate{job.plate or 1}-job{job.pk}.gcode"
    return f"{stem}-job{job.pk}{name[len(stem) :]}"


class TraysChanged(Exception):
    """The printer's loaded trays no longer feed the job's filament slots."""


def print_options(job: Job, trays: tuple[Tray, ...]) -> PrintOptions:
    """How to start `job` (loaded with its file) on a printer reporting these trays: its plate,
    and the tray feeding each filament slot, by the rule the queue matched them with."""
    slots = slots_of(job) if trays else ()
    if not slots:
        return PrintOptions(plate=job.plate)
    mapping = tray_mapping(slots, trays)
    if mapping is None:
        raise TraysChanged(f"The printer's filament changed: it {shortfall(slots, trays)}")
    return PrintOptions(plate=job.plate, trays=mapping)


def _has_plate(path: Path, plate: int) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return plate_member(plate) in archive.NameToInfo
    except (OSError, zipfile.BadZipFile):
        return False


@contextlib.asynccontextmanager
async def upload_source(job: Job, stored: Path) -> AsyncIterator[Path]:
    """The file to send for `job`: the library's bytes, or for a 3MF on a G-code printer the
    job's plate G-code, streamed out of the archive to a temporary file removed afterwards."""
    if not sends_plate_gcode(job):
        if job.plate and not await asyncio.to_thread(_has_plate, stored, job.plate):
            # The printer would take the file and then fail to start it: say so before sending.
            problem = f"{job.file.name} has no plate {job.plate} (or is no longer a readable 3MF)"
            raise DriverError(problem, permanent=True)
        yield stored
        return
    outgoing = files_dir() / "outgoing"
    outgoing.mkdir(parents=True, exist_ok=True)
    path = outgoing / f"job{job.pk}-{uuid.uuid4().hex}.gcode"
    plate = job.plate or 1
    try:
        try:
            await asyncio.to_thread(extract_plate, stored, plate, path)
        except ArchiveRefused as exc:
            problem = f"Can't take plate {plate} out of {job.file.name}: {exc}"
            raise DriverError(problem, permanent=True) from exc
        yield path
    finally:
        path.unlink(missing_ok=True)


class ProgressWriter:
    """The transfer's progress callback: remembers the latest figure and writes it to the job
    (and nudges the card) at most once a second, from the event loop, not the upload's path."""

    def __init__(self, job_id: int, printer_id: int, clock) -> None:
        self.job_id, self.printer_id, self.clock = job_id, printer_id, clock
        self.sent = self.total = 0
        self.moved_at = clock()  # when the printer last took bytes
        self.written_at = clock()
        self.task: asyncio.Task[None] | None = None

    @property
    def percent(self) -> float:
        done = 100.0 * self.sent / self.total if self.total else 0.0
        return min(done, UNCONFIRMED_PERCENT)

    @property
    def all_sent(self) -> bool:
        return self.total > 0 and self.sent >= self.total

    def __call__(self, sent: int, total: int) -> None:
        now = self.clock()
        if sent > self.sent or total != self.total:
            self.moved_at = now
        self.sent, self.total = sent, total
        if now - self.written_at >= PROGRESS_EVERY and (self.task is None or self.task.done()):
            self.written_at = now
            self.task = asyncio.get_running_loop().create_task(self.write(round(self.percent, 1)))

    async def write(self, percent: float, note: str | None = None) -> None:
        await sync_to_async(_write_progress, thread_sensitive=True)(
            self.job_id, self.printer_id, percent, note
        )

    async def stop(self) -> None:
        if self.task is not None:
            if not self.task.done():
                self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


@transaction.atomic
def _write_progress(job_id: int, printer_id: int, percent: float, note: str | None) -> None:
    values: dict[str, object] = {"transfer_percent": percent, "updated_at": timezone.now()}
    if note is not None:
        values["reason"] = note
    Job.objects.filter(pk=job_id, state=Job.State.UPLOADING).update(**values)
    announce([printer_id])


async def watch_transfer(
    upload: Awaitable[None], progress: ProgressWriter, *, stall: float, confirm: float
) -> None:
    """Await `upload`, cancelling it when it stops moving: no bytes taken for `stall` seconds,
    or, once every byte is sent, no answer within `confirm` seconds. A stall is a DriverError
    (retried like any broken transfer), not one long timeout per try."""
    task = asyncio.ensure_future(upload)
    waiting_noted = False
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=WATCH_EVERY)
            if done:
                task.result()
                return
            quiet = progress.clock() - progress.moved_at
            if progress.all_sent:
                if not waiting_noted:
                    waiting_noted = True
                    await progress.write(
                        UNCONFIRMED_PERCENT,
                        note=f"All {progress.total / _MB:.1f} MB sent; waiting for the printer to confirm",
                    )
                if quiet > confirm:
                    raise DriverError(
                        f"The printer took the whole file ({progress.total / _MB:.1f} MB) but did not "
                        f"confirm it within {confirm:g} s"
                    )
            elif quiet > stall:
                raise DriverError(
                    f"Transfer stalled: no bytes accepted for {stall:g} s "
                    f"({progress.sent / _MB:.1f} of {progress.total / _MB:.1f} MB sent)"
                )
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
