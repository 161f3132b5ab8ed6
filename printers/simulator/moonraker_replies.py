"""Moonraker's JSON envelope: {"result": ...} on success, {"error": {"code", "message"}} on failure."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from printers.simulator.common import json_response


def error(status: int, message: str) -> web.Response:
    return json_response({"error": {"code": status, "message": message}}, status=status)


def result(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"result": data}, status=status, headers=headers)
