"""The farm's printers and live status, serialised at most once a second per process.

The printer list and the farm status are read far more often than they change, and by
many clients at once (dashboards, scripts, Prometheus). Serving them from bytes built at
most once a second costs one query a second, however many clients ask; each is stamped
with an ETag so an unchanged farm answers 304.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from dataclasses import dataclass, field

import orjson
from asgiref.sync import sync_to_async
from django.db.models import Count, Max

from printers.camera_sources import camera_source
from printers.commands import commands_for_state
from printers.drivers.base import address_shown
from printers.finding import natural_key
from printers.health import poller_health
from printers.models import Printer, PrinterStatusRow
from printers.presenters import card_state
from printers.queries import state_tally
from printers.trays import stored_trays

MAX_AGE = 1.0  # seconds a snapshot is served before the next request rebuilds it


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def camera_dict(p: Printer) -> dict:
    """The printer's camera as the API shows it: our relay's paths, never the camera's address."""
    camera = camera_source(p)
    base = f"/api/v1/printers/{p.pk}/camera/"
    return {
        "snapshot": bool(camera.snapshot),
        "stream": bool(camera.stream),
        "source": camera.kind,
        "on_card": p.camera_on_card,
        "snapshot_url": base + "snapshot" if camera.snapshot else None,
        "stream_url": base + "stream" if camera.stream else None,
        "note": camera.note,
    }


def printer_dict(p: Printer) -> dict:
    """The API's view of a printer with its live status (never its API key)."""
    row = getattr(p, "status", None)
    state = card_state(p, row)
    return {
        "id": p.pk,
        "name": p.name,
        "protocol": p.protocol,
        "base_url": address_shown(p.base_url),  # an old row may hold a user name and password
        "enabled": p.enabled,
        "tags": sorted(t.name for t in p.tags.all()),
        "location": p.location,
        "model": p.model,
        "nozzle_diameter": float(p.nozzle_diameter) if p.nozzle_diameter is not None else None,
        "build_volume": [p.build_x, p.build_y, p.build_z],
        "material": p.material,
        "auto_clear": p.auto_clear,
        "bed_clear": p.bed_clear,
        "has_api_key": bool(p.api_key),
        "serial": p.serial,
        "username": p.username,
        "certificate_pin": p.certificate_pin,
        "commands": [c.name for c in commands_for_state(state, p.protocol, light=row.light if row else None)],
        "camera": camera_dict(p),
        "status": {
            "state": state.value,
            "message": row.message if row else "",
            "hotend_actual": row.hotend_actual if row else None,
            "hotend_target": row.hotend_target if row else None,
            "bed_actual": row.bed_actual if row else None,
            "bed_target": row.bed_target if row else None,
            "progress": row.progress if row else None,
            "file": row.file if row else "",
            "elapsed": row.elapsed if row else None,
            "remaining": row.remaining if row else None,
            "firmware": row.firmware if row else "",
            "chamber_actual": row.chamber_actual if row else None,
            "layer": row.layer if row else None,
            "layer_count": row.layer_count if row else None,
            # Checked again on the way out: the row holds what a printer on the network said.
            "trays": [dataclasses.asdict(t) for t in stored_trays(row.trays)] if row else [],
            "light": row.light if row else None,
            "bed_ready": row.bed_ready if row else False,
            "since": _iso(row.state_since) if row else None,
            "last_seen": _iso(row.last_seen) if row else None,
        },
    }


@dataclass
class Snapshot:
    version: tuple = ()
    items: list[bytes] = field(default_factory=list)  # one JSON object per printer, by name
    ids: dict[int, int] = field(default_factory=dict)  # printer id -> index in items
    status: bytes = b"{}"
    etag: str = ""
    built_at: float = -1e9
    farm: dict = field(default_factory=dict)  # the status body without `poller`
    poller: dict = field(default_factory=dict)


def _version() -> tuple:
    # Anything a printer's entry shows moves one of these: a poll's write or a bed change
    # bumps the status row's updated_at, an edit the printer's updated_at, removal the count.
    p = Printer.objects.aggregate(n=Count("pk"), changed=Max("updated_at"))
    s = PrinterStatusRow.objects.aggregate(changed=Max("updated_at"))
    return (p["n"], p["changed"], s["changed"])


def _status_body(farm: dict, poller: dict) -> dict:
    body = orjson.dumps({**farm, "poller": poller})
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    return {"farm": farm, "poller": poller, "status": body, "etag": etag}


def _build(previous: Snapshot) -> Snapshot:
    version = _version()
    # Read on every rebuild: a poller that stops changes no printer row, so no version.
    poller = poller_health().as_dict()
    if version == previous.version:
        if poller != previous.poller:
            previous = dataclasses.replace(previous, **_status_body(previous.farm, poller))
        previous.built_at = time.monotonic()
        return previous
    # By name as people count: "sim-2" before "sim-10" (the dashboard's order).
    printers = sorted(Printer.objects.with_status().order_by(), key=lambda p: natural_key(p.name))
    dicts = [printer_dict(p) for p in printers]
    # Counted from the printers just read, so the counts and the list always agree, by the
    # rule the dashboard and /metrics count by.
    counts = state_tally((p.enabled, getattr(p, "status", None) and p.status.state, 1) for p in printers)
    farm = {
        "printers": len(dicts),
        "by_state": {state.value: n for state, n in counts.items()},
        "status": [{"id": d["id"], "name": d["name"], **d["status"]} for d in dicts],
    }
    return Snapshot(
        version=version,
        items=[orjson.dumps(d) for d in dicts],
        ids={d["id"]: i for i, d in enumerate(dicts)},
        built_at=time.monotonic(),
        **_status_body(farm, poller),
    )


class SnapshotCache:
    def __init__(self) -> None:
        self.current = Snapshot()
        self._lock: asyncio.Lock | None = None
        self._loop = None

    async def get(self) -> Snapshot:
        if time.monotonic() - self.current.built_at < MAX_AGE:
            return self.current
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        async with self._lock:  # one rebuild at a time; the others then take its result
            if time.monotonic() - self.current.built_at >= MAX_AGE:
                self.current = await sync_to_async(_build)(self.current)
        return self.current

    def invalidate(self) -> None:
        """After a write through the API: the writer sees its change at once."""
        self.current.built_at = -1e9
        self.current.version = ()


snapshot = SnapshotCache()
