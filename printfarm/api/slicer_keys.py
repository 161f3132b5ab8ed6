"""The API key a slicer sends, and what it may do: one place for the rule, used by the
OctoPrint-compatible views and by the web server's check before an upload's body is read."""

from __future__ import annotations

from printfarm.accounts.models import Role
from printfarm.accounts.roles import RANK
from printfarm.api.auth import Actor, aactor_for_token

# OctoPrint (1.4 on) answers a missing or invalid key with 403 and Flask's text as {"error": ...};
# slicers show that text, so a printfarm key that fails reads the same.
FORBIDDEN = (
    "You don't have the permission to access the requested resource. "
    "It is either read-protected or not readable by the server."
)
NO_KEY = (
    f"{FORBIDDEN} No API key was sent: create a printfarm API token (on printfarm's API tokens "
    "page) and enter it as the API key."
)


def key_of(*, x_api_key: str = "", apikey: str = "", authorization: str = "") -> str:
    """The key as slicers send it: the X-Api-Key header, the `apikey` query, or a Bearer token."""
    key = x_api_key or apikey
    if not key and authorization.lower().startswith("bearer "):
        key = authorization[7:]
    return key.strip()


async def slicer_actor(key: str) -> Actor | None:
    return await aactor_for_token(key, via="slicer") if key else None


def key_refusal(key: str) -> str:
    """What a key no user stands for is told (none sent: how to get one)."""
    return FORBIDDEN if key else NO_KEY


def upload_refusal(actor: Actor | None, key: str, doing: str = "Uploading") -> str | None:
    """Why this key may not upload to the library (or queue: `doing`), or None if it may."""
    if actor is None:
        return key_refusal(key)
    if RANK[actor.role] < RANK[Role.OPERATOR]:
        return f"{doing} needs the operator role; this token's user is a {actor.role.value}."
    return None
