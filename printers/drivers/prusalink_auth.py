"""PrusaLink's two ways in: the X-Api-Key header, or HTTP digest as the `maker` user.

Buddy firmware answers digest without qop and lets a nonce go stale after ~5 s (then 401 with
stale=true); Prusa-Link (Pi) uses realm "Administrator" and longer-lived nonces. httpx's
DigestAuth answers a stale challenge by sending the request again, which a streamed upload
body can't be: this one leaves that 401 to the driver, which re-opens the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from typing import Any

import httpx

STALE_TRIES = 3  # challenges taken for one request before its 401 is the answer


def is_stale(response: httpx.Response) -> bool:
    return response.status_code == 401 and any(
        "stale=true" in value.lower().replace(" ", "").replace('"', "")
        for value in response.headers.get_list("www-authenticate")
    )


class PrusaDigest(httpx.DigestAuth):
    """httpx's digest (MD5, with or without qop) that can take a nonce from any 401."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self.challenges = 0  # how many the printer sent (tests count nonce renewals)

    def _build_auth_header(self, request: httpx.Request, challenge: Any) -> str:
        if challenge.qop is not None or challenge.algorithm.upper() != "MD5":
            # Prusa-Link (Pi): qop=auth, MD5-sess: httpx's own.
            return super()._build_auth_header(request, challenge)
        # Buddy without qop (RFC 2069): response = MD5(HA1:nonce:HA2), and no algorithm= in
        # the header, which Buddy firmware before Prusa-Firmware-Buddy PR 3665 failed to parse
        # (pyprusalink leaves it out for the same reason).
        path = request.url.raw_path
        ha1 = _md5(b":".join((self._username, challenge.realm, self._password)))
        ha2 = _md5(b":".join((request.method.encode(), path)))
        fields = {
            "username": self._username,
            "realm": challenge.realm,
            "nonce": challenge.nonce,
            "uri": path,
            "response": _md5(b":".join((ha1, challenge.nonce, ha2))),
        }
        if challenge.opaque:
            fields["opaque"] = challenge.opaque
        return "Digest " + self._get_header_value(fields)

    @property
    def nonce(self) -> str:
        """The nonce the next request goes with ("" before the first challenge)."""
        challenge = getattr(self, "_last_challenge", None)
        return challenge.nonce.decode() if challenge is not None else ""

    def take_challenge(self, request: httpx.Request, response: httpx.Response) -> bool:
        """Keep the nonce of a 401 answered to a request sent without credentials: an upload
        then goes with a nonce issued just now and never used (Buddy checks it when the
        headers arrive; a stale one there would cost the whole body)."""
        header = _digest_header(response)
        if header is None:
            return False
        self._remember(request, response, header)
        return True

    def _remember(self, request: httpx.Request, response: httpx.Response, header: str) -> None:
        self._last_challenge = self._parse_challenge(request, response, header)
        self._nonce_count = 1
        self.challenges += 1

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # httpx 0.28's DigestAuth.auth_flow, with the replay limited to bodies that can be sent
        # twice (relies on its _parse_challenge/_build_auth_header, pinned in requirements).
        if self._last_challenge:
            request.headers["Authorization"] = self._build_auth_header(request, self._last_challenge)
        response = yield request
        # The first 401 brings a nonce (the stored one went stale, or there was none); a
        # second in a row that says stale=true met a nonce that aged on a slow path: try again.
        for attempt in range(STALE_TRIES):
            if response.status_code != 401 or (attempt and not is_stale(response)):
                return
            header = _digest_header(response)
            if header is None:
                return
            self._remember(request, response, header)
            if not isinstance(request.stream, httpx.ByteStream):
                return  # a streamed upload: the driver sends it again from the file
            request.headers["Authorization"] = self._build_auth_header(request, self._last_challenge)
            response = yield request


def _digest_header(response: httpx.Response) -> str | None:
    return next(
        (h for h in response.headers.get_list("www-authenticate") if h.lower().startswith("digest ")),
        None,
    )


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).hexdigest().encode()
