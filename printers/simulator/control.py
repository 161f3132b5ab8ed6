"""The simulator's own JSON control API: list printers, switch faults, start prints, read stats.

GET  /printers                    every printer (describe_printer)
GET  /printers/{index}            one printer
POST /printers/{index}/fault      {"fault": <one of FAULTS or null>, "delay": s}
POST /printers/{index}/print      {"filename": ..., "duration": sim s}: start a print now
POST /printers/{index}/trays      Bambu: {"trays": [{"type", "colour", "remain"}, {}...],
                                  "external": {...}}: the AMS slots and the external spool
POST /printers/{index}/extrusion  {"first_after": sim s or null}: when Klipper's print clock
                                  starts in each print (null: never, a host without an extruder)
POST /printers/{index}/ready      PrusaLink: press "Set Ready" (IDLE/FINISHED/STOPPED -> READY)
GET  /printers/{index}/prints     that printer's print log
GET  /prints                      every printer's print log, in start order
GET  /stats, POST /stats/reset    request counters and status ages
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from printers.simulator import cameras
from printers.simulator.common import FARM, json_response, read_json
from printers.simulator.common import BadRequest as _BadRequest

if TYPE_CHECKING:
    from printers.simulator.farm import SimulatedFarm


def _error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


def _index(request: web.Request) -> int:
    farm: SimulatedFarm = request.app[FARM]
    try:
        index = int(request.match_info["index"])
    except ValueError:
        index = -1
    if not 0 <= index < len(farm.printers):
        raise _BadRequest(f"No printer with index {request.match_info['index']}", 404)
    return index


async def list_printers(request: web.Request) -> web.Response:
    farm: SimulatedFarm = request.app[FARM]
    return json_response(farm.describe())


async def printer_detail(request: web.Request) -> web.Response:
    farm: SimulatedFarm = request.app[FARM]
    return json_response(farm.describe_printer(_index(request)))


async def set_fault(request: web.Request) -> web.Response:
    farm: SimulatedFarm = request.app[FARM]
    index = _index(request)
    body = await read_json(request)
    if "fault" not in body:
        raise _BadRequest('Expected {"fault": <name or null>, "delay": <seconds>}')
    delay = body.get("delay", 3.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise _BadRequest("delay must be a number of seconds >= 0")
    try:
        farm.set_fault(index, body["fault"], delay=float(delay))
    except ValueError as exc:
        raise _BadRequest(str(exc)) from exc
    return json_response(farm.describe_printer(index))


async def start_print(request: web.Request) -> web.Response:
    farm: SimulatedFarm = request.app[FARM]
    index = _index(request)
    body = await read_json(request)
    filename = body.get("filename")
    duration = body.get("duration")
    if not isinstance(filename, str) or not filename:
        raise _BadRequest("filename is required")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int | float)):
        raise _BadRequest("duration must be a number of simulated seconds")
    try:
        farm.start_print(index, filename, duration=duration)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from exc
    except RuntimeError as exc:
        raise _BadRequest(str(exc), 409) from exc
    return json_response(farm.describe_printer(index))


async def set_extrusion(request: web.Request) -> web.Response:
    farm: SimulatedFarm = request.app[FARM]
    index = _index(request)
    body = await read_json(request)
    if "first_after" not in body:
        raise _BadRequest('Expected {"first_after": <seconds or null>}')
    seconds = body["first_after"]
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)):
        raise _BadRequest("first_after must be a number of simulated seconds, or null")
    try:
        farm.set_first_extrusion(index, seconds)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from exc
    return json_response(farm.describe_printer(index))


async def set_trays(request: web.Request) -> web.Response:
    farm: SimulatedFarm = request.app[FARM]
    index = _index(request)
    body = await read_json(request)
    trays, external = body.get("trays", []), body.get("external")
    if not isinstance(trays, list):
        raise _BadRequest('Expected {"trays": [...], "external": {...}}')
    try:
        farm.set_trays(index, trays, external)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from exc
    return json_response(farm.describe_printer(index))


async def set_ready(request: web.Request) -> web.Response:
    farm: SimulatedFarm = request.app[FARM]
    index = _index(request)
    try:
        farm.set_ready(index)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from exc
    except RuntimeError as exc:
        raise _BadRequest(str(exc), 409) from exc
    return json_response(farm.describe_printer(index))


async def prints(request: web.Request) -> web.Response:
    farm: SimulatedFarm = request.app[FARM]
    index = _index(request) if "index" in request.match_info else None
    return json_response(farm.print_log(index))


async def stats(request: web.Request) -> web.Response:
    return json_response(request.app[FARM].stats())


async def reset_stats(request: web.Request) -> web.Response:
    farm: SimulatedFarm = request.app[FARM]
    farm.reset_stats()
    return json_response(farm.stats())


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except _BadRequest as exc:
        return _error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)


def build_control_app(farm: SimulatedFarm) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[FARM] = farm
    app.router.add_get("/printers", list_printers)
    app.router.add_get("/printers/{index}", printer_detail)
    app.router.add_post("/printers/{index}/fault", set_fault)
    app.router.add_post("/printers/{index}/print", start_print)
    app.router.add_post("/printers/{index}/extrusion", set_extrusion)
    app.router.add_post("/printers/{index}/trays", set_trays)
    app.router.add_post("/printers/{index}/ready", set_ready)
    app.router.add_get("/printers/{index}/prints", prints)
    app.router.add_get("/prints", prints)
    app.router.add_get("/stats", stats)
    app.router.add_post("/stats/reset", reset_stats)
    cameras.add_control_routes(app)  # /printers/{index}/camera-fault, /cameras
    return app
