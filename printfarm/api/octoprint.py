"""Just enough of OctoPrint's REST API for slicers' "send to OctoPrint" to target the farm.

PrusaSlicer, SuperSlicer, OrcaSlicer and Cura test the connection with GET /api/version and
upload with POST /api/files/local (multipart `file`, optional `select` and `print`), sending
the API key as `X-Api-Key`: here the key is a printfarm API token. The file goes into the
library; with `print=true` or `select=true` it is also queued, for the printer or tag set on
the token, else for any printer that fits.

Cura's OctoPrint plugin also logs in passively, connects, polls `/api/printer` and `/api/job`
(answered by `octoprint_status` for the token's printer, tag or the whole farm), and may select
and print the uploaded file at its `Location`, `/api/files/local/<folder/name>` (`octoprint_files`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from jobs import services
from jobs.models import GcodeFile, Job
from jobs.uploads import upload_receive
from printfarm.accounts.models import ApiToken, Role
from printfarm.api import octoprint_status as status
from printfarm.api.auth import Actor
from printfarm.api.failures import failure_for
from printfarm.api.octoprint_files import file_find, file_info, path_of
from printfarm.api.slicer_keys import key_of, key_refusal, slicer_actor, upload_refusal

VERSION = {"api": "0.1", "server": "1.10.0", "text": "OctoPrint 1.10.0 (printfarm)"}
TRUE = {"true", "1", "yes", "on"}


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _key(request: HttpRequest) -> str:
    return key_of(
        x_api_key=request.headers.get("X-Api-Key", ""),
        apikey=request.GET.get("apikey", ""),
        authorization=request.headers.get("Authorization", ""),
    )


async def _actor(request: HttpRequest) -> Actor | None:
    actor = await slicer_actor(_key(request))
    request.auth = actor  # type: ignore[attr-defined] - as django-ninja sets it; the request log reads it
    return actor


def _slicer_endpoint(*methods: str) -> Callable:
    """Answers `methods` only, and never in HTML: slicers show an HTML error page as gibberish."""

    def decorate(view: Callable[..., Awaitable[HttpResponse]]) -> Callable:
        @functools.wraps(view)
        async def endpoint(request: HttpRequest, *args: str, **kwargs: str) -> HttpResponse:
            if request.method not in methods:
                response = _error(405, f"Use {' or '.join(methods)} here.")
                response["Allow"] = ", ".join(methods)
                return _worded_for(request, response)
            try:
                response = await view(request, *args, **kwargs)
            except Exception as exc:  # the edge: a busy database, an unreadable body, a bug
                failure = failure_for(request, exc)
                response = _error(failure.status, failure.detail)
                for name, value in failure.headers.items():
                    response[name] = value
            return _worded_for(request, response)

        return endpoint

    return decorate


def _worded_for(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Cura's OctoPrint plugin shows an error's text only when it comes as exactly `text/plain`
    (else "OctoPrint responded with an unknown error"): give it our message that way."""
    if response.status_code < 400 or "OctoPrintPlugin/" not in request.headers.get("User-Agent", ""):
        return response
    try:
        message = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return response
    plain = HttpResponse(message, status=response.status_code, content_type="text/plain")
    for name in ("Allow", "Retry-After"):
        if name in response:
            plain[name] = response[name]
    return plain


def _unauthorized(request: HttpRequest) -> JsonResponse:
    return _error(403, key_refusal(_key(request)))


@_slicer_endpoint("GET")
async def version(request: HttpRequest) -> JsonResponse:
    if await _actor(request) is None:
        return _unauthorized(request)
    return JsonResponse(VERSION)


@_slicer_endpoint("GET")
async def server(request: HttpRequest) -> JsonResponse:
    if await _actor(request) is None:
        return _unauthorized(request)
    return JsonResponse({"version": VERSION["server"], "safemode": None})


@_slicer_endpoint("GET")
async def settings(request: HttpRequest) -> JsonResponse:
    # Cura reads webcam and feature settings here; the farm has none to offer.
    if await _actor(request) is None:
        return _unauthorized(request)
    return JsonResponse({"feature": {"sdSupport": False}, "webcam": {"webcamEnabled": False}})


@_slicer_endpoint("GET")
async def printer_profiles(request: HttpRequest) -> JsonResponse:
    # Cura names the connected printer after the current profile's name and model.
    return await _about_token(request, lambda token: {"profiles": {status.PROFILE_ID: status.profile(token)}})


@csrf_exempt  # authenticated by the token header, never by a cookie
@_slicer_endpoint("POST")
async def files_local(request: HttpRequest) -> JsonResponse:
    # printfarm.asgi_http refuses these before the body is read; this check serves other servers.
    actor = await _actor(request)
    if refusal := upload_refusal(actor, _key(request)):
        return _error(403, refusal)
    assert actor is not None
    upload = await upload_receive(request, by=actor.user, via=actor.via, most=1, folder_field="path")
    if not upload.kept:
        return _error(upload.status, " ".join(upload.errors))
    file = upload.kept[0].file
    queued = any(request.POST.get(field, "").lower() in TRUE for field in ("select", "print"))
    job_ids = await sync_to_async(_record)(actor, file, queued=queued)
    refs = _refs(request, file)
    body = {
        "done": True,
        "files": {
            "local": {
                "name": file.name,
                "display": file.name,
                "origin": "local",
                "path": path_of(file),
                "refs": refs,
            }
        },
        "effectivePrint": bool(job_ids),
        "effectiveSelect": bool(job_ids),
    }
    response = JsonResponse(body, status=201)
    # Cura posts its select/print command to where this points, and reads the file's analysis there.
    response["Location"] = refs["resource"]
    return response


def _refs(request: HttpRequest, file: GcodeFile) -> dict[str, str]:
    """The file's OctoPrint resource, and its page in printfarm (OctoPrint has no such link)."""
    return {
        "resource": request.build_absolute_uri(reverse("octoprint-file", args=[path_of(file)])),
        "printfarm": request.build_absolute_uri(reverse("jobs:file", args=[file.pk])),
    }


def _record(actor: Actor, file, *, queued: bool) -> list[int]:
    """Queue `file` when the slicer asked to print or select it. On a farm, selecting a file is
    queueing it: Cura's "Queue job" (offered while the token's printer is busy) selects without
    printing. A plain upload ("Upload" in PrusaSlicer) only puts it in the library."""
    if not queued:
        return []
    token = ApiToken.objects.select_related("printer", "tag").get(pk=actor.token_id)
    with transaction.atomic():
        jobs = services.jobs_create(
            file=file,
            printers=[token.printer] if token.printer_id else [],
            tags=[token.tag] if token.tag_id and not token.printer_id else [],
            by=actor.user,
            via=actor.via,  # audited by the service: "1 × print for <printer>", via slicer
        )
        # What this slicer's monitor (GET /api/job) follows.
        Job.objects.filter(pk__in=[j.pk for j in jobs]).update(api_token=token)
    return [j.pk for j in jobs]


# -- Cura's OctoPrint plugin: connecting, monitoring, printing an uploaded file ----------------


async def _about_token(request: HttpRequest, read: Callable[[ApiToken], dict]) -> HttpResponse:
    """`read(token)` for the request's token: what it is bound to decides what is described."""
    actor = await _actor(request)
    # The token can be gone while its check is still cached (deleted with its user).
    token = await sync_to_async(status.token_of)(actor.token_id) if actor else None
    if token is None:
        return _unauthorized(request)
    return JsonResponse(await sync_to_async(read)(token))


def _body(request: HttpRequest) -> dict | None:
    """A command's JSON object, or None when the body is not one."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@_slicer_endpoint("GET")
async def printer(request: HttpRequest) -> HttpResponse:
    return await _about_token(request, lambda token: status.printer_state(status.describe(token)))


@csrf_exempt  # authenticated by the token header, never by a cookie
@_slicer_endpoint("GET", "POST")
async def job(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":  # Cura's pause, resume and cancel buttons
        if await _actor(request) is None:
            return _unauthorized(request)
        queue = request.build_absolute_uri(reverse("jobs:queue"))
        return _error(409, f"Pause, resume and cancel farm jobs in printfarm: {queue}")
    return await _about_token(request, lambda token: _job_state(request, token))


def _job_state(request: HttpRequest, token: ApiToken) -> dict:
    last = status.last_job(token)
    page = request.build_absolute_uri(reverse("jobs:job", args=[last.pk])) if last else ""
    return status.job_state(
        status.describe(token), last, file_path=path_of(last.file) if last else "", page_url=page
    )


@csrf_exempt
@_slicer_endpoint("GET", "POST")
async def connection(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return await _about_token(request, lambda token: status.connection_state(status.describe(token)))
    if await _actor(request) is None:
        return _unauthorized(request)
    command = (_body(request) or {}).get("command")
    if command == "connect":
        return HttpResponse(status=204)  # the farm is always connected to its printers
    return _error(400, f"printfarm stays connected to its printers: {command!r} is not offered.")


@csrf_exempt
@_slicer_endpoint("POST")
async def login(request: HttpRequest) -> HttpResponse:
    """Passive login: who the API key belongs to (Cura shows the name)."""
    actor = await _actor(request)
    if actor is None:
        return _unauthorized(request)
    role = actor.role.value
    return JsonResponse(
        {
            "name": actor.username,
            "active": True,
            "user": True,
            "admin": actor.role == Role.ADMIN,
            "apikey": None,
            "groups": [role],
            "roles": [role],
            "permissions": [],
            "_is_external_client": False,
            "_login_mechanism": "apikey",
        }
    )


@csrf_exempt
@_slicer_endpoint("GET", "POST")
async def file_resource(request: HttpRequest, path: str) -> HttpResponse:
    """A library entry by its `folder/name`: its analysis, and Cura's select (and print) command."""
    actor = await _actor(request)
    if actor is None:
        return _unauthorized(request)
    if request.method == "POST" and (refusal := upload_refusal(actor, _key(request), doing="Printing")):
        return _error(403, refusal)
    file = await sync_to_async(file_find)(path)
    if file is None:
        return _error(404, f"No file {path!r} in the printfarm library.")
    if request.method == "GET":
        return JsonResponse(file_info(file, refs=_refs(request, file)))
    command = _body(request)
    if command is None or command.get("command") != "select":
        return _error(400, 'Send {"command": "select", "print": true} to queue this file.')
    await sync_to_async(_record)(actor, file, queued=True)
    return HttpResponse(status=204)  # OctoPrint's answer; the job is on the farm's queue


@csrf_exempt
@_slicer_endpoint("GET", "POST", "PUT", "PATCH", "DELETE")
async def absent(request: HttpRequest, rest: str = "") -> HttpResponse:
    """The rest of OctoPrint's API and plugins (Cura probes for the AppKeys plugin): a JSON 404."""
    return _error(404, f"printfarm does not offer {request.path}; use a printfarm API token as the API key.")
