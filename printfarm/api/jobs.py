"""Jobs: create (queue copies), list with filters, detail with events, cancel, requeue, reorder."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from ninja import Query, Router, Status
from pydantic import Field

from jobs import services
from jobs.control import job_stop
from jobs.forms import QueueForm
from jobs.models import GcodeFile, Job
from jobs.waiting import Waiting, explain_waiting
from printers.models import Tag
from printfarm.accounts.models import Role
from printfarm.api import schemas
from printfarm.api.auth import need

router = Router(tags=["jobs"])
ERRORS = schemas.ERRORS


def job_out(job: Job, waiting: schemas.WaitingOut | None = None) -> dict:
    return {
        **{name: getattr(job, name) for name in schemas.JobOut.model_fields if hasattr(job, name)},
        "id": job.pk,
        "file_name": job.file.name,
        "required_tags": sorted(t.name for t in job.required_tags.all()),
        "waiting": waiting,
    }


def _waiting_out(waiting: Waiting) -> schemas.WaitingOut:
    return {
        "summary": waiting.summary,
        "printers": [
            {
                "printer": {"id": row.printer.pk, "name": row.printer.name},
                "reasons": [{"code": r.code, "text": r.text} for r in row.reasons],
            }
            for row in waiting.printers
        ],
    }


def jobs_out(jobs: list[Job]) -> list[dict]:
    """Jobs as the API shows them; the queued ones say why they wait, explained together
    (the printers are read once for the whole page)."""
    why = explain_waiting(jobs)
    # Copies of a file wait alike and share their explanation's printers (`Explainer` made
    # them once): each is turned into the API's shape once.
    shown: dict[int, schemas.WaitingOut] = {}
    out = []
    for job in jobs:
        waiting = why.get(job.pk)
        if waiting is not None:
            key = id(waiting.printers)
            if key not in shown:
                shown[key] = _waiting_out(waiting)
            waiting = shown[key]
        out.append(job_out(job, waiting))
    return out


def _jobs():
    return Job.objects.select_related("file", "target_printer").prefetch_related("required_tags")


def _get(job_id: int) -> Job:
    job = _jobs().filter(pk=job_id).first()
    if job is None:
        raise Http404(f"No job {job_id}.")
    return job


class JobQuery(schemas.Schema):
    state: list[str] = Field([], description="any of: " + ", ".join(Job.State.values))
    printer_id: int | None = None
    file_id: int | None = None
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000_000)


@router.get("/jobs", response={200: schemas.JobPage, **ERRORS}, summary="Jobs, queue order first")
def job_list(request: HttpRequest, query: Query[JobQuery]):
    jobs = _jobs()
    unknown = [s for s in query.state if s not in Job.State.values]
    if unknown:
        from printfarm.api.api import FieldErrors

        raise FieldErrors({"state": [f"Unknown state {s!r}." for s in unknown]})
    if query.state:
        jobs = jobs.filter(state__in=query.state)
    if query.printer_id is not None:
        jobs = jobs.filter(printer_id=query.printer_id)
    if query.file_id is not None:
        jobs = jobs.filter(file_id=query.file_id)
    jobs = jobs.order_by("-priority", "position", "-pk")
    page = jobs[query.offset : query.offset + query.limit]
    return {"count": jobs.count(), "items": jobs_out(list(page))}


@router.get("/jobs/{job_id}", response={200: schemas.JobDetail, **ERRORS})
def job_detail(request: HttpRequest, job_id: int):
    job = _get(job_id)
    return {
        **jobs_out([job])[0],
        "events": list(job.events.values("at", "from_state", "to_state", "by", "reason")),
    }


@router.post("/jobs", response={201: schemas.JobsCreated, **ERRORS}, summary="Queue a file (operator)")
def job_create(request: HttpRequest, body: schemas.JobIn):
    from printfarm.api.api import FieldErrors

    actor = need(request, Role.OPERATOR)
    file = GcodeFile.objects.present().filter(pk=body.file_id).first()
    if file is None:
        raise FieldErrors({"file_id": [f"No file {body.file_id} in the library."]})
    tags = {t.name: t.pk for t in Tag.objects.filter(name__in=[n.strip().lower() for n in body.tags])}
    missing = [n for n in body.tags if n.strip().lower() not in tags]
    if missing:
        raise FieldErrors({"tags": [f"No printer has the tag {n!r}." for n in missing]})
    data = {
        "action": body.action,
        "quantity": body.quantity,
        "priority": body.priority,
        "printers": body.printer_ids,
        "tags": list(tags.values()),
        "material": body.material,
        "nozzle": "" if body.nozzle is None else str(body.nozzle),
        "plates": [p["index"] for p in file.plates] if body.plates is None else body.plates,
    }
    form = QueueForm(data, file=file)
    if not form.is_valid():
        raise FieldErrors(
            {("printer_ids" if k == "printers" else k): list(v) for k, v in form.errors.items()}
        )
    created = form.queue(file, by=actor.user, via=actor.via)
    return Status(
        201, {"items": jobs_out(list(_jobs().filter(pk__in=[j.pk for j in created]).order_by("pk")))}
    )


@router.post("/jobs/{job_id}/cancel", response={200: schemas.JobOut, **ERRORS}, summary="Cancel (operator)")
async def job_cancel(request: HttpRequest, job_id: int):
    from asgiref.sync import sync_to_async

    actor = need(request, Role.OPERATOR)
    job = await sync_to_async(_get)(job_id)
    await job_stop(job, by=actor.user, via=actor.via)
    return await sync_to_async(lambda: jobs_out([_get(job_id)])[0])()


@router.post(
    "/jobs/{job_id}/requeue", response={201: schemas.JobOut, **ERRORS}, summary="Queue again (operator)"
)
def job_requeue(request: HttpRequest, job_id: int):
    actor = need(request, Role.OPERATOR)
    job = _get(job_id)
    new = services.job_requeue(job, by=actor.user, via=actor.via)
    return Status(201, jobs_out([_get(new.pk)])[0])


@router.post(
    "/queue/order", response={200: schemas.JobPage, **ERRORS}, summary="Reorder the queue (operator)"
)
def job_reorder(request: HttpRequest, body: schemas.ReorderIn):
    actor = need(request, Role.OPERATOR)
    services.jobs_reorder(body.order, by=actor.user, via=actor.via)
    waiting = _jobs().filter(state=Job.State.QUEUED).order_by("-priority", "position", "pk")
    return {"count": waiting.count(), "items": jobs_out(list(waiting[:500]))}
