"""The one way uploaded G-code comes in: the web library, `POST /api/v1/files` and the slicers'
`POST /api/files/local` all receive through `upload_receive`.

So the three give the same verdict for the same file (size limit, extension, empty file; a file
whose metadata can't be read is still stored) and write the same audit entry; each only words
the answer in its own protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from jobs import library
from jobs.library import GcodeUploadHandler, IncomingFile, Stored

NOTHING_ARRIVED = "No file arrived: choose a G-code file to upload (the form part `file`)."

# Runs once the body is read, before anything is stored; a response refuses the whole request.
Check = Callable[[HttpRequest], HttpResponse | None]


@dataclass(frozen=True, slots=True)
class Upload:
    kept: tuple[Stored, ...]  # stored or reused, in the order they arrived
    errors: tuple[str, ...]  # one line per refused file, or why nothing was stored
    too_large: bool = False
    refusal: HttpResponse | None = None  # what `check` answered instead; nothing was kept

    @property
    def status(self) -> int:
        """The HTTP status of the answer, whoever words it."""
        if not self.kept:
            return 413 if self.too_large else 400
        return 207 if self.errors else 201


async def upload_receive(
    request: HttpRequest, *, by: object, via: str, most: int | None = None, check: Check | None = None
) -> Upload:
    """Stream the request's file parts to disk (hashed, refused as they arrive), then store up
    to `most` of them for `by`, each with its "file.upload" audit entry marked `via`.

    Files past `most` (a slicer sends one) are left to the request's end, which deletes them.
    """
    handler = GcodeUploadHandler(request)
    request.upload_handlers = [handler]
    # Parsing copies the body to its files: its own thread, so page loads don't queue behind it.
    refusal = await sync_to_async(_read, thread_sensitive=False)(request, check)
    if refusal is not None:
        for received in handler.received:
            received.discard()
        return Upload(kept=(), errors=(), refusal=refusal)
    kept = await sync_to_async(_store_all)(handler.received[:most], by=by, via=via)
    errors = tuple(handler.rejected) or (() if kept else (NOTHING_ARRIVED,))
    return Upload(kept=kept, errors=errors, too_large=handler.too_large)


def _read(request: HttpRequest, check: Check | None) -> HttpResponse | None:
    request.POST  # noqa: B018 - reads the multipart body, files and fields, through our handler
    return check(request) if check is not None else None


def _store_all(received: list[IncomingFile], *, by: object, via: str) -> tuple[Stored, ...]:
    return tuple(library.store(incoming, by=by, via=via) for incoming in received)
