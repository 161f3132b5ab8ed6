"""Printers: list and farm status (from the snapshot), detail, create, update, delete, commands."""

from __future__ import annotations

from asgiref.sync import async_to_sync, sync_to_async
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from ninja import Query, Router, Status
from pydantic import Field

from printers import bulk
from printers.cameras import camera_fill
from printers.commands import COMMANDS, command_send
from printers.forms import PrinterForm
from printers.models import Printer
from printers.services import printer_bed_set, printer_create, printer_delete, printer_update
from printfarm.accounts.models import Role
from printfarm.api import schemas
from printfarm.api.auth import need
from printfarm.api.snapshot import printer_dict, snapshot

router = Router(tags=["printers"])
ERRORS = schemas.ERRORS
CAMERA_URLS = ("camera_snapshot_url", "camera_stream_url")  # write-only, like the key


class PageQuery(schemas.Schema):
    limit: int = Field(500, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000_000)


def _json(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/json")


@router.get("/printers", response={200: schemas.PrinterPage, **ERRORS}, summary="Printers with live status")
async def printer_list(request: HttpRequest, page: Query[PageQuery]):
    snap = await snapshot.get()
    items = snap.items[page.offset : page.offset + page.limit]
    return _json(b'{"count":%d,"items":[%s]}' % (len(snap.items), b",".join(items)))


@router.get(
    "/status",
    response={200: schemas.FarmStatus, 304: None, **ERRORS},
    summary="The whole farm's status in one call",
    description="Send the last `ETag` as `If-None-Match`: an unchanged farm answers 304 with no body.",
)
async def farm_status(request: HttpRequest):
    snap = await snapshot.get()
    if request.headers.get("If-None-Match") == snap.etag:
        response = HttpResponseNotModified()
    else:
        response = _json(snap.status)
    response["ETag"] = snap.etag
    response["Cache-Control"] = "private, no-cache"
    return response


def _bulk_out(action: str, results: list[bulk.BulkResult]) -> dict:
    ok = sum(r.ok for r in results)
    rows = [{"id": r.printer_id, "name": r.name, "ok": r.ok, "message": r.message} for r in results]
    return {"action": action, "ok": ok, "failed": len(results) - ok, "results": rows}


@router.post(
    "/printers/actions",
    response={200: schemas.BulkOut, **ERRORS},
    summary="One action on many printers (operator; enable/disable: admin)",
    description="Each printer's action is sent, refused or fails on its own, and is audited like a "
    "single command; the answer has a result per printer. Actions: " + ", ".join(bulk.ACTIONS) + ".",
)
async def printers_action(request: HttpRequest, body: schemas.BulkIn):
    if body.action not in bulk.ACTIONS:
        raise Http404(f"No action {body.action!r}; try one of: {', '.join(bulk.ACTIONS)}.")
    actor = need(request, Role.ADMIN if bulk.needs_admin(body.action) else Role.OPERATOR)
    results = await bulk.bulk_action(
        action=body.action, printer_ids=body.printers, by=actor.user, via=actor.via
    )
    snapshot.invalidate()
    return _bulk_out(body.action, results)


@router.post(
    "/printers/clear-beds",
    response={200: schemas.BulkOut, **ERRORS},
    summary="Confirm every waiting bed clear (operator)",
    description="Every enabled printer whose finished print waits for its bed to be cleared may take "
    "its next job; one result per printer.",
)
async def printers_clear_beds(request: HttpRequest):
    actor = need(request, Role.OPERATOR)
    ids = await sync_to_async(bulk.beds_waiting)()
    results = await bulk.bulk_action(action=bulk.BED_CLEARED, printer_ids=ids, by=actor.user, via=actor.via)
    snapshot.invalidate()
    return _bulk_out(bulk.BED_CLEARED, results)


@router.get("/printers/{printer_id}", response={200: schemas.PrinterOut, **ERRORS})
async def printer_detail(request: HttpRequest, printer_id: int):
    snap = await snapshot.get()
    index = snap.ids.get(printer_id)
    if index is not None:
        return _json(snap.items[index])
    # Added in the last second: not in the snapshot yet.
    return await sync_to_async(_fresh)(printer_id)


def _fresh(printer_id: int) -> dict:
    printer = Printer.objects.with_status().filter(pk=printer_id).first()
    if printer is None:
        raise Http404(f"No printer {printer_id}.")
    return printer_dict(printer)


def _validated(data: dict, printer: Printer | None = None) -> PrinterForm:
    from printfarm.api.api import FieldErrors

    form = PrinterForm(data, instance=printer)
    if not form.is_valid():
        raise FieldErrors.from_form(form)
    return form


def _form_data(printer: Printer | None, values: dict) -> dict:
    """The web form's fields, from the stored printer and the values sent: one set of rules."""
    data: dict = {}
    if printer is not None:
        data = {
            name: getattr(printer, name)
            for name in PrinterForm.Meta.fields
            if name not in ("tags", "api_key")
        }
        data["tags"] = ", ".join(t.name for t in printer.tags.all())
        data["material"] = printer.material
    for name, value in values.items():
        data[name] = ", ".join(value) if name == "tags" else value
    for name in ("enabled", "auto_clear"):
        if data.get(name) is False:
            data.pop(name)  # an unchecked checkbox is absent from a form
    return data


@router.post("/printers", response={201: schemas.PrinterOut, **ERRORS}, summary="Add a printer (admin)")
def printer_add(request: HttpRequest, body: schemas.PrinterIn):
    actor = need(request, Role.ADMIN)
    form = _validated(_form_data(None, body.model_dump()))
    printer = printer_create(
        fields=form.printer_fields(), tags=form.cleaned_data["tags"], by=actor.user, via=actor.via
    )
    async_to_sync(camera_fill)(printer)  # its webcam, as the form's "Saved" fills it in
    snapshot.invalidate()
    return Status(201, _fresh(printer.pk))


@router.patch(
    "/printers/{printer_id}", response={200: schemas.PrinterOut, **ERRORS}, summary="Change a printer (admin)"
)
def printer_change(request: HttpRequest, printer_id: int, body: schemas.PrinterPatch):
    actor = need(request, Role.ADMIN)
    printer = Printer.objects.filter(pk=printer_id).first()
    if printer is None:
        raise Http404(f"No printer {printer_id}.")
    values = body.model_dump(exclude_unset=True)
    # null clears: PrinterPatch allows it only for these (the rest are present and not null).
    for name, empty in (("tags", []), ("location", ""), ("model", ""), ("material", ""), ("api_key", "")):
        if name in values and values[name] is None:
            values[name] = empty
    key = values.pop("api_key", None)
    # "" or null removes a camera URL (on the web form, blank keeps it: it is never shown back).
    cameras_removed = [name for name in CAMERA_URLS if name in values and not values[name]]
    for name in cameras_removed:
        del values[name]
    forget_pin = "certificate_pin" in values
    values.pop("certificate_pin", None)
    data = _form_data(printer, values)
    if forget_pin:
        data["forget_certificate"] = "on"
    if key is not None:
        data["api_key"] = key
        if key == "":
            data["clear_api_key"] = "on"
    form = _validated(data, printer)
    fields = form.printer_fields()
    fields |= dict.fromkeys(cameras_removed, "")
    printer = printer_update(
        printer=printer,
        fields=fields,
        tags=form.cleaned_data["tags"],
        by=actor.user,
        via=actor.via,
    )
    if {"base_url", "protocol"} & set(form.changed_data):
        async_to_sync(camera_fill)(printer)  # another printer there: its webcam, if it reports one
    snapshot.invalidate()
    return _fresh(printer.pk)


@router.delete("/printers/{printer_id}", response={204: None, **ERRORS}, summary="Remove a printer (admin)")
def printer_remove(request: HttpRequest, printer_id: int):
    actor = need(request, Role.ADMIN)
    printer = Printer.objects.filter(pk=printer_id).first()
    if printer is None:
        raise Http404(f"No printer {printer_id}.")
    printer_delete(printer=printer, by=actor.user, via=actor.via)
    snapshot.invalidate()
    return Status(204, None)


@router.post(
    "/printers/{printer_id}/commands/{name}",
    response={**ERRORS, 200: schemas.CommandOut, 409: schemas.CommandOut},
    summary="Send a command (operator)",
    description="`name`: "
    + ", ".join(COMMANDS)
    + ". 409 when the printer's last state can't use it (not sent), or the printer refused it"
    " or could not be reached.",
)
async def printer_command(request: HttpRequest, printer_id: int, name: str):
    actor = need(request, Role.OPERATOR)
    command = COMMANDS.get(name)
    if command is None:
        raise Http404(f"No command {name!r}; try one of: {', '.join(COMMANDS)}.")
    printer = await Printer.objects.filter(pk=printer_id).afirst()
    if printer is None:
        raise Http404(f"No printer {printer_id}.")
    outcome = await command_send(printer=printer, command=command, by=actor.user, via=actor.via)
    return Status(200 if outcome.ok else 409, {"ok": outcome.ok, "message": outcome.message})


@router.post("/printers/{printer_id}/bed-cleared", response={200: schemas.PrinterOut, **ERRORS})
def printer_bed_cleared(request: HttpRequest, printer_id: int):
    """Confirm the bed is clear (operator): the printer may take its next job."""
    actor = need(request, Role.OPERATOR)
    printer = Printer.objects.filter(pk=printer_id).first()
    if printer is None:
        raise Http404(f"No printer {printer_id}.")
    printer_bed_set(printer.pk, clear=True, by=actor.user, via=actor.via)
    snapshot.invalidate()
    return _fresh(printer.pk)
