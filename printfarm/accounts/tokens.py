"""API tokens: made (shown once), checked (by prefix and digest), revoked."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from printfarm.accounts.models import ApiToken

PREFIX = "pf"


@dataclass(frozen=True, slots=True)
class NewToken:
    token: ApiToken
    secret: str  # the whole token text: shown to the user once, never stored


def _digest(text: str) -> str:
    # Tokens carry 256 random bits: a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(text.encode()).hexdigest()


def token_create(user: Any, name: str, **where: Any) -> NewToken:
    prefix = secrets.token_hex(6)
    text = f"{PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(user=user, name=name, prefix=prefix, digest=_digest(text), **where)
    return NewToken(token, text)


def token_user(text: str) -> tuple[Any, ApiToken] | None:
    """The active user and token for a token text, or None. Marks the token used."""
    parts = text.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=parts[1], revoked_at=None).first()
    if token is None or not hmac.compare_digest(token.digest, _digest(text.strip())):
        return None
    if not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)  # at most once a minute
    return token.user, token


def token_revoke(token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now())
