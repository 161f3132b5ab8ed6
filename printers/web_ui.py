"""Where a printer's own web interface is, for the "open it in a new tab" link on its card."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

_LABELS = {"octoprint": "OctoPrint", "prusalink": "PrusaLink"}


@dataclass(frozen=True, slots=True)
class WebUi:
    label: str  # "Mainsail/Fluidd", "OctoPrint", "PrusaLink"
    url: str


def _address(base_url: str, *, whole: bool) -> str:
    """The address (`whole`) or just scheme://host/ of it, never with a user name, password,
    query or fragment in it."""
    try:
        parts = urlsplit(base_url.strip())
        port = parts.port if whole else None
    except ValueError:
        return ""
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return ""
    if ":" in host:  # an IPv6 literal: brackets back on
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    path = parts.path.rstrip("/") + "/" if whole else "/"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


@lru_cache(maxsize=4096)
def web_ui(protocol: str, base_url: str) -> WebUi | None:
    """The printer's own interface, or None where it has none (Bambu's LAN mode serves no web
    page) or the address can't be read."""
    if protocol == "moonraker":
        # Mainsail and Fluidd are served by the host's web server (nginx on 80), not by
        # Moonraker's API port (7125): the host without the port, whatever the API's port is.
        url, label = _address(base_url, whole=False), "Mainsail/Fluidd"
    elif protocol in _LABELS:
        # OctoPrint and PrusaLink serve their pages where their API is (a proxy's path too).
        url, label = _address(base_url, whole=True), _LABELS[protocol]
    else:
        return None
    return WebUi(label=label, url=url) if url else None
