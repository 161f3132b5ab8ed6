"""The queue: what runs, what waits and why, and the actions on jobs."""

from __future__ import annotations

import json

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import aget_object_or_404, get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from jobs import queries, services
from jobs.control import job_stop
from jobs.forms import PrintNowForm, QueueForm
from jobs.matching import ReasonCode, plan, unavailable
from jobs.models import GcodeFile, Job
from jobs.views.library import file_page_context
from jobs.waiting import Explainer, explain_waiting
from printfarm.accounts.roles import operator_required, viewer_required
from printfarm.web import HtmxHttpRequest, render_fragment_or_page, safe_next, wants_fragment

WAITING_SHOWN = 100
RECENT_SHOWN = 15


@operator_required
@require_POST
def queue_add(request: HttpRequest, pk: int) -> HttpResponse:
    file = get_object_or_404(GcodeFile.objects.present(), pk=pk)
    form = QueueForm(request.POST, file=file)
    if not form.is_valid():
        return render(request, "jobs/file_detail.html", file_page_context(file, form), status=400)
    data = form.cleaned_data
    created = form.queue(file, by=request.user)
    where = f" for {', '.join(p.name for p in data['printers'])}" if data["printers"] else ""
    what = "upload" if data["action"] == Job.Action.UPLOAD else "print"
    messages.success(
        request, f"Queued {len(created)} {what} job{'s' if len(created) != 1 else ''} of {file.name}{where}."
    )
    return redirect("jobs:queue")


def queue_context() -> dict:
    now = timezone.now()
    candidates = queries.candidates()
    waiting = list(queries.waiting_jobs()[:WAITING_SHOWN])
    by_id = {c.pk: c for c in candidates}
    why = explain_waiting(waiting, candidates=candidates, now=now)
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
        "waiting": [{"job": job, "why": why[job.pk]} for job in waiting],
        "waiting_total": Job.objects.waiting().count(),
        "recent": Job.objects.finished().select_related("file").order_by("-finished_at")[:RECENT_SHOWN],
        "preview": preview,
        "unready": [
            {"printer": c, "why": u.text}
            for c in candidates
            if c.pk not in next_up and (u := unavailable(c, now)) and u.code == ReasonCode.BED_NOT_CLEAR
        ],
        "printers": [c for c in candidates if c.enabled],
    }


@viewer_required
@require_GET
def queue_page(request: HtmxHttpRequest) -> HttpResponse:
    return render_fragment_or_page(request, "jobs/queue.html", "queue-body", queue_context())


@operator_required
@require_POST
def queue_reorder(request: HtmxHttpRequest) -> HttpResponse:
    try:
        ids = [int(x) for x in json.loads(request.POST.get("order", "[]"))]
    except (ValueError, TypeError):
        return HttpResponseBadRequest("order must be a JSON list of job ids")
    services.jobs_reorder(ids, by=request.user)
    return _queue_response(request)


def _queue_response(request: HtmxHttpRequest) -> HttpResponse:
    if wants_fragment(request):
        return render(request, "jobs/queue.html#queue-body", queue_context())
    return redirect(safe_next(request, reverse("jobs:queue")))


def _job_action(request: HtmxHttpRequest, action) -> HttpResponse:
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
async def job_cancel_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = await aget_object_or_404(Job.objects.select_related("file"), pk=pk)
    user = await request.auser()
    try:
        await job_stop(job, by=user)
    except services.JobError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Cancelled job #{job.pk} ({job.file.name}).")
    return await sync_to_async(_queue_response)(request)


@operator_required
@require_POST
def job_requeue_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=pk)

    def requeue() -> str:
        new = services.job_requeue(job, by=request.user)
        return f"Job #{job.pk} queued again as job #{new.pk}."

    return _job_action(request, requeue)


@operator_required
@require_POST
def job_move_view(request: HtmxHttpRequest, pk: int, direction: str) -> HttpResponse:
    if direction not in ("up", "down"):
        return HttpResponseBadRequest("direction is up or down")
    job = get_object_or_404(Job, pk=pk)

    def move() -> str:
        services.job_move(job, direction, by=request.user)
        return ""

    return _job_action(request, move)


@operator_required
@require_POST
def job_print_now_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=pk)
    form = PrintNowForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an enabled printer to print on.")
        return _queue_response(request)
    printer = form.cleaned_data["printer"]

    def pin() -> str:
        services.job_print_now(job, printer, by=request.user)
        return f"Job #{job.pk} goes to {printer.name} next."

    return _job_action(request, pin)


@viewer_required
@require_GET
def job_explain(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("file", "target_printer"), pk=pk)
    why = Explainer(queries.candidates(), timezone.now()).explain(job)
    return render(request, "jobs/queue.html#explain", {"job": job, "rows": why.printers})


@viewer_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("file", "printer", "target_printer"), pk=pk)
    return render(request, "jobs/job_detail.html", {"job": job, "events": job.events.all()})
