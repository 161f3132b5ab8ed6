"""Every write to printers, their status and their events goes through here.

A write a user asked for (`by` a user) records its audit entry in the same transaction,
through `via` ("web", "api", "slicer"); the poller's and the dispatcher's writes are not audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from enum import Enum

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from notifications import events as notify
from printers.changes import announce
from printers.drivers.base import address_shown
from printers.models import Printer, PrinterEvent, PrinterStatusRow, Tag, TemperatureSample
from printers.state import PrinterStatus, State, clean_text
from printfarm.accounts.audit import audit_record, is_user, user_name

# Fields copied from a driver's PrinterStatus onto the status row.
STATUS_FIELDS = tuple(f.name for f in fields(PrinterStatus) if f.name not in {"extra"})
# A printer whose reading never changes still gets last_seen refreshed this often.
HEARTBEAT = dt.timedelta(seconds=60)
TEMPERATURE_HISTORY = dt.timedelta(hours=1)


def _tags_from_names(names: Iterable[str]) -> list[Tag]:
    tags = []
    for name in {n.strip().lower() for n in names if n.strip()}:
        tag, _ = Tag.objects.get_or_create(name=name)
        tags.append(tag)
    return tags


@transaction.atomic
def printer_create(*, fields: dict, tags: Iterable[str] = (), by: object = None, via: str = "web") -> Printer:
    printer = Printer.objects.create(**fields)
    printer.tags.set(_tags_from_names(tags))
    now = timezone.now()
    PrinterStatusRow.objects.create(
        printer=printer,
        state=State.CONNECTING if printer.enabled else State.MAINTENANCE,
        message="Waiting for the first poll" if printer.enabled else "Disabled — not polled",
        state_since=now,
        updated_at=now,
        revision=1,
    )
    printer_event_record(printer=printer, kind=PrinterEvent.Kind.CONFIG, message="Printer added", by=by)
    if is_user(by):
        audit_record(by, "printer.add", target=printer, detail=address_shown(printer.base_url), via=via)
    announce([printer.pk], bumped=True)
    return printer


@transaction.atomic
def printer_update(
    *, printer: Printer, fields: dict, tags: Iterable[str] | None = None, by: object = None, via: str = "web"
) -> Printer:
    # Compared with the stored row: a ModelForm validated against `printer` already wrote the
    # new values onto it (the API's edits recorded no change and announced none).
    printer = Printer.objects.get(pk=printer.pk)
    changed = [name for name, value in fields.items() if getattr(printer, name) != value]
    for name, value in fields.items():
        setattr(printer, name, value)
    printer.save()
    if tags is not None:
        old_tags = set(printer.tags.values_list("name", flat=True))
        new_tags = _tags_from_names(tags)
        printer.tags.set(new_tags)
        if {t.name for t in new_tags} != old_tags:
            changed.append("tags")
    if "enabled" in changed:
        state, message = (
            (State.CONNECTING, "Enabled — waiting for the first poll")
            if printer.enabled
            else (State.MAINTENANCE, "Disabled — not polled")
        )
        _status_set(printer.pk, PrinterStatus(state=state, message=message), now=timezone.now())
    if changed:
        announce([printer.pk])  # the card shows the name, tags, location, material...
        shown = ", ".join("API key" if n == "api_key" else n.replace("_", " ") for n in changed)
        printer_event_record(
            printer=printer, kind=PrinterEvent.Kind.CONFIG, message=f"Changed {shown}", by=by
        )
    if is_user(by):
        # Field names only: the API key's value never goes into the log.
        detail = f"changed: {', '.join(changed) or 'nothing'}"
        if "base_url" in changed:
            detail += f" (address now {address_shown(printer.base_url)})"
        audit_record(by, "printer.edit", target=printer, detail=detail, via=via)
    return printer


@transaction.atomic
def printer_delete(*, printer: Printer, by: object = None, via: str = "web") -> None:
    pk = printer.pk
    if is_user(by):
        audit_record(by, "printer.delete", target=printer, via=via)  # first: the row still has its pk
    printer.delete()
    announce(removed=[pk])


def printer_event_record(
    *, printer: Printer | int, kind: str, message: str, by: object = None
) -> PrinterEvent:
    printer_id = printer if isinstance(printer, int) else printer.pk
    message = clean_text(message, 500)
    return PrinterEvent.objects.create(
        printer_id=printer_id, at=timezone.now(), kind=kind, message=message, by=user_name(by)
    )


@transaction.atomic
def printer_command_record(
    *, printer: Printer, command: str, event: str, outcome: str, by: object = None, via: str = "web"
) -> None:
    """A card command sent (or refused, or failed): its event, and its audit entry when a user sent it."""
    printer_event_record(printer=printer, kind=PrinterEvent.Kind.COMMAND, message=event, by=by)
    if is_user(by):
        audit_record(by, "printer.command", target=printer, detail=f"{command}: {outcome}", via=via)


def printer_certificate_pin(*, printer_id: int, digest: str) -> bool:
    """Pin a Bambu printer's TLS certificate (its SHA-256) on first use; False when one is
    already pinned. An update, not a save: the poller reloads a printer whose configuration
    changed (`updated_at`), and learning the pin is not an edit."""
    with transaction.atomic():
        pinned = Printer.objects.filter(pk=printer_id, certificate_pin="").update(certificate_pin=digest)
        if pinned:
            printer_event_record(
                printer=printer_id,
                kind=PrinterEvent.Kind.CONFIG,
                message=f"Pinned the printer's TLS certificate (SHA-256 {digest[:16]}…) on first use",
            )
    return bool(pinned)


def printer_camera_found(*, printer_id: int, snapshot_url: str, stream_url: str, shown: str) -> bool:
    """Store the camera a printer reports (printers.cameras.camera_discover) where none is set:
    an admin's own URLs are never replaced. An update, not a save: the poller reloads a printer
    whose configuration changed, and a camera is none of its business. `shown` (the camera's
    host) goes into the event; the URLs, which may carry a password, do not."""
    with transaction.atomic():
        found = Printer.objects.filter(pk=printer_id, camera_snapshot_url="", camera_stream_url="").update(
            camera_snapshot_url=snapshot_url, camera_stream_url=stream_url
        )
        if found:
            message = f"Found the printer's camera ({shown})"
            printer_event_record(printer=printer_id, kind=PrinterEvent.Kind.CONFIG, message=message)
            announce([printer_id])  # its card gets the snapshot
    return bool(found)


def printer_bed_set(printer_id: int, *, clear: bool, by: object = None, via: str = "web") -> bool:
    """Mark a printer's bed clear (an operator removed the print) or occupied (a print ended).

    An update, not a save: the poller reloads a printer whose configuration changed, and a
    bed is not configuration. The status row's revision moves so open dashboards redraw.
    An operator's "bed cleared" is audited even when the bed was already clear: it is what
    they said."""
    with transaction.atomic():
        changed = Printer.objects.filter(pk=printer_id).exclude(bed_clear=clear).update(bed_clear=clear)
        if changed:
            announce([printer_id])
            if not clear:
                notify.bed_to_clear(printer_id)  # the outbox, in this transaction
            if clear:
                printer_event_record(
                    printer=printer_id, kind=PrinterEvent.Kind.COMMAND, message="Bed cleared", by=by
                )
        if clear and is_user(by) and (printer := Printer.objects.filter(pk=printer_id).first()):
            audit_record(by, "printer.bed_cleared", target=printer, via=via)
    return bool(changed)


def _describe_transition(old: str, new: PrinterStatus) -> tuple[str, str]:
    kind = PrinterEvent.Kind.STATE
    if new.state == State.OFFLINE:
        return kind, f"Went offline: {new.message}" if new.message else "Went offline"
    if new.state == State.ERROR:
        return PrinterEvent.Kind.ERROR, f"Error: {new.message}" if new.message else "Error"
    if old == State.OFFLINE:
        return kind, f"Back online ({new.state.label.lower()})"
    if new.state == State.PRINTING and old != State.PAUSED:
        return kind, f"Started printing {new.file}".strip()
    if new.state == State.FINISHED:
        return kind, f"Finished {new.file}".strip()
    if new.message:
        return kind, f"{new.state.label}: {new.message}"
    return kind, new.state.label


def _status_set(printer_id: int, status: PrinterStatus, *, now: dt.datetime) -> bool:
    """Apply one reading to its row; True if anything changed. Caller holds a transaction."""
    return printer_status_record_many(readings=[(printer_id, status)], now=now) != []


@dataclass(frozen=True)
class StatusChanges:
    """What a batch of readings changes, worked out from the stored rows before any write."""

    rows: list[dict[str, object]]  # one per changed printer: "id", STATUS_FIELDS, "moved", "seen"
    events: list[tuple[int, str, str]]  # (printer id, kind, message) for state changes
    heartbeats: list[int]  # unchanged, reachable printers whose last_seen is due a refresh
    # Printers whose reading now says their bed is clear (PrusaLink's "Set Ready").
    set_ready: list[int] = dataclasses.field(default_factory=list)

    @property
    def printer_ids(self) -> set[int]:
        return {int(row["id"]) for row in self.rows} | {e[0] for e in self.events} | set(self.heartbeats)

    def only(self, printer_ids: set[int]) -> StatusChanges:
        return StatusChanges(
            rows=[r for r in self.rows if r["id"] in printer_ids],
            events=[e for e in self.events if e[0] in printer_ids],
            heartbeats=[pk for pk in self.heartbeats if pk in printer_ids],
            set_ready=[pk for pk in self.set_ready if pk in printer_ids],
        )


def printer_status_changes(
    *, readings: Sequence[tuple[int, PrinterStatus]], now: dt.datetime | None = None
) -> StatusChanges:
    """Compare readings with the stored rows (one SELECT); needs no write lock.

    The poller does this before its write transaction: diffing a thousand readings is Python
    work that, under the lock, was stretched by the poller's event loop holding the GIL.
    """
    now = now or timezone.now()
    latest = dict(readings)  # a later reading of the same printer wins
    stored = PrinterStatusRow.objects.in_bulk(list(latest))
    rows: list[dict[str, object]] = []
    events: list[tuple[int, str, str]] = []
    heartbeats: list[int] = []
    set_ready: list[int] = []
    for printer_id, status in latest.items():
        row = stored.get(printer_id)
        if row is None:  # printer deleted while its reading was in flight
            continue
        # Clean and cut before comparing, or an over-long message would differ every time.
        status = dataclasses.replace(
            status, message=clean_text(status.message, 500), file=clean_text(status.file, 255)
        )
        reachable = status.state != State.OFFLINE
        # Compared as stored: trays as JSON, no NaN.
        values: dict[str, object] = {name: _plain(getattr(status, name)) for name in STATUS_FIELDS}
        if not any(getattr(row, name) != values[name] for name in STATUS_FIELDS):
            if reachable and (row.last_seen is None or now - row.last_seen >= HEARTBEAT):
                heartbeats.append(printer_id)
            continue
        if status.bed_ready and not row.bed_ready:
            set_ready.append(printer_id)
        moved = row.state != status.state
        if moved:
            kind, message = _describe_transition(row.state, status)
            events.append((printer_id, kind, message[:500]))
        values["firmware"] = status.firmware or row.firmware  # keep what an earlier probe learned
        rows.append({"id": printer_id, **values, "moved": moved, "seen": reachable})
    return StatusChanges(rows=rows, events=events, heartbeats=heartbeats, set_ready=set_ready)


def _plain(value: object) -> object:
    """A value as JSON carries it to the database (no enum members, no NaN: JSON has none;
    trays as the row's list of {id, type, colour, remaining, active})."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return [dataclasses.asdict(tray) for tray in value]
    return value.value if isinstance(value, Enum) else value


def printer_status_apply(*, changes: StatusChanges, now: dt.datetime | None = None) -> list[int]:
    """Write worked-out changes: one UPDATE for all changed rows, one for heartbeats, one
    INSERT of events. Call inside the write transaction; returns the printer ids written."""
    # Stamped here, under the write lock (SQLite IMMEDIATE), so commit order follows
    # updated_at order and the web's change feed never misses a late commit.
    now = now or timezone.now()
    if changes.rows:
        _status_rows_update(changes.rows, now)
    if changes.heartbeats:
        PrinterStatusRow.objects.filter(pk__in=changes.heartbeats).update(last_seen=now)
    if changes.events:
        PrinterEvent.objects.bulk_create(
            [PrinterEvent(printer_id=pk, at=now, kind=kind, message=msg) for pk, kind, msg in changes.events],
            batch_size=200,
        )
        notify.printer_errors(changes.events)  # the outbox, in this transaction
    if changes.set_ready:
        _beds_confirmed_on_printer(changes.set_ready, now)
    written = [int(row["id"]) for row in changes.rows]
    announce(written, bumped=True)
    return written


def _beds_confirmed_on_printer(printer_ids: list[int], now: dt.datetime) -> None:
    """Someone pressed "Set Ready" on these printers (PrusaLink's READY): the bed is clear for
    the queue, as the "Bed cleared" button says it."""
    waiting = list(Printer.objects.filter(pk__in=printer_ids, bed_clear=False).values_list("pk", flat=True))
    if not waiting:
        return
    Printer.objects.filter(pk__in=waiting).update(bed_clear=True)
    PrinterEvent.objects.bulk_create(
        [
            PrinterEvent(
                printer_id=pk,
                at=now,
                kind=PrinterEvent.Kind.COMMAND,
                message="Bed confirmed clear on the printer (Set Ready)",
            )
            for pk in waiting
        ]
    )


# PostgreSQL type of each status field in the JSON the batched UPDATE reads.
_PG_TYPES = {
    "FloatField": "float8",
    "PositiveIntegerField": "bigint",
    "CharField": "text",
    "JSONField": "jsonb",
    "BooleanField": "boolean",
}


def _status_rows_update(rows: list[dict[str, object]], now: dt.datetime) -> None:
    """All changed rows in one statement, the rows passed as one JSON parameter.

    One UPDATE per row cost a GIL hand-off to the poller's event loop per statement, under
    SQLite's write lock (1-3 s per flush of a 1,000-printer farm, issue 7); bulk_update's
    CASE/WHEN cost ~2 ms of CPU per row. Each database expands JSON to rows its own way.
    """
    quote = connection.ops.quote_name
    stamp = connection.ops.adapt_datetimefield_value(now)
    meta = PrinterStatusRow._meta
    columns = {name: meta.get_field(name).column for name in STATUS_FIELDS}
    table, key = quote(meta.db_table), quote(meta.pk.column)
    if connection.vendor == "sqlite":
        value = "json_extract(j.value, '$.{}')".format
        source = "json_each(%s) AS j"
        match = f"{key} = {value('id')}"
        prefix = ""
    elif connection.vendor == "postgresql":
        types = ", ".join(
            f"{quote(name)} {_PG_TYPES[meta.get_field(name).get_internal_type()]}" for name in STATUS_FIELDS
        )
        value = 'j."{}"'.format
        source = f"jsonb_to_recordset(%s::jsonb) AS j(id bigint, {types}, moved boolean, seen boolean)"
        match = f"{table}.{key} = j.id"
        prefix = f"{table}."
    else:  # no batched form written for this database: a statement per row
        for row in rows:
            fields = {name: row[name] for name in STATUS_FIELDS}
            if row["moved"]:
                fields["state_since"] = now
            if row["seen"]:
                fields["last_seen"] = now
            PrinterStatusRow.objects.filter(pk=row["id"]).update(
                **fields, revision=F("revision") + 1, updated_at=now
            )
        return
    assignments = [f"{quote(columns[name])} = {value(name)}" for name in STATUS_FIELDS]
    since, seen, revision, updated = (
        quote(meta.get_field(n).column) for n in ("state_since", "last_seen", "revision", "updated_at")
    )
    assignments += [
        f"{since} = CASE WHEN {value('moved')} THEN %s ELSE {prefix}{since} END",
        f"{seen} = CASE WHEN {value('seen')} THEN %s ELSE {prefix}{seen} END",
        f"{revision} = {prefix}{revision} + 1",
        f"{updated} = %s",
    ]
    sql = f"UPDATE {table} SET {', '.join(assignments)} FROM {source} WHERE {match}"
    # SET's parameters come before FROM's in the statement text.
    with connection.cursor() as cursor:
        cursor.execute(sql, [stamp, stamp, stamp, json.dumps(rows)])


@transaction.atomic
def printer_status_record_many(
    *, readings: Sequence[tuple[int, PrinterStatus]], now: dt.datetime | None = None
) -> list[int]:
    """Write the readings that differ from what is stored; return the printer ids written.

    One SELECT, one batched UPDATE and one batched INSERT of events, whatever the count.
    (The poller works out the changes before its transaction and applies them inside it.)
    """
    now = now or timezone.now()
    return printer_status_apply(changes=printer_status_changes(readings=readings, now=now), now=now)


@transaction.atomic
def temperature_samples_record(
    *, samples: Sequence[tuple[int, PrinterStatus]], now: dt.datetime | None = None
) -> None:
    now = now or timezone.now()
    # Foreign keys are checked at commit, ignore_conflicts doesn't cover them: keep only
    # printers that still exist (one may be deleted while the poller holds its reading).
    existing = set(Printer.objects.filter(pk__in=[pk for pk, _ in samples]).values_list("pk", flat=True))
    samples = [(pk, s) for pk, s in samples if pk in existing]
    TemperatureSample.objects.bulk_create(
        [
            TemperatureSample(
                printer_id=printer_id,
                at=now,
                hotend_actual=s.hotend_actual,
                hotend_target=s.hotend_target,
                bed_actual=s.bed_actual,
                bed_target=s.bed_target,
            )
            for printer_id, s in samples
        ],
        batch_size=500,
    )
    TemperatureSample.objects.filter(at__lt=now - TEMPERATURE_HISTORY).delete()
