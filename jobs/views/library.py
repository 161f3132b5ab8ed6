"""The G-code library: list, upload (streamed, many at once), detail with the queue form, delete."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from jobs import library
from jobs.forms import QueueForm
from jobs.models import GcodeFile
from printfarm.accounts.audit import audit_record
from printfarm.accounts.roles import operator_required, viewer_required

PAGE_SIZE = 50
SORTS = {
    "new": ("-uploaded_at", "Newest"),
    "name": ("name", "Name"),
    "size": ("-size", "Largest"),
    "time": ("estimated_seconds", "Shortest print"),
}


@viewer_required
@require_GET
def file_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    sort = request.GET.get("sort", "new")
    order = SORTS.get(sort, SORTS["new"])[0]
    files = GcodeFile.objects.present().search(query).order_by(order, "pk")
    page = Paginator(files, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "query": query,
        "sort": sort if sort in SORTS else "new",
        "sorts": [(key, label) for key, (_, label) in SORTS.items()],
        "max_bytes": settings.PRINTFARM_UPLOAD_MAX_BYTES,
        "max_text": library.human_size(settings.PRINTFARM_UPLOAD_MAX_BYTES),
        "extensions": ", ".join(library.EXTENSIONS),
    }
    template = (
        "jobs/library.html#file-table" if request.htmx and not request.htmx.boosted else "jobs/library.html"
    )
    return render(request, template, context)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@csrf_exempt  # checked below, after our upload handler has read the body (docs: upload handlers)
@operator_required  # before the body is read: a refused upload stores nothing
@require_POST
async def file_upload(request: HttpRequest) -> HttpResponse:
    """Receive one or many files; each is streamed to disk, hashed, and refused or stored."""
    handler = library.GcodeUploadHandler(request)
    request.upload_handlers = [handler]
    # Parsing copies the body to its files: its own thread, so page loads don't queue behind it.
    csrf_refusal = await sync_to_async(_parse_and_check_csrf, thread_sensitive=False)(request)
    if csrf_refusal is not None:
        for received in handler.received:
            received.discard()
        return csrf_refusal
    user = await request.auser()
    stored = [await sync_to_async(_store)(received, user) for received in handler.received]
    errors = list(handler.rejected)
    if not stored and not errors:
        errors.append("No file arrived; choose a G-code file to upload.")
    if _wants_json(request):
        status = 201 if stored and not errors else (413 if any("limit" in e for e in errors) else 400)
        if stored and errors:
            status = 207
        return JsonResponse(
            {
                "stored": [
                    {"id": s.file.pk, "name": s.file.name, "created": s.created, "message": s.message}
                    for s in stored
                ],
                "errors": errors,
            },
            status=status,
        )
    for s in stored:
        messages.success(request, s.message)
    for error in errors:
        messages.error(request, error)
    return redirect("jobs:library")


def _store(received: library.IncomingFile, user: object) -> library.Stored:
    stored = library.store(received, by=user)
    audit_record(user, "file.upload", target=stored.file, detail=stored.message)
    return stored


def _parse_and_check_csrf(request: HttpRequest) -> HttpResponse | None:
    request.FILES  # noqa: B018 - reads the multipart body through our handler
    return CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, None, (), {})


@viewer_required
@require_GET
def file_detail(request: HttpRequest, pk: int) -> HttpResponse:
    file = get_object_or_404(GcodeFile.objects.present(), pk=pk)
    jobs = file.jobs.select_related("printer").order_by("-pk")[:20]
    context = {"file": file, "form": QueueForm(file=file), "jobs": jobs}
    return render(request, "jobs/file_detail.html", context)


@viewer_required
@require_GET
def file_thumbnail(request: HttpRequest, pk: int) -> HttpResponse:
    file = get_object_or_404(GcodeFile, pk=pk)
    path = library.thumbnail_path(file)
    if not file.thumbnail_type or not path.exists():
        raise Http404("No thumbnail")
    response = FileResponse(open(path, "rb"), content_type=file.thumbnail_type)  # noqa: SIM115
    # The path is named by the content's hash: it never changes for this file id.
    response["Cache-Control"] = "private, max-age=86400"
    return response


@operator_required
@require_POST
def file_delete(request: HttpRequest, pk: int) -> HttpResponse:
    file = get_object_or_404(GcodeFile.objects.present(), pk=pk)
    try:
        # Recorded first (a file without history loses its pk), undone with a refused delete.
        with transaction.atomic():
            audit_record(request.user, "file.delete", target=file)
            library.delete(file)
    except library.FileInUse as exc:
        messages.error(request, str(exc))
        return redirect("jobs:file", pk=pk)
    messages.success(request, f"Deleted {file.name}.")
    return redirect("jobs:library")
