"""Django's ASGI handler, with request bodies spooled into the data directory and bodies
larger than any upload we accept refused before they are read."""

from __future__ import annotations

import tempfile

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler

MULTIPART_MARGIN = 1024 * 1024  # form fields and part headers around the largest file


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


def _declared_length(scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
