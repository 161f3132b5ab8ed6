"""The one way uploaded G-code comes in: the web library, `POST /api/v1/files` and the slicers'
`POST /api/files/local` all receive through `upload_receive`.

So the three give the same verdict for the same file (size limit, extension, empty file; a file
whose metadata can't be read is still stored, a 3MF that fails its checks is not) and write the
same audit entry; each only words the answer in its own protocol.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from jobs import library
from jobs.library import GcodeUploadHandler, IncomingFile, NameKeepingParser, Stored

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
    request: HttpRequest,
    *,
    by: object,
    via: str,
    most: int | None = None,
    check: Check | None = None,
    folder_field: str = "",
) -> Upload:
    """Stream the request's file parts to disk (hashed, refused as they arrive), then store up
    to `most` of them for `by` in the folder the form field `folder_field` names (OctoPrint's
    `path`; none: the top), each with its "file.upload" audit entry marked `via`.

    Files past `most` (a slicer sends one) are left to the request's end, which deletes them.
    """
    handler = GcodeUploadHandler(request)
    request.upload_handlers = [handler]
    request.parse_file_upload = functools.partial(_parse, request)  # type: ignore[method-assign]
    # Parsing copies the body to its files: its own thread, so page loads don't queue behind it.
    try:
        refusal = await sync_to_async(_read, thread_sensitive=False)(request, check)
    except BaseException:  # a body that can't be read (malformed, cut off): keep none of it
        handler.discard_all()
        raise
    if refusal is not None:
        handler.discard_all()
        return Upload(kept=(), errors=(), refusal=refusal)
    folder, problem = library.folder_from(request.POST.get(folder_field, "") if folder_field else "")
    if problem:
        handler.discard_all()
        return Upload(kept=(), errors=(problem,))
    kept, refused = await sync_to_async(_store_all)(handler.received[:most], folder=folder, by=by, via=via)
    errors = (*handler.rejected, *refused) or (() if kept else (NOTHING_ARRIVED,))
    return Upload(kept=kept, errors=errors, too_large=handler.too_large)


def _parse(request: HttpRequest, meta, post_data) -> tuple:
    # HttpRequest.parse_file_upload with our parser: names reach the handler as sent, to be judged.
    return NameKeepingParser(meta, post_data, request.upload_handlers, request.encoding).parse()


def _read(request: HttpRequest, check: Check | None) -> HttpResponse | None:
    request.POST  # noqa: B018 - reads the multipart body, files and fields, through our handler
    return check(request) if check is not None else None


def _store_all(
    received: list[IncomingFile], *, folder: str, by: object, via: str
) -> tuple[tuple[Stored, ...], tuple[str, ...]]:
    """The files stored, and one line per file the library refused (nothing of it kept)."""
    kept, refused = [], []
    for incoming in received:
        try:
            kept.append(library.store(incoming, folder=folder, by=by, via=via))
        except library.Refused as exc:
            refused.append(str(exc))
    return tuple(kept), tuple(refused)
