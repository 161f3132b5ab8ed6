"""The queue: what runs, what waits and why, and the actions on jobs."""

from __future__ import annotations

import json
from collections import Counter

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from jobs import queries, services
from jobs.control import job_stop
from jobs.forms import PrintNowForm, QueueForm
from jobs.matching import plan, reasons, unavailable
from jobs.models import GcodeFile, Job
from printers.commands import Outcome
from printers.models import Printer
from printers.presenters import card_for
from printfarm.accounts.audit import audit_record
from printfarm.accounts.roles import operator_required, viewer_required

WAITING_SHOWN = 100
RECENT_SHOWN = 15


def _back(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.headers.get("referer", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


@operator_required
@require_POST
def queue_add(request: HttpRequest, pk: int) -> HttpResponse:
    file = get_object_or_404(GcodeFile.objects.present(), pk=pk)
    form = QueueForm(request.POST, file=file)
    if not form.is_valid():
        jobs = file.jobs.select_related("printer").order_by("-pk")[:20]
        return render(
            request, "jobs/file_detail.html", {"file": file, "form": form, "jobs": jobs}, status=400
        )
    data = form.cleaned_data
    created = form.queue(file, by=request.user)
    where = f" for {', '.join(p.name for p in data['printers'])}" if data["printers"] else ""
    what = "upload" if data["action"] == Job.Action.UPLOAD else "print"
    audit_record(request.user, "job.queue", target=file, detail=f"{len(created)} × {what}")
    messages.success(
        request, f"Queued {len(created)} {what} job{'s' if len(created) != 1 else ''} of {file.name}{where}."
    )
    return redirect("jobs:queue")


def _explained(waiting: list[Job], candidates: list, now) -> list[dict]:
    """Per waiting job: the printers that could take it now, and a count of what keeps the others."""
    rows = []
    for job in waiting:
        needs = queries.needs_of(job)
        blockers: Counter[str] = Counter()
        fits = 0
        for candidate in candidates:
            found = reasons(needs, candidate, now)
            if not found:
                fits += 1
            else:
                blockers[found[0]] += 1
        rows.append(
            {
                "job": job,
                "fits_now": fits,
                "blockers": blockers.most_common(3),
                "others": max(0, sum(blockers.values()) - sum(n for _, n in blockers.most_common(3))),
            }
        )
    return rows


def queue_context() -> dict:
    now = timezone.now()
    candidates = queries.candidates()
    waiting = list(queries.waiting_jobs()[:WAITING_SHOWN])
    by_id = {c.pk: c for c in candidates}
    next_up = plan(queries.waiting_needs(), candidates)
    waiting_ids = {j.pk: j for j in waiting}
    preview = []
    for printer_id, job_id in next_up.items():
        job = waiting_ids.get(job_id) or Job.objects.select_related("file").get(pk=job_id)
        preview.append({"printer": by_id[printer_id], "job": job})
    return {
        "active": Job.objects.active()
        .select_related("file", "printer", "printer__status")
        .order_by("assigned_at", "pk"),
        "waiting": _explained(waiting, candidates, now),
        "waiting_total": Job.objects.waiting().count(),
        "recent": Job.objects.finished().select_related("file").order_by("-finished_at")[:RECENT_SHOWN],
        "preview": preview,
        "unready": [
            {"printer": c, "why": unavailable(c, now)}
            for c in candidates
            if c.pk not in next_up and unavailable(c, now) == "bed not confirmed clear"
        ],
        "printers": [c for c in candidates if c.enabled],
    }


@viewer_required
@require_GET
def queue_page(request: HttpRequest) -> HttpResponse:
    template = "jobs/queue.html#queue-body" if request.htmx else "jobs/queue.html"
    return render(request, template, queue_context())


@operator_required
@require_POST
def queue_reorder(request: HttpRequest) -> HttpResponse:
    try:
        ids = [int(x) for x in json.loads(request.POST.get("order", "[]"))]
    except (ValueError, TypeError):
        return HttpResponseBadRequest("order must be a JSON list of job ids")
    services.jobs_reorder(ids)
    audit_record(request.user, "job.reorder", target_type="job", detail=f"order: {ids}")
    return _queue_response(request)


def _queue_response(request: HttpRequest) -> HttpResponse:
    if request.htmx:
        return render(request, "jobs/queue.html#queue-body", queue_context())
    return redirect(_back(request, reverse("jobs:queue")))


def _job_action(request: HttpRequest, action) -> HttpResponse:
    try:
        message = action()
    except services.JobError as exc:
        messages.error(request, str(exc))
    else:
        if message:
            messages.success(request, message)
    return _queue_response(request)


@operator_required
@require_POST
async def job_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = await aget_object_or_404(Job.objects.select_related("file"), pk=pk)
    user = await request.auser()
    try:
        await job_stop(job, by=user)
    except services.JobError as exc:
        messages.error(request, str(exc))
    else:
        await sync_to_async(audit_record)(user, "job.cancel", target=job)
        messages.success(request, f"Cancelled job #{job.pk} ({job.file.name}).")
    return await sync_to_async(_queue_response)(request)


@operator_required
@require_POST
def job_requeue_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=pk)

    def requeue() -> str:
        new = services.job_requeue(job, by=request.user)
        audit_record(request.user, "job.requeue", target=job, detail=f"as job #{new.pk}")
        return f"Job #{job.pk} queued again as job #{new.pk}."

    return _job_action(request, requeue)


@operator_required
@require_POST
def job_move_view(request: HttpRequest, pk: int, direction: str) -> HttpResponse:
    if direction not in ("up", "down"):
        return HttpResponseBadRequest("direction is up or down")
    job = get_object_or_404(Job, pk=pk)

    def move() -> str:
        services.job_move(job, direction)
        audit_record(request.user, "job.move", target=job, detail=direction)
        return ""

    return _job_action(request, move)


@operator_required
@require_POST
def job_print_now_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=pk)
    form = PrintNowForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an enabled printer to print on.")
        return _queue_response(request)
    printer = form.cleaned_data["printer"]

    def pin() -> str:
        services.job_print_now(job, printer, by=request.user)
        audit_record(request.user, "job.print_now", target=job, detail=f"on {printer.name}")
        return f"Job #{job.pk} goes to {printer.name} next."

    return _job_action(request, pin)


@viewer_required
@require_GET
def job_explain(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("file", "target_printer"), pk=pk)
    now = timezone.now()
    needs = queries.needs_of(job)
    rows = [{"printer": c, "reasons": reasons(needs, c, now)} for c in queries.candidates()]
    rows.sort(key=lambda r: (len(r["reasons"]) > 0, r["printer"].name))
    return render(request, "jobs/queue.html#explain", {"job": job, "rows": rows})


@viewer_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("file", "printer", "target_printer"), pk=pk)
    return render(request, "jobs/job_detail.html", {"job": job, "events": job.events.all()})


@operator_required
@require_POST
def bed_cleared(request: HttpRequest, pk: int) -> HttpResponse:
    printer = get_object_or_404(Printer, pk=pk)
    services.printer_bed_set(printer.pk, clear=True, by=request.user)
    audit_record(request.user, "printer.bed_cleared", target=printer)
    if request.htmx:
        printer = Printer.objects.with_status().get(pk=pk)
        outcome = Outcome(ok=True, message="Bed marked clear: the next job can start.")
        return render(
            request, "printers/dashboard.html#printer-card", {"card": card_for(printer), "result": outcome}
        )
    messages.success(request, f"{printer.name}: bed marked clear.")
    return redirect(_back(request, reverse("printers:dashboard")))
