"""Just enough of OctoPrint's REST API for slicers' "send to OctoPrint" to target the farm.

PrusaSlicer, SuperSlicer, OrcaSlicer and Cura test the connection with GET /api/version and
upload with POST /api/files/local (multipart `file`, optional `select` and `print`), sending
the API key as `X-Api-Key`: here the key is a printfarm API token. The file goes into the
library; with `print=true` it is also queued, for the printer or tag set on the token, else
for any printer that fits.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from jobs import services
from jobs.uploads import upload_receive
from printfarm.accounts.models import ApiToken, Role
from printfarm.accounts.roles import RANK
from printfarm.api.auth import Actor, aactor_for_token
from printfarm.api.failures import failure_for

VERSION = {"api": "0.1", "server": "1.10.0", "text": "OctoPrint 1.10.0 (printfarm)"}
TRUE = {"true", "1", "yes", "on"}


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


async def _actor(request: HttpRequest) -> Actor | None:
    key = request.headers.get("X-Api-Key") or request.GET.get("apikey", "")
    auth = request.headers.get("Authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:]
    return await aactor_for_token(key.strip(), via="slicer") if key else None


def _slicer_endpoint(method: str) -> Callable:
    """Answers `method` only, and always in JSON: slicers show an HTML error page as gibberish."""

    def decorate(view: Callable[[HttpRequest], Awaitable[JsonResponse]]) -> Callable:
        @functools.wraps(view)
        async def endpoint(request: HttpRequest) -> JsonResponse:
            if request.method != method:
                response = _error(405, f"Use {method} here.")
                response["Allow"] = method
                return response
            try:
                return await view(request)
            except Exception as exc:  # the edge: a busy database, an unreadable body, a bug
                failure = failure_for(request, exc)
                response = _error(failure.status, failure.detail)
                for name, value in failure.headers.items():
                    response[name] = value
                return response

        return endpoint

    return decorate


def _unauthorized() -> JsonResponse:
    return _error(401, "Send a printfarm API token as X-Api-Key (create one on the API tokens page).")


@_slicer_endpoint("GET")
async def version(request: HttpRequest) -> JsonResponse:
    if await _actor(request) is None:
        return _unauthorized()
    return JsonResponse(VERSION)


@_slicer_endpoint("GET")
async def server(request: HttpRequest) -> JsonResponse:
    if await _actor(request) is None:
        return _unauthorized()
    return JsonResponse({"version": VERSION["server"], "safemode": None})


@_slicer_endpoint("GET")
async def settings(request: HttpRequest) -> JsonResponse:
    # Cura reads webcam and feature settings here; the farm has none to offer.
    if await _actor(request) is None:
        return _unauthorized()
    return JsonResponse({"feature": {"sdSupport": False}, "webcam": {"webcamEnabled": False}})


@_slicer_endpoint("GET")
async def printer_profiles(request: HttpRequest) -> JsonResponse:
    if await _actor(request) is None:
        return _unauthorized()
    profile = {
        "id": "_default",
        "name": "printfarm",
        "default": True,
        "current": True,
        "extruder": {"count": 1},
    }
    return JsonResponse({"profiles": {"_default": profile}})


@csrf_exempt  # authenticated by the token header, never by a cookie
@_slicer_endpoint("POST")
async def files_local(request: HttpRequest) -> JsonResponse:
    actor = await _actor(request)
    if actor is None:
        return _unauthorized()
    if RANK[actor.role] < RANK[Role.OPERATOR]:
        return _error(403, f"Uploading needs the operator role; this token's user is a {actor.role.value}.")
    upload = await upload_receive(request, by=actor.user, via=actor.via, most=1)
    if not upload.kept:
        return _error(upload.status, " ".join(upload.errors))
    file = upload.kept[0].file
    printing = request.POST.get("print", "").lower() in TRUE
    job_ids = await sync_to_async(_record)(actor, file, printing)
    location = reverse("jobs:file", args=[file.pk])
    body = {
        "done": True,
        "files": {
            "local": {
                "name": file.name,
                "display": file.name,
                "origin": "local",
                "path": file.name,
                "refs": {
                    "resource": request.build_absolute_uri(location),
                    "download": request.build_absolute_uri(location),
                },
            }
        },
        "effectivePrint": bool(job_ids),
        "effectiveSelect": bool(job_ids),
    }
    response = JsonResponse(body, status=201)
    response["Location"] = request.build_absolute_uri(location)
    return response


def _record(actor: Actor, file, printing: bool) -> list[int]:
    if not printing:
        return []
    token = ApiToken.objects.select_related("printer", "tag").get(pk=actor.token_id)
    jobs = services.jobs_create(
        file=file,
        printers=[token.printer] if token.printer_id else [],
        tags=[token.tag] if token.tag_id and not token.printer_id else [],
        by=actor.user,
        via=actor.via,  # audited by the service: "1 × print for <printer>", via slicer
    )
    return [j.pk for j in jobs]
