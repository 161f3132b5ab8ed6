"""Jobs as pages and cards show them."""

from __future__ import annotations

from collections.abc import Iterable

from django.urls import reverse

from jobs.models import Job
from printers.presenters import CardJob


def card_jobs(printer_ids: Iterable[int]) -> dict[int, CardJob]:
    """The active job on each of these printers, for its card (one query)."""
    ids = list(printer_ids)
    if not ids:
        return {}
    jobs = Job.objects.active().filter(printer_id__in=ids).select_related("file").order_by()
    return {
        job.printer_id: CardJob(
            pk=job.pk,
            label=job.file.name,
            url=reverse("jobs:job", args=[job.pk]),
            state_label=job.get_state_display(),
            state=job.state,
            thumbnail_url=reverse("jobs:thumbnail", args=[job.file_id]) if job.file.thumbnail_type else "",
            transfer_percent=job.transfer_percent
            if job.state in (Job.State.ASSIGNED, Job.State.UPLOADING)
            else None,
            # An assigned job's note is where it went ("to sim-3") unless it waits for a retry.
            note=job.reason if job.state != Job.State.ASSIGNED or job.retry_at else "",
        )
        for job in jobs
    }
