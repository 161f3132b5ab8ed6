"""The G-code library on disk: streamed uploads, content-addressed storage, metadata, deletion.

Uploads are written chunk by chunk into `<files>/incoming/` while hashed, then renamed to
`<files>/<sha[:2]>/<sha>.<ext>`; the same content uploaded again reuses the stored file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import uuid
from dataclasses import dataclass, fields
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.metadata import GcodeMetadata, read_metadata
from jobs.models import GcodeFile, Job

logger = logging.getLogger(__name__)

EXTENSIONS = (".gcode", ".gco", ".g", ".bgcode")
NAME_MAX = 255
THUMBNAIL_TYPES = {"png": "image/png", "jpg": "image/jpeg"}


def files_dir() -> Path:
    return Path(settings.PRINTFARM_FILES_DIR)


def stored_path(file: GcodeFile) -> Path:
    return files_dir() / file.stored_name


def thumbnail_path(file: GcodeFile) -> Path:
    return files_dir() / file.thumbnail_name


def human_size(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def name_problem(name: str) -> str:
    """Why a file of this name is refused, or ""."""
    if not name.lower().endswith(EXTENSIONS):
        return f"{name}: not a G-code file. Accepted: {', '.join(EXTENSIONS)}."
    return ""


def clean_name(name: str) -> str:
    """The file's base name, without path parts or control characters, cut to fit."""
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = "".join(ch for ch in base if ch.isprintable())
    if len(base) > NAME_MAX:
        stem, dot, ext = base.rpartition(".")
        base = stem[: NAME_MAX - len(ext) - 1] + dot + ext
    return base or "unnamed.gcode"


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
        self.limit = settings.PRINTFARM_UPLOAD_MAX_BYTES
        self._out: io.BufferedWriter | None = None
        self._path: Path | None = None

    def new_file(self, field_name, file_name, *args, **kwargs) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        self.file_name = clean_name(file_name)
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
        self._abort()

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


def metadata_for(path: Path) -> GcodeMetadata:
    try:
        return read_metadata(path)
    except Exception:  # metadata is a convenience: a file we can't read still prints
        logger.exception("Could not read metadata of %s", path)
        return GcodeMetadata()


def store(incoming: IncomingFile, *, by: object = None) -> Stored:
    """Move a received upload into the library (or reuse the same content), read its metadata."""
    existing = GcodeFile.objects.filter(sha256=incoming.sha256).first()
    if existing is not None and existing.deleted_at is None:
        incoming.discard()
        return Stored(existing, created=False)
    # New content, or content deleted earlier whose row history still points at: fill it in.
    file = existing or GcodeFile(sha256=incoming.sha256)
    file.name, file.size, file.deleted_at, file.uploaded_at = (
        incoming.name,
        incoming.size,
        None,
        timezone.now(),
    )
    file.uploaded_by = by if getattr(by, "pk", None) else None
    target = stored_path(file)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(incoming.path, target)
    _fill_metadata(file, metadata_for(target))
    try:
        with transaction.atomic():
            file.save()
    except IntegrityError:
        # Two uploads of the same content at once: the other one won; keep its row and bytes.
        return Stored(GcodeFile.objects.get(sha256=incoming.sha256), created=False)
    return Stored(file, created=True)


def _fill_metadata(file: GcodeFile, meta: GcodeMetadata) -> None:
    for name in _METADATA_FIELDS:
        value = getattr(meta, name)
        if isinstance(value, str):
            value = value[: GcodeFile._meta.get_field(name).max_length]
        setattr(file, name, value)
    file.thumbnail_type = ""
    thumb = meta.best_thumbnail()
    if thumb is not None:
        data, kind = _browser_image(thumb.data, thumb.format)
        if data:
            thumbnail_path(file).write_bytes(data)
            file.thumbnail_type = kind


def _browser_image(data: bytes, fmt: str) -> tuple[bytes, str]:
    """Thumbnail bytes a browser can show: PNG/JPEG as they are, QOI converted to PNG."""
    if fmt in THUMBNAIL_TYPES:
        return data, THUMBNAIL_TYPES[fmt]
    try:
        from PIL import Image

        out = io.BytesIO()
        Image.open(io.BytesIO(data)).save(out, format="PNG")
        return out.getvalue(), "image/png"
    except Exception:
        return b"", ""


class FileInUse(Exception):
    pass


def delete(file: GcodeFile) -> None:
    """Remove a file's bytes; refused while a job waits for it or runs it. A file that
    finished jobs point at stays as a record (history shows its name), hidden from the list."""
    active = file.jobs.filter(state__in=(Job.State.QUEUED, *Job.ACTIVE)).count()
    if active:
        plural = "s" if active != 1 else ""
        raise FileInUse(f"{file.name} is used by {active} waiting or running job{plural}; cancel them first.")
    paths = [stored_path(file), thumbnail_path(file)]
    with transaction.atomic():
        if file.jobs.exists():
            GcodeFile.objects.filter(pk=file.pk).update(deleted_at=timezone.now(), thumbnail_type="")
        else:
            file.delete()
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
