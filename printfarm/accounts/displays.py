"""Display links: made by an admin (shown once), opened by a TV's browser, revoked."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from printfarm.accounts.audit import audit_record, user_name
from printfarm.accounts.models import DisplayLink, Role
from printfarm.accounts.roles import set_role

_CARD_IMAGE = re.compile(r"^/printers/\d+/(camera/snapshot|thumbnail/[^/]+/)$")
PREFIX = "pfd"
SESSION_KEY = "display_link"  # in the session of a browser signed in by a display link
# Where a display may go: the wall and what the wall itself asks for.
WALL = "/?view=wall&kiosk=1"


@dataclass(frozen=True, slots=True)
class NewDisplayLink:
    link: DisplayLink
    secret: str  # the path part of the URL: shown once


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()  # 256 random bits: a fast hash is enough


@transaction.atomic
def display_link_create(*, name: str, by: Any) -> NewDisplayLink:
    prefix = secrets.token_hex(6)
    text = f"{PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    # Its own account, with no password anyone could use: it only ever signs in by the link.
    account = get_user_model().objects.create_user(username=f"display-{prefix}", password=None)
    set_role(account, Role.VIEWER)
    link = DisplayLink.objects.create(
        name=name, prefix=prefix, digest=_digest(text), user=account, created_by=user_name(by)
    )
    audit_record(by, "display.create", target=link, detail=f"prefix {prefix}")
    return NewDisplayLink(link, text)


def display_link_for(text: str) -> DisplayLink | None:
    """The active link a URL's secret names, or None. Marks it used (at most once a minute)."""
    parts = text.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    link = DisplayLink.objects.select_related("user").filter(prefix=parts[1], revoked_at=None).first()
    if link is None or not hmac.compare_digest(link.digest, _digest(text.strip())):
        return None
    now = timezone.now()
    if link.last_used_at is None or (now - link.last_used_at).total_seconds() > 60:
        DisplayLink.objects.filter(pk=link.pk).update(last_used_at=now)
    return link


@transaction.atomic
def display_link_revoke(*, link: DisplayLink, by: Any) -> bool:
    revoked = DisplayLink.objects.filter(pk=link.pk, revoked_at=None).update(revoked_at=timezone.now())
    if revoked:
        # An inactive account has no role: the screen's next request signs it out.
        get_user_model().objects.filter(pk=link.user_id).update(is_active=False)
        audit_record(by, "display.revoke", target=link)
    return bool(revoked)


def display_allowed(path: str, query: dict[str, str]) -> bool:
    """What a browser signed in by a display link may request: the wall, its partial updates
    and the poller banner (static files and the websocket don't pass through views)."""
    if path == "/":
        return query.get("view") == "wall"
    # /login/: a revoked link's screen is signed out and lands there. /cameras/: the camera
    # wall is a wall too. The images cards show: snapshots, printers' own thumbnails.
    return (
        path in ("/poller-health/", "/logout/", "/login/", "/cameras/")
        or path.startswith("/display/")
        or _CARD_IMAGE.match(path) is not None
    )


class DisplayOnlyMiddleware:
    """Keeps a browser signed in by a display link on the wall: any other page redirects there.
    Only a request carrying a session cookie has its session read (the API's tokens don't)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _kept_out(self, request: Any, display: object) -> bool:
        return display is not None and not display_allowed(request.path, request.GET)

    @staticmethod
    def _revoked() -> Any:
        """The screen of a revoked link: told so where it is, not sent to a login page."""
        from django.template.loader import render_to_string

        return HttpResponse(render_to_string("accounts/display_invalid.html"), status=403)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        display = (
            request.session.get(SESSION_KEY) if settings.SESSION_COOKIE_NAME in request.COOKIES else None
        )
        if display is not None and not request.user.is_authenticated:
            request.session.flush()
            return self._revoked()
        if self._kept_out(request, display):
            return redirect(WALL)
        return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        cookie = settings.SESSION_COOKIE_NAME in request.COOKIES
        display = await request.session.aget(SESSION_KEY) if cookie else None
        if display is not None and not (await request.auser()).is_authenticated:
            await request.session.aflush()
            return self._revoked()
        if self._kept_out(request, display):
            return redirect(WALL)
        return await self.get_response(request)
