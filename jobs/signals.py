"""Jobs that depended on a printer being removed: said so, not left waiting forever."""

from __future__ import annotations

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from jobs import services
from jobs.models import Job
from printers.models import Printer


@receiver(pre_delete, sender=Printer, dispatch_uid="jobs-printer-removed")
def printer_removed(sender, instance: Printer, **kwargs) -> None:
    # Without this, a job pinned to the printer would silently become "any printer" (the
    # foreign key is set to null), and one running there would wait for a status forever.
    reason = f"Its printer {instance.name} was removed"
    for job in Job.objects.filter(target_printer=instance, state=Job.State.QUEUED):
        services.job_transition(job, Job.State.CANCELLED, reason=reason)
    for job in Job.objects.filter(printer=instance, state__in=Job.ACTIVE):
        services.job_transition(job, Job.State.FAILED, reason=reason)
