"""Who may do what: one place for the role checks every view, partial and API endpoint uses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
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
    return {"user_role": role, "can_operate": rank >= 1, "can_admin": rank >= 2}
