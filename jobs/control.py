"""Job actions that reach a printer from the web: stopping a running print."""

from __future__ import annotations

from asgiref.sync import sync_to_async

from jobs import services
from jobs.models import Job
from printers.commands import COMMANDS, command_send
from printers.models import Printer


async def job_stop(job: Job, *, by: object = None, via: str = "web") -> Job:
    """Cancel a job; a print under way is cancelled on its printer first, so the job never
    says cancelled while the printer goes on printing."""
    if job.state == Job.State.PRINTING and job.printer_id:
        printer = await Printer.objects.aget(pk=job.printer_id)
        # The job says printing; the printer's row may not yet (the dispatcher marks a start
        # before the next poll sees it), so its state must not refuse the cancel.
        outcome = await command_send(
            printer=printer, command=COMMANDS["cancel"], by=services.user_name(by), check_state=False
        )
        if not outcome.ok:
            raise services.JobError(
                f"{printer.name} did not stop: {outcome.message}. The job is still printing."
            )
    try:
        return await sync_to_async(services.job_cancel)(job, by=by, via=via)
    except services.JobChanged:
        # The poller saw the print stop first and recorded the cancel, with who sent it.
        if job.state == Job.State.CANCELLED:
            await sync_to_async(services.job_cancel_audit)(job, by=by, via=via)
            return job
        raise
