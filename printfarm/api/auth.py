"""Who is calling the API: a bearer token (scripts, slicers) or the browser's session.

Either way the operation gets an `Actor` (user, role, how it came) as `request.auth`, so
role checks need no further query. A bearer token, once sent, decides alone: a bad one is a
401, never a fall back to the session (which would act as whoever the cookie belongs to, or
answer "CSRF check failed" to a script). Token checks are cached for a few seconds per process:
the hot read endpoints then never wait on the database for authentication (a revoked or
disabled token stops working within TOKEN_CACHE_SECONDS).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from ninja.errors import AuthenticationError, HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from printfarm.accounts.models import Role
from printfarm.accounts.roles import RANK, role_of
from printfarm.accounts.tokens import token_user

TOKEN_CACHE_SECONDS = 5.0
_CACHE_MAX = 1024
# What a token can look like (printfarm.accounts.tokens makes "pf_<hex>_<urlsafe>"): anything
# else is refused before it reaches the database (PostgreSQL refuses NUL bytes with an error).
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,200}")


@dataclass(frozen=True, slots=True)
class Actor:
    user: Any
    role: Role
    via: str  # "api" (token), "web" (session), "slicer" (OctoPrint-compatible endpoints)
    token_id: int | None = None

    @property
    def username(self) -> str:
        return self.user.get_username()


_tokens: dict[str, tuple[float, Actor | None]] = {}


def actor_for_token(text: str, via: str = "api") -> Actor | None:
    """Sync: the Actor a token text stands for (cached briefly), or None."""
    if not _TOKEN_SHAPE.fullmatch(text):
        return None
    now = time.monotonic()
    hit = _tokens.get(text)
    if hit is not None and hit[0] > now:
        return hit[1]
    found = token_user(text)
    actor = None
    if found is not None:
        user, token = found
        role = role_of(user)
        actor = Actor(user, role, via, token.pk) if role is not None else None
    if len(_tokens) >= _CACHE_MAX:
        _tokens.clear()
    _tokens[text] = (now + TOKEN_CACHE_SECONDS, actor)
    return actor


def forget_tokens() -> None:
    """Drop the cache (tests; and after a revocation in this process)."""
    _tokens.clear()


async def aactor_for_token(text: str, via: str = "api") -> Actor | None:
    if not _TOKEN_SHAPE.fullmatch(text):
        return None
    hit = _tokens.get(text)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return await sync_to_async(actor_for_token)(text, via)


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`. Other schemes (a proxy's Basic auth) are left to the session."""

    async def authenticate(self, request: HttpRequest, token: str) -> Actor:
        actor = await aactor_for_token(token.strip())
        if actor is None:
            raise AuthenticationError()  # answered at once: the session is not tried
        return actor


class SessionAuth(APIKeyCookie):
    """Django's session, for the browser (and the interactive docs); CSRF-checked on writes."""

    param_name = "sessionid"

    def _get_key(self, request: HttpRequest) -> str | None:
        key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if key is None:
            return None  # no session to protect: a 401 says what to send, not a CSRF failure
        if self.csrf and not getattr(request, "_ninja_csrf_exempt", False) and check_csrf(request):
            raise HttpError(403, "CSRF check failed: send the X-CSRFToken header with the session.")
        return key

    async def authenticate(self, request: HttpRequest, key: str | None) -> Actor | None:
        user = await request.auser()
        if not user.is_authenticated:
            return None
        role = await sync_to_async(role_of)(user)
        return Actor(user, role, "web") if role is not None else None


def need(request: HttpRequest, role: Role) -> Actor:
    """The caller, if their role is at least `role`; else a 403 with the reason."""
    actor: Actor = request.auth
    if RANK[actor.role] < RANK[role]:
        raise HttpError(403, f"This needs the {role.value} role; yours is {actor.role.value}.")
    return actor
