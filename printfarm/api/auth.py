"""Who is calling the API: a bearer token (scripts, slicers) or the browser's session.

Either way the operation gets an `Actor` (user, role, how it came) as `request.auth`, so
role checks need no further query. Token checks are cached for a few seconds per process:
the hot read endpoints then never wait on the database for authentication (a revoked or
disabled token stops working within TOKEN_CACHE_SECONDS).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer

from printfarm.accounts.models import Role
from printfarm.accounts.roles import RANK, role_of
from printfarm.accounts.tokens import token_user

TOKEN_CACHE_SECONDS = 5.0
_CACHE_MAX = 1024


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
    hit = _tokens.get(text)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return await sync_to_async(actor_for_token)(text, via)


class TokenAuth(HttpBearer):
    async def authenticate(self, request: HttpRequest, token: str) -> Actor | None:
        return await aactor_for_token(token)


class SessionAuth(APIKeyCookie):
    """Django's session, for the browser (and the interactive docs); CSRF-checked on writes."""

    param_name = "sessionid"

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
