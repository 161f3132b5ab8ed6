"""The G-code library on disk: streamed uploads, content-addressed storage, metadata, deletion.

Uploads are written chunk by chunk into `<files>/incoming/` while hashed, then renamed to
`<files>/<sha[:2]>/<sha>.<ext>`. An entry is content under a folder and name: the same content
under another name is another entry over the same stored bytes (hard-linked for another
extension), and the same content, folder and name again reuses the entry.
The bytes are in place before their row commits, so a process killed at any point leaves no
row without its bytes, only leftovers no row points at, which `clean()` removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import io
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.db import IntegrityError, transaction
from django.http.multipartparser import MultiPartParser
from django.utils import timezone

from jobs.metadata import (
    ArchiveRefused,
    Filament,
    GcodeMetadata,
    Plate,
    image_size,
    read_metadata,
    thumbnail_size_ok,
)
from jobs.models import GcodeFile, Job
from printfarm.accounts.audit import audit_record, is_user

logger = logging.getLogger(__name__)

EXTENSIONS = (".gcode", ".gco", ".g", ".bgcode", ".gcode.3mf", ".3mf")
NAME_MAX = 255
THUMBNAIL_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


def files_dir() -> Path:
    return Path(settings.PRINTFARM_FILES_DIR)


def stored_path(file: GcodeFile) -> Path:
    return files_dir() / file.stored_name


def thumbnail_path(file: GcodeFile) -> Path:
    return files_dir() / file.thumbnail_name


def plate_thumbnail_name(file: GcodeFile, index: int) -> str:
    """A 3MF plate's image, beside the file's thumbnail (which is plate 1's)."""
    return f"{file.sha256[:2]}/{file.sha256}.plate{index}.thumb"


def plate_thumbnail_names(file: GcodeFile) -> list[str]:
    return [plate_thumbnail_name(file, p["index"]) for p in file.plates if p.get("thumbnail")]


def human_size(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _shown(text: str) -> str:
    """User input fit to quote in a message: control characters as "?", cut short."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 60 else text[:57] + "..."


def _text_problem(text: str) -> str:
    if not all(ch.isprintable() for ch in text):
        return "it holds control characters"
    if len(text) > NAME_MAX:
        return f"it is longer than {NAME_MAX} characters"
    return ""


def name_problem(name: str) -> str:
    """Why a file of this name is refused, or "".

    Refused rather than cleaned: a name changed behind the user's back is a file they can't
    find in the library or on the printer, which is sent this name. Browsers and slicers send
    a bare name (the folder, if any, comes in its own field), so a path here is a mistake.
    """
    if "/" in name or "\\" in name:
        return f"{_shown(name)}: a file name can't hold a folder (/ or \\); send the bare name."
    if problem := _text_problem(name):
        return f"{_shown(name)}: refused, {problem}; rename the file."
    if not name.lower().endswith(EXTENSIONS):
        return f"{_shown(name)}: not a G-code file. Accepted: {', '.join(EXTENSIONS)}."
    return ""


def folder_from(text: str) -> tuple[str, str]:
    """The library folder a slicer asked for (its `path`), as stored: "/" between parts,
    none around; and why it is refused, or "". No ".." in it: the folder names a place in
    the library and on printers, never a way out of one."""
    parts = [part for part in text.replace("\\", "/").split("/") if part not in ("", ".")]
    folder = "/".join(parts)
    if ".." in parts:
        return "", f'{_shown(text)}: a folder can\'t contain ".."; choose a folder inside the library.'
    if problem := _text_problem(folder):
        return "", f"{_shown(text)}: folder refused, {problem}."
    return folder, ""


class NameKeepingParser(MultiPartParser):
    """Django's multipart parser, handing file names on as sent (HTML entities decoded).

    Django cuts path parts and control characters off a name silently; `name_problem`
    refuses such a name with a message instead.
    """

    def sanitize_file_name(self, file_name: str) -> str | None:
        return html.unescape(file_name) or None


# -- receiving --------------------------------------------------------------------------------


class IncomingFile(UploadedFile):
    """A received upload: already on disk in the incoming area, with its hash and size."""

    def __init__(self, *, path: Path, name: str, size: int, sha256: str) -> None:
        super().__init__(file=None, name=name, content_type="application/octet-stream", size=size)
        self.path = path
        self.sha256 = sha256

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def close(self) -> None:
        # Django closes a request's files when its response is done: whatever no view stored
        # (an error, a second file the OctoPrint endpoint ignores) goes then, not at the next clean.
        self.discard()


class GcodeUploadHandler(FileUploadHandler):
    """Streams every file part to disk while hashing it; refuses bad ones as they arrive.

    Refusals are kept in `rejected` (one message per file) and the file's bytes are skipped,
    so a bad file in a batch doesn't stop the good ones and nothing of it is kept.
    """

    chunk_size = 256 * 1024

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.rejected: list[str] = []
        self.received: list[IncomingFile] = []
        self.too_large = False  # a file was refused for its size: the answer is 413, not 400
        self.limit = settings.PRINTFARM_UPLOAD_MAX_BYTES
        self._out: io.BufferedWriter | None = None
        self._path: Path | None = None

    def new_file(self, field_name, file_name, *args, **kwargs) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        if problem := name_problem(self.file_name):
            self.rejected.append(problem)
            raise SkipFile()
        incoming = files_dir() / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        self._path = incoming / f"{uuid.uuid4().hex}.part"
        self._out = open(self._path, "wb")  # noqa: SIM115 - closed in file_complete/abort
        self._hash = hashlib.sha256()
        self._size = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._size += len(raw_data)
        if self._size > self.limit:
            self.too_large = True
            self.rejected.append(
                f"{self.file_name}: larger than the {human_size(self.limit)} limit; nothing was stored."
            )
            self._abort()
            raise SkipFile()
        self._hash.update(raw_data)
        assert self._out is not None
        self._out.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> IncomingFile | None:
        if self._out is None or self._path is None:
            return None
        # On disk before the row that points at it can commit (power loss, not just a kill).
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        self._out = None
        if self._size == 0:
            self.rejected.append(f"{self.file_name}: the file is empty; nothing was stored.")
            self._abort()
            return None
        received = IncomingFile(
            path=self._path, name=self.file_name, size=self._size, sha256=self._hash.hexdigest()
        )
        self._path = None
        self.received.append(received)
        return received

    def upload_interrupted(self) -> None:
        # The body ended inside a file: a cut connection, or a client that never finished it.
        if self._out is not None:
            self.rejected.append(
                f"{_shown(self.file_name)}: the upload ended before the file did; nothing was stored."
            )
        self._abort()

    def discard_all(self) -> None:
        """Remove everything this request received (a refusal, or a body that could not be read)."""
        self._abort()
        for received in self.received:
            received.discard()

    def _abort(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
            self._path = None


# -- storing ----------------------------------------------------------------------------------

_METADATA_FIELDS = {f.name for f in fields(GcodeMetadata)} & {f.name for f in GcodeFile._meta.get_fields()}


@dataclass(frozen=True, slots=True)
class Stored:
    file: GcodeFile
    created: bool  # False: the same content was already in the library

    @property
    def message(self) -> str:
        if self.created:
            return f"{self.file.name}: stored ({human_size(self.file.size)})."
        return f"{self.file.name}: already in the library (same content); the stored file is reused."


class Refused(Exception):
    """An upload the library won't keep (an unsafe or unprintable 3MF); the message says why."""


def metadata_for(path: Path, *, name: str = "") -> GcodeMetadata:
    """The file's metadata; `name` (the upload's) tells a 3MF from G-code. A 3MF that fails its
    checks is refused, since it is the printers, not only this page, that would read it."""
    try:
        return read_metadata(path, name=name)
    except ArchiveRefused as exc:
        raise Refused(f"{name or path.name}: {exc}") from exc
    except Exception:  # metadata is a convenience: a file we can't read still prints
        logger.exception("Could not read metadata of %s", path)
        return GcodeMetadata()


def store(incoming: IncomingFile, *, folder: str = "", by: object = None, via: str = "") -> Stored:
    """Add a received upload to the library as `folder`/its name, read its metadata; the same
    content under the same folder and name reuses that entry. Bytes are stored once per content.

    Order matters for crashes: metadata and thumbnail, then the bytes renamed into place and
    synced, then the row. Killed before the commit, the process leaves files no row points at.
    A user's upload (`by` a user, `via` "web", "api" or "slicer") is audited in the same
    transaction as its row, as every service audits; files the farm makes itself have no user.
    """
    entry = {"sha256": incoming.sha256, "folder": folder, "name": incoming.name}
    existing = GcodeFile.objects.filter(**entry).first()
    if existing is not None and existing.deleted_at is None and stored_path(existing).exists():
        incoming.discard()
        return _audited(Stored(existing, created=False), by=by, via=via)
    # A new entry (new content, or stored content under a new name or folder), one deleted
    # earlier whose row history still points at, or one whose bytes went missing: fill it in.
    file = existing or GcodeFile(**entry)
    file.size, file.deleted_at, file.uploaded_at = incoming.size, None, timezone.now()
    file.uploaded_by = by if getattr(by, "pk", None) else None
    target = stored_path(file)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        meta = metadata_for(incoming.path, name=incoming.name)
    except Refused:
        incoming.discard()
        raise
    _fill_metadata(file, meta)
    _place(incoming, target)
    try:
        with transaction.atomic():
            file.save()
            stored = _audited(Stored(file, created=True), by=by, via=via)
    except IntegrityError:
        # The same content, folder and name uploaded twice at once: the other one won. Its
        # bytes are ours (the same name, so the same stored path): nothing to undo.
        winner = GcodeFile.objects.get(**entry)
        return _audited(Stored(winner, created=False), by=by, via=via)
    return stored


def _place(incoming: IncomingFile, target: Path) -> None:
    """Put the upload's bytes at `target` (named by their hash), stored once: already there,
    they stay; stored under another extension, they are hard-linked; else they move in."""
    if target.exists():
        incoming.discard()
        return
    for other in _stored_copies(incoming.sha256):
        try:
            os.link(other, target)
        except OSError:  # gone meanwhile, already linked by a twin upload, or no hard links here
            continue
        incoming.discard()
        break
    else:
        os.replace(incoming.path, target)  # also the fallback: a second copy of the bytes
    _sync_dir(target.parent)


def _stored_copies(sha256: str) -> list[Path]:
    """The content's bytes as already stored, under each extension it was uploaded with."""
    folder = files_dir() / sha256[:2]
    extensions = {ext.rsplit(".", 1)[-1] for ext in EXTENSIONS}
    return [path for ext in sorted(extensions) if (path := folder / f"{sha256}.{ext}").exists()]


def _audited(stored: Stored, *, by: object, via: str) -> Stored:
    if is_user(by):
        audit_record(by, "file.upload", target=stored.file, detail=stored.message, via=via)
    return stored


def _sync_dir(path: Path) -> None:
    """Make a rename in `path` survive a power cut, before a row that relies on it commits."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fill_metadata(file: GcodeFile, meta: GcodeMetadata) -> None:
    for name in _METADATA_FIELDS - {"filaments", "plates"}:
        value = getattr(meta, name)
        if isinstance(value, str):
            value = value[: GcodeFile._meta.get_field(name).max_length]
        setattr(file, name, value)
    file.filaments = [filament_json(f) for f in meta.filaments]
    file.plates = [plate_json(p) for p in meta.plates]
    file.thumbnail_type = ""
    thumb = meta.best_thumbnail()
    if thumb is not None:
        data, kind = _browser_image(thumb.data, thumb.format)
        if data:
            thumbnail_path(file).write_bytes(data)
            file.thumbnail_type = kind
    for plate, stored in zip(meta.plates, file.plates, strict=True):
        data = _browser_image(plate.thumbnail.data, plate.thumbnail.format)[0] if plate.thumbnail else b""
        if data:
            (files_dir() / plate_thumbnail_name(file, plate.index)).write_bytes(data)
        stored["thumbnail"] = bool(data)


def filament_json(filament: Filament) -> dict:
    return {
        "slot": filament.slot,
        "type": filament.type,
        "colour": filament.colour,
        "grams": filament.grams,
        "mm": filament.mm,
    }


def plate_json(plate: Plate) -> dict:
    return {
        "index": plate.index,
        "name": plate.name,
        "estimated_seconds": plate.estimated_seconds,
        "filament_g": plate.filament_g,
        "object_height": plate.object_height,
        "filaments": [filament_json(f) for f in plate.filaments],
        "thumbnail": plate.thumbnail is not None,
    }


def _browser_image(data: bytes, fmt: str) -> tuple[bytes, str]:
    """Thumbnail bytes a browser can show: PNG/JPEG as they are, QOI converted to PNG."""
    if fmt in THUMBNAIL_TYPES:
        return data, THUMBNAIL_TYPES[fmt]
    # Decoding allocates what the header claims; metadata checked it, and Pillow must agree.
    size = image_size(fmt, data)
    if size is None or not thumbnail_size_ok(*size):
        return b"", ""
    try:
        from PIL import Image

        image = Image.open(io.BytesIO(data))  # reads the header only
        if not thumbnail_size_ok(*image.size):
            return b"", ""
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue(), "image/png"
    except Exception:
        return b"", ""


class FileInUse(Exception):
    pass


def delete(file: GcodeFile, *, by: object = None, via: str = "") -> None:
    """Remove a library entry and its bytes, unless another entry still uses them (the same
    content under another name or folder); refused while a job waits for it or runs it. An
    entry finished jobs point at stays as a record (history shows its name), hidden from the
    list. A user's delete is audited in the same transaction, as `store`'s upload is."""
    active = file.jobs.filter(state__in=(Job.State.QUEUED, *Job.ACTIVE)).count()
    if active:
        plural = "s" if active != 1 else ""
        raise FileInUse(f"{file.name} is used by {active} waiting or running job{plural}; cancel them first.")
    names = {file.stored_name, file.thumbnail_name, *plate_thumbnail_names(file)}
    with transaction.atomic():
        if is_user(by):
            audit_record(by, "file.delete", target=file, via=via)  # first: the row still has its pk
        if file.jobs.exists():
            GcodeFile.objects.filter(pk=file.pk).update(deleted_at=timezone.now(), thumbnail_type="")
        else:
            file.delete()
    others = GcodeFile.objects.present().filter(sha256=file.sha256).exclude(pk=file.pk)
    for name in names - {n for other in others for n in library_names(other)}:
        with contextlib.suppress(FileNotFoundError):
            (files_dir() / name).unlink()


def library_names(file: GcodeFile) -> set[str]:
    """The files under the files directory a present entry uses (shared with its content's other entries)."""
    names = {file.stored_name, *plate_thumbnail_names(file)}
    if file.thumbnail_type:
        names.add(file.thumbnail_name)
    return names


# -- cleaning up after crashes ----------------------------------------------------------------

# Older than this, a temp file is no upload in progress: a part being received is written to
# every few milliseconds, and a received one is stored within seconds of its request ending.
LEFTOVER_AGE = 3600.0
# More leftovers than this, and more than half the library, means a wrong database or an
# unmounted files directory rather than crashes: that part of the cleanup is left undone.
SUSPICIOUS_COUNT = 10
_STORED = re.compile(r"[0-9a-f]{64}\..+")
_PYTHON_TEMP = re.compile(r"tmp[a-z0-9_]{8}(\.upload.*)?")  # tempfile's names; Django's ".upload"


@dataclass(slots=True)
class Cleanup:
    dry_run: bool
    removed: list[Path] = field(default_factory=list)  # or, in a dry run, would be
    records: list[str] = field(default_factory=list)  # rows whose bytes were missing, and what became of them
    refused: list[str] = field(default_factory=list)  # parts left undone, and why

    @property
    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        return [
            *(f"{verb} {path}" for path in self.removed),
            *self.records,
            *self.refused,
        ]


def clean(*, dry_run: bool = False, min_age: float = LEFTOVER_AGE) -> Cleanup:
    """Remove what killed uploads left: temp files, stored bytes and thumbnails no live row
    points at (all older than `min_age` seconds); and settle live rows whose bytes are gone."""
    result = Cleanup(dry_run=dry_run)
    cutoff = time.time() - min_age
    for path in _temp_files():
        _remove_if_old(path, cutoff, result)
    live = list(
        GcodeFile.objects.present().only("pk", "sha256", "name", "thumbnail_type", "plates").order_by("pk")
    )
    keep = {name for f in live for name in library_names(f)}
    stored = [p for p in files_dir().glob("??/*") if _STORED.fullmatch(p.name)]
    orphans = [p for p in stored if str(p.relative_to(files_dir())) not in keep]
    if _suspicious(len(orphans), len(stored)):
        result.refused.append(
            f"{len(orphans)} of {len(stored)} stored files have no record: left alone. "
            "Is DATABASE_URL the library's database?"
        )
    else:
        for path in orphans:
            _remove_if_old(path, cutoff, result)
    missing = [f for f in live if not stored_path(f).exists()]
    if _suspicious(len(missing), len(live)):
        result.refused.append(
            f"{len(missing)} of {len(live)} files have no bytes on disk: records left alone. "
            f"Is {files_dir()} mounted?"
        )
    else:
        for file in missing:
            _settle_missing(file, result)
    return result


def _temp_files() -> list[Path]:
    paths = list((files_dir() / "incoming").glob("*.part"))
    # Plates taken out of a 3MF for a transfer (jobs.transfer.upload_source) by a killed poller.
    paths += list((files_dir() / "outgoing").glob("job*.gcode"))
    # Request bodies are unnamed files there; Django's own upload handler names its files.
    if temp_dir := getattr(settings, "FILE_UPLOAD_TEMP_DIR", None):
        paths += [p for p in Path(temp_dir).glob("tmp*") if _PYTHON_TEMP.fullmatch(p.name)]
    return paths


def _suspicious(count: int, total: int) -> bool:
    return count > SUSPICIOUS_COUNT and count * 2 > total


def _remove_if_old(path: Path, cutoff: float, result: Cleanup) -> None:
    # Empty folders stay: removing one could race another process's mkdir-then-rename.
    try:
        if not path.is_file() or path.stat().st_mtime > cutoff:
            return
        if not result.dry_run:
            path.unlink()
    except FileNotFoundError:
        return
    result.removed.append(path)


def _settle_missing(file: GcodeFile, result: Cleanup) -> None:
    """A live row whose bytes are gone (removed by hand, a restored backup): the library stops
    listing it, as if deleted (history keeps its name); a file that jobs wait for is only reported,
    and those jobs fail at dispatch with the reason."""
    label = f"{file.name} (#{file.pk})"
    if result.dry_run:
        result.records.append(f"would settle {label}: its bytes are missing")
        return
    try:
        delete(file)
    except FileInUse:
        result.records.append(f"kept {label}: its bytes are missing and jobs wait for it")
        return
    result.records.append(f"removed the record of {label}: its bytes were missing")
