"""Django's ASGI handler, with request bodies spooled into the data directory, and bodies
larger than any upload we accept, or sent with a key that may not upload, refused before
they are read."""

from __future__ import annotations

import json
import tempfile
import time
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections
from django.urls import Resolver404, resolve

from printfarm.api import slicer_keys
from printfarm.ops.middleware import HEADER, request_id_from, request_record

MULTIPART_MARGIN = 1024 * 1024  # form fields and part headers around the largest file
SLICER_UPLOAD = "/api/files/local"  # OctoPrint's upload, as slicers send it (printfarm.api.octoprint)


class FarmASGIHandler(ASGIHandler):
    async def handle(self, scope, receive, send):
        limit = settings.PRINTFARM_UPLOAD_MAX_BYTES + MULTIPART_MARGIN
        if _declared_length(scope) > limit:
            await send(
                {"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"text/plain")]}
            )
            text = f"Request body too large: the limit is {limit} bytes; nothing was stored.\n"
            await send({"type": "http.response.body", "body": text.encode()})
            return
        if (
            scope["method"] == "POST"
            and _path(scope) == SLICER_UPLOAD
            and await _upload_refused(scope, receive, send)
        ):
            return
        await super().handle(scope, receive, send)

    async def read_body(self, receive):
        # Django spools bodies past FILE_UPLOAD_MAX_MEMORY_SIZE to the system temp dir, which
        # is RAM (tmpfs) on many small boards; a 2 GB upload belongs on the data disk. The spool
        # is an unnamed file (O_TMPFILE, or unlinked at once), so a killed process leaves none of
        # it behind; closing it is what frees its space.
        body_file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - returned open, as Django does
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b", dir=settings.FILE_UPLOAD_TEMP_DIR
        )
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise RequestAborted()
                if "body" in message:
                    body_file.write(message["body"])
                if not message.get("more_body", False):
                    break
        except BaseException:  # a disconnect, a full disk, a cancelled task: free the space now
            body_file.close()
            raise
        body_file.seek(0)
        return body_file


async def _upload_refused(scope, receive, send) -> bool:
    """Answer a slicer's upload whose key may not upload (none, unknown, revoked, a viewer's)
    with 403 before its body is read, and say whether it did.

    A slicer that sent `Expect: 100-continue` (libcurl's PrusaSlicer and OrcaSlicer, for a large
    file) is never told to go on, so the body is never sent. One that sends the body at once
    (Cura) has it drained unread and unstored: closing with it unread could reset the connection
    before the slicer reads the refusal, which is what the user needs to see.
    """
    started = time.perf_counter()
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    key = slicer_keys.key_of(
        x_api_key=headers.get("x-api-key", ""),
        apikey=query.get("apikey", [""])[0],
        authorization=headers.get("authorization", ""),
    )
    try:
        actor = await slicer_keys.slicer_actor(key)
    except Exception:  # a busy database: the view checks again once the body is read
        return False
    finally:
        # A refused request never reaches Django's request_finished, which returns the connection.
        await sync_to_async(close_old_connections)()
    refusal = slicer_keys.upload_refusal(actor, key)
    if refusal is None:
        return False
    if headers.get("expect", "").lower() != "100-continue":
        while (message := await receive())["type"] != "http.disconnect" and message.get("more_body"):
            pass
    request_id = request_id_from(headers.get(HEADER.lower(), ""))
    body = json.dumps({"error": refusal}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (HEADER.lower().encode(), request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    request_record(
        method="POST",
        path=_path(scope),
        status=403,
        route=_route(scope),
        seconds=time.perf_counter() - started,
        user_id=str(actor.user.pk) if actor else "-",
        request_id=request_id,
    )
    return True


def _path(scope) -> str:
    """The path inside the app (what URL patterns see), below any prefix it is mounted at."""
    return scope["path"].removeprefix(scope.get("root_path", "")) or "/"


def _route(scope) -> str:
    try:
        return resolve(_path(scope)).view_name
    except Resolver404:
        return "unmatched"


def _declared_length(scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
