"""Users (admin only) and the current user."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404, HttpRequest
from ninja import Query, Router, Status
from pydantic import Field

from printfarm.accounts.audit import audit_record
from printfarm.accounts.models import Role
from printfarm.accounts.roles import role_of, set_role
from printfarm.api import schemas
from printfarm.api.auth import need

router = Router(tags=["users"])
ERRORS = schemas.ERRORS
User = get_user_model()


def user_out(user) -> dict:
    role = role_of(user) or Role(getattr(getattr(user, "profile", None), "role", Role.VIEWER))
    return {
        "id": user.pk,
        "username": user.get_username(),
        "email": user.email,
        "role": role.value,
        "is_active": user.is_active,
        "last_login": user.last_login,
    }


@router.get("/me", response={200: schemas.UserOut, 401: schemas.Error}, summary="The current user")
def me(request: HttpRequest):
    return user_out(request.auth.user)


class UserQuery(schemas.Schema):
    limit: int = Field(100, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000_000)


@router.get("/users", response={200: schemas.UserPage, **ERRORS}, summary="Users (admin)")
def user_list(request: HttpRequest, query: Query[UserQuery]):
    need(request, Role.ADMIN)
    users = User.objects.select_related("profile").order_by("username")
    page = users[query.offset : query.offset + query.limit]
    return {"count": users.count(), "items": [user_out(u) for u in page]}


@router.post("/users", response={201: schemas.UserOut, **ERRORS}, summary="Create a user (admin)")
def user_create(request: HttpRequest, body: schemas.UserIn):
    from printfarm.api.api import FieldErrors

    actor = need(request, Role.ADMIN)
    if User.objects.filter(username__iexact=body.username).exists():
        raise FieldErrors({"username": ["A user with that username already exists."]})
    candidate = User(username=body.username, email=body.email)
    try:
        validate_password(body.password, candidate)
    except DjangoValidationError as exc:
        raise FieldErrors({"password": list(exc.messages)}) from None
    with transaction.atomic():
        user = User.objects.create_user(username=body.username, email=body.email, password=body.password)
        set_role(user, Role(body.role))
    audit_record(actor.user, "user.create", target=user, detail=f"role {body.role}", via=actor.via)
    return Status(201, user_out(User.objects.get(pk=user.pk)))


def _active_admins() -> int:
    return sum(
        1 for u in User.objects.filter(is_active=True).select_related("profile") if role_of(u) == Role.ADMIN
    )


@router.patch(
    "/users/{user_id}", response={200: schemas.UserOut, **ERRORS}, summary="Change role or access (admin)"
)
def user_change(request: HttpRequest, user_id: int, body: schemas.UserPatch):
    from ninja.errors import HttpError

    actor = need(request, Role.ADMIN)
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise Http404(f"No user {user_id}.")
    demoting = body.role is not None and body.role != Role.ADMIN.value
    disabling = body.is_active is False
    if (demoting or disabling) and role_of(user) == Role.ADMIN and _active_admins() <= 1:
        raise HttpError(409, "This is the last active admin; make another admin first.")
    if body.role is not None and user.is_superuser and body.role != Role.ADMIN.value:
        raise HttpError(409, "A superuser is always an admin; change it in the Django admin first.")
    changes = []
    if body.role is not None:
        set_role(user, Role(body.role))
        changes.append(f"role {body.role}")
    if body.is_active is not None:
        user.is_active = body.is_active
        changes.append("enabled" if body.is_active else "disabled")
    if body.email is not None:
        user.email = body.email
    user.save()
    audit_record(actor.user, "user.change", target=user, detail=", ".join(changes), via=actor.via)
    return user_out(User.objects.get(pk=user.pk))
