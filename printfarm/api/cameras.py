"""A printer's camera through the API: the same relay the web pages use (printers.camera_views),
so a script or dashboard with a token gets the picture and never the camera's address."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from printers.camera_views import STATUS_HEADER, snapshot_response, stream_response
from printfarm.api import schemas

router = Router(tags=["printers"])
IMAGE = {"content": {"image/jpeg": {}, "image/png": {}, "image/svg+xml": {}}}


@router.get(
    "/printers/{printer_id}/camera/snapshot",
    response={200: None, **schemas.ERRORS},
    summary="The camera's latest snapshot",
    description="A JPEG or PNG at most a few seconds old, fetched by this server (one fetch however "
    "many ask). A camera that is down answers 200 with an SVG placeholder saying why, and the "
    "`X-Camera-Status` header `offline; <reason>` (else `ok`). 404 when the printer has no camera.",
    openapi_extra={"responses": {200: {"description": "the image", **IMAGE}}},
)
async def printer_camera_snapshot(request: HttpRequest, printer_id: int):
    return await snapshot_response(printer_id)


@router.get(
    "/printers/{printer_id}/camera/stream",
    response={200: None, **schemas.ERRORS},
    summary="The camera's live MJPEG stream",
    description="multipart/x-mixed-replace, relayed byte for byte; 503 when too many watch this "
    "camera (refresh the snapshot instead), 502 when it is down, 404 without a stream URL.",
    openapi_extra={
        "responses": {200: {"description": "the stream", "content": {"multipart/x-mixed-replace": {}}}}
    },
)
async def printer_camera_stream(request: HttpRequest, printer_id: int):
    response = await stream_response(printer_id)
    if response.status_code < 400:
        return response
    from printfarm.api.api import error  # it imports this module's router

    answer = error(request, response.status_code, response.content.decode().strip())
    for name in ("Retry-After", STATUS_HEADER):
        if name in response:
            answer[name] = response[name]
    return answer
