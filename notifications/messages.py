"""What a delivery says: a title and a plain-text body from its events, each with its printer,
file, reason and a link to the printer's page; and the thumbnail to attach, when there is one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from notifications.models import Event, EventKind, SiteAddress

LINES_MAX = 50  # a digest of a farm-wide outage lists this many events, then counts the rest
FAILURES = {
    EventKind.PRINT_FAILED,
    EventKind.PRINTER_ERROR,
    EventKind.TRANSFER_FAILED,
    EventKind.POLLER_STOPPED,
}


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    failure: bool
    attach: str | None = None  # an Apprise attachment URL (file://...?mime=...&name=...)


def base_url() -> str:
    """PRINTFARM_BASE_URL, else the address an admin last used; "" when neither is known."""
    configured = getattr(settings, "PRINTFARM_BASE_URL", "")
    if configured:
        return configured.rstrip("/")
    stored = SiteAddress.objects.order_by("-updated_at").values_list("url", flat=True).first()
    return (stored or "").rstrip("/")


def printer_link(printer_id: int | None, base: str) -> str:
    if printer_id is None or not base:
        return ""
    return base + reverse("printers:detail", args=[printer_id])


def compose(events: Sequence[Event]) -> Message:
    if not events:
        return Message("printfarm", "(no events)", failure=False)
    base = base_url()
    failure = any(e.kind in FAILURES for e in events)
    if len(events) == 1:
        event = events[0]
        subject = event.printer_name or "the farm"
        title = f"{EventKind(event.kind).label}: {subject}"
        return Message(title, _describe(event, base, full=True), failure, _thumbnail(event))
    counts = Counter(EventKind(e.kind).label for e in events)
    summary = ", ".join(f"{n} × {label}" for label, n in counts.most_common())
    title = f"printfarm: {summary}"
    lines = [_describe(e, base, full=False) for e in events[:LINES_MAX]]
    if len(events) > LINES_MAX:
        lines.append(f"… and {len(events) - LINES_MAX} more")
    attach = next((a for e in events if (a := _thumbnail(e))), None) if len(events) <= 3 else None
    return Message(title[:250], "\n".join(lines), failure, attach)


def _describe(event: Event, base: str, *, full: bool) -> str:
    at = timezone.localtime(event.created_at).strftime("%H:%M")
    parts = [f"{EventKind(event.kind).label}"]
    if event.printer_name:
        parts.append(f"on {event.printer_name}")
    head = " ".join(parts)
    details = [d for d in (f"file {event.file_name}" if event.file_name else "", event.text) if d]
    link = printer_link(event.printer_id, base)
    if full:
        lines = [f"{head} at {at}"]
        if event.file_name:
            lines.append(f"File: {event.file_name}")
        if event.text:
            lines.append(event.text)
        if link:
            lines.append(link)
        return "\n".join(lines)
    line = f"{at} {head}" + (f": {'; '.join(details)}" if details else "")
    return f"{line} — {link}" if link else line


def _thumbnail(event: Event) -> str | None:
    """The job's file thumbnail as an Apprise attachment URL; stored as <sha>.thumb, so the
    type and a name with the right extension are given (a mail client shows it then)."""
    job = event.job
    if job is None or not job.file.thumbnail_type:
        return None
    from jobs.library import thumbnail_path  # jobs sits beside notifications: imported when used

    path = thumbnail_path(job.file)
    if not path.is_file():
        return None
    mime = job.file.thumbnail_type
    extension = mime.rsplit("/", 1)[-1].replace("jpeg", "jpg")
    stem = job.file.name.rsplit(".", 1)[0][:60] or "thumbnail"
    return f"file://{quote(str(path))}?mime={quote(mime)}&name={quote(f'{stem}.{extension}')}"
