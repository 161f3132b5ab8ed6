"""The serial-link state OctoPrint reports for a simulated printer (state text, flags), the
409 "not operational" guard its commands share, and the empty 204 they answer when accepted.
"""

from __future__ import annotations

from aiohttp import web

from printers.simulator.common import BadRequest
from printers.simulator.printer import CLOSED, LOST, PAUSED, PRINTING, READY, SHUTDOWN, SimPrinter

NOT_OPERATIONAL = "Printer is not operational"


def no_content() -> web.Response:
    return web.Response(status=204)


def is_operational(printer: SimPrinter) -> bool:
    return printer.link == READY and printer.fault != "not_ready"


def require_operational(printer: SimPrinter) -> None:
    if not is_operational(printer):
        raise BadRequest(NOT_OPERATIONAL, 409)


def state_text(printer: SimPrinter) -> str:
    if printer.fault == "not_ready" or printer.link == CLOSED:
        return "Offline"
    if printer.link in (SHUTDOWN, LOST):
        return "Offline after error"
    if printer.job_state == PRINTING:
        return "Printing"
    if printer.job_state == PAUSED:
        return "Paused"
    return "Operational"


def state_flags(printer: SimPrinter) -> dict[str, bool]:
    operational = is_operational(printer)
    error = printer.link in (SHUTDOWN, LOST) and printer.fault != "not_ready"
    return {
        "operational": operational,
        "printing": operational and printer.job_state == PRINTING,
        "cancelling": False,
        "pausing": False,
        "resuming": False,
        "finishing": False,
        "closedOrError": not operational,
        "error": error,
        "paused": operational and printer.job_state == PAUSED,
        "ready": operational and not printer.busy,
        "sdReady": False,
    }
