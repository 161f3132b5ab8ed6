"""Moonraker's job history (`[history]` component) for simulated printers, from the printer's
print records: GET /server/history/list (limit, start, since, before, order) and
GET /server/history/job?uid=.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from printers.simulator.common import NOW, PRINTER, BadRequest
from printers.simulator.moonraker_files import file_metadata
from printers.simulator.moonraker_replies import result
from printers.simulator.printer import FILAMENT_PER_SECOND, PrintRecord, SimPrinter


def job_uid(record: PrintRecord) -> str:
    return f"{record.job_id:06X}"  # Moonraker's history ids: six hex digits


def _history_entry(printer: SimPrinter, record: PrintRecord, now: float) -> dict[str, Any]:
    printed, total_duration = printer.record_durations(record, now)
    print_duration = printer.klipper_duration(printed)
    info = printer.files.get(record.filename)
    metadata = file_metadata(printer, info) if info is not None else {}
    for redundant in ("job_id", "print_start_time"):
        metadata.pop(redundant, None)
    return {
        "job_id": job_uid(record),
        "user": None,
        "filename": record.filename,
        "exists": info is not None,
        "status": record.outcome,
        "start_time": record.started,
        "end_time": record.ended,
        "print_duration": round(print_duration, 3),
        "total_duration": round(total_duration, 3),
        "filament_used": round(print_duration * FILAMENT_PER_SECOND, 2),
        "metadata": metadata,
        "auxiliary_data": [],
    }


def _number_arg(request: web.Request, name: str, kind: type[int] | type[float], default: Any) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise BadRequest(f"Unable to convert argument '{name}' to {kind.__name__}: {raw!r}") from exc


async def history_list(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    limit = _number_arg(request, "limit", int, 50)
    start = _number_arg(request, "start", int, 0)
    since = _number_arg(request, "since", float, None)
    before = _number_arg(request, "before", float, None)
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest(f"Invalid `order` value: {order}")
    records = [
        r
        for r in printer.prints
        if (since is None or r.started > since) and (before is None or r.started < before)
    ]
    if order == "desc":
        records.reverse()
    page = records[max(0, start) :][: max(0, limit)]
    jobs = [_history_entry(printer, r, request[NOW]) for r in page]
    return result({"count": len(jobs), "jobs": jobs})


async def history_job(request: web.Request) -> web.Response:
    printer: SimPrinter = request[PRINTER]
    uid = request.query.get("uid")
    if not uid:
        raise BadRequest("No data for argument: uid")
    for record in printer.prints:
        if job_uid(record) == uid.upper():
            return result({"job": _history_entry(printer, record, request[NOW])})
    raise BadRequest(f"Invalid job uid: {uid}", 404)
