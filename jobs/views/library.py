"""The G-code library: list, upload (streamed, many at once), detail with the queue form, delete."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from jobs import library
from jobs.forms import QueueForm
from jobs.models import GcodeFile
from jobs.presenters import file_facts
from jobs.uploads import upload_receive
from printfarm.accounts.roles import operator_required, viewer_required
from printfarm.web import HtmxHttpRequest, render_fragment_or_page

PAGE_SIZE = 50
SORTS = {
    "new": ("-uploaded_at", "Newest"),
    "name": ("name", "Name"),
    "size": ("-size", "Largest"),
    "time": ("estimated_seconds", "Shortest print"),
}


@viewer_required
@require_GET
def file_list(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    sort = request.GET.get("sort", "new")
    order = SORTS.get(sort, SORTS["new"])[0]
    files = GcodeFile.objects.present().search(query).order_by(order, "pk")
    page = Paginator(files, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": [{"file": file, "facts": file_facts(file)} for file in page],
        "query": query,
        "sort": sort if sort in SORTS else "new",
        "sorts": [(key, label) for key, (_, label) in SORTS.items()],
        "max_bytes": settings.PRINTFARM_UPLOAD_MAX_BYTES,
        "max_text": library.human_size(settings.PRINTFARM_UPLOAD_MAX_BYTES),
        "extensions": ", ".join(library.EXTENSIONS),
    }
    return render_fragment_or_page(request, "jobs/library.html", "file-table", context)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@csrf_exempt  # checked below, after our upload handler has read the body (docs: upload handlers)
@operator_required  # before the body is read: a refused upload stores nothing
@require_POST
async def file_upload(request: HttpRequest) -> HttpResponse:
    """Receive one or many files; each is streamed to disk, hashed, and refused or stored."""
    upload = await upload_receive(request, by=await request.auser(), via="web", check=_csrf_refusal)
    if upload.refusal is not None:
        return upload.refusal
    if _wants_json(request):
        stored = [
            {"id": s.file.pk, "name": s.file.name, "created": s.created, "message": s.message}
            for s in upload.kept
        ]
        return JsonResponse({"stored": stored, "errors": list(upload.errors)}, status=upload.status)
    for s in upload.kept:
        messages.success(request, s.message)
    for error in upload.errors:
        messages.error(request, error)
    return redirect("jobs:library")


def _csrf_refusal(request: HttpRequest) -> HttpResponse | None:
    # The body is read by now (through the upload handler), so the token field can be checked.
    return CsrfViewMiddleware(lambda r: HttpResponse()).process_view(request, None, (), {})


@viewer_required
@require_GET
def file_detail(request: HttpRequest, pk: int) -> HttpResponse:
    file = get_object_or_404(GcodeFile.objects.present(), pk=pk)
    return render(request, "jobs/file_detail.html", file_page_context(file, QueueForm(file=file)))


def file_page_context(file: GcodeFile, form: QueueForm) -> dict:
    """The file page's context; the queue view renders it again with a form's errors."""
    jobs = file.jobs.select_related("printer").order_by("-pk")[:20]
    return {"file": file, "facts": file_facts(file), "form": form, "jobs": jobs}


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


@viewer_required
@require_GET
def plate_thumbnail(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    """A 3MF plate's image (the file's own thumbnail is plate 1's)."""
    file = get_object_or_404(GcodeFile, pk=pk)
    if not any(p["index"] == index and p.get("thumbnail") for p in file.plates):
        raise Http404("No such plate image")
    path = library.files_dir() / library.plate_thumbnail_name(file, index)
    if not path.exists():
        raise Http404("No such plate image")
    data = path.read_bytes()  # a slicer's plate image: some hundred KB at most
    kind = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    response = HttpResponse(data, content_type=kind)
    response["Cache-Control"] = "private, max-age=86400"
    return response


@operator_required
@require_POST
def file_delete(request: HttpRequest, pk: int) -> HttpResponse:
    file = get_object_or_404(GcodeFile.objects.present(), pk=pk)
    try:
        library.delete(file, by=request.user, via="web")
    except library.FileInUse as exc:
        messages.error(request, str(exc))
        return redirect("jobs:file", pk=pk)
    messages.success(request, f"Deleted {file.name}.")
    return redirect("jobs:library")
