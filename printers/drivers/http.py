"""The one shared httpx.AsyncClient a process uses to talk to printers."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

# Plain httpx 0.28 saturated a core at ~200-240 polls/s against 1,000 loopback printers
# (encode/httpx#3215); the same API on the aiohttp transport did ~940 polls/s at a third
# of a core (DESIGN.md). Drivers only see the httpx API.
DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=3.0)


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing. Printers authenticate by header, and cookies ignore ports,
    so two OctoPrints on one host would share sessions; the jar also cost ~16% of a poll."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


def make_client(
    *,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    max_connections: int = 512,
) -> httpx.AsyncClient:
    if not isinstance(timeout, httpx.Timeout):
        timeout = httpx.Timeout(timeout)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    client = httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits),
        timeout=timeout,
        limits=limits,
        headers={"User-Agent": "printfarm"},
        follow_redirects=False,
    )
    # httpx has no switch to turn the jar off; the constructor copies whatever it is given.
    client._cookies = _NoCookies()
    return client
