"""Who may do what: one place for the role checks every view, partial and API endpoint uses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest

from printfarm.accounts.models import Profile, Role

RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def role_of(user: Any) -> Role | None:
    """The user's role; None for anonymous or disabled users. Superusers are always admins."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    try:
        return Role(user.profile.role)
    except Profile.DoesNotExist:
        return Role.VIEWER


def allows(user: Any, needed: Role) -> bool:
    role = role_of(user)
    return role is not None and RANK[role] >= RANK[needed]


def set_role(user: Any, role: Role) -> None:
    Profile.objects.update_or_create(user=user, defaults={"role": role})
    user.__dict__.pop("profile", None)


# -- managing users (the web pages; keep the last admin) ---------------------------------------


class UserChangeRefused(Exception):
    """A role or access change that would leave the farm without an admin, or can't be made here."""


def active_admins() -> Any:
    """Users who are admins now: active, and a superuser or given the admin role."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(profile__role=Role.ADMIN))
    )


def _keep_an_admin(user: Any) -> None:
    # Locks the admin rows, so two admins demoting each other at once can't both succeed.
    admins = set(active_admins().select_for_update(of=("self",)).values_list("pk", flat=True))
    if user.pk in admins and not admins - {user.pk}:
        raise UserChangeRefused(
            f"{user.get_username()} is the last active admin: make another user an admin first."
        )


def user_create(*, username: str, email: str = "", password: str, role: Role) -> Any:
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=username, email=email, password=password)
        set_role(user, role)
    return user


def user_role_set(*, user: Any, role: Role) -> None:
    if user.is_superuser and role != Role.ADMIN:
        raise UserChangeRefused(
            f"{user.get_username()} is a superuser, always an admin: change that in the Django admin first."
        )
    with transaction.atomic():
        if role != Role.ADMIN:
            _keep_an_admin(user)
        set_role(user, role)


def user_active_set(*, user: Any, active: bool) -> None:
    """Disable (no login, no session, no token works) or enable a user."""
    with transaction.atomic():
        if not active:
            _keep_an_admin(user)
        get_user_model().objects.filter(pk=user.pk).update(is_active=active)
    user.is_active = active


class RoleDenied(PermissionDenied):
    def __init__(self, needed: Role, role: Role | None) -> None:
        have = role.value if role else "none"
        super().__init__(f"This needs the {needed.value} role; yours is {have}.")


def role_required(needed: Role) -> Callable:
    """View decorator (sync or async): anonymous users go to the login page, users whose role
    is below `needed` get 403 and nothing changes."""

    def decorate(view: Callable) -> Callable:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                from asgiref.sync import sync_to_async

                user = await request.auser()
                if not user.is_authenticated:
                    return redirect_to_login(request.get_full_path())
                role = await sync_to_async(role_of)(user)
                if role is None or RANK[role] < RANK[needed]:
                    raise RoleDenied(needed, role)
                return await view(request, *args, **kwargs)

            return async_wrapper

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            role = role_of(request.user)
            if role is None or RANK[role] < RANK[needed]:
                raise RoleDenied(needed, role)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


viewer_required = role_required(Role.VIEWER)
operator_required = role_required(Role.OPERATOR)
admin_required = role_required(Role.ADMIN)


def roles(request: HttpRequest) -> dict[str, Any]:
    """Template context: what the current user may do, so pages hide what they can't."""
    role = role_of(getattr(request, "user", None))
    rank = RANK[role] if role else -1
    # Kiosk: no navigation (a screen signed in by a display link, or ?kiosk=1 on the wall).
    from printfarm.accounts.displays import SESSION_KEY  # displays imports this module

    session = getattr(request, "session", None)
    kiosk = request.GET.get("kiosk") == "1" or bool(session is not None and session.get(SESSION_KEY))
    return {"user_role": role, "can_operate": rank >= 1, "can_admin": rank >= 2, "kiosk": kiosk}
