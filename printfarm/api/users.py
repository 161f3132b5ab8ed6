"""Users (admin only) and the current user."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest
from ninja import Query, Router, Status
from pydantic import Field

from printfarm.accounts import roles
from printfarm.accounts.audit import audit_record
from printfarm.accounts.models import Role
from printfarm.accounts.roles import role_of
from printfarm.api import schemas
from printfarm.api.auth import forget_tokens, need

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
    user = roles.user_create(
        username=body.username, email=body.email, password=body.password, role=Role(body.role)
    )
    audit_record(actor.user, "user.create", target=user, detail=f"role {body.role}", via=actor.via)
    return Status(201, user_out(User.objects.get(pk=user.pk)))


@router.patch(
    "/users/{user_id}", response={200: schemas.UserOut, **ERRORS}, summary="Change role or access (admin)"
)
def user_change(request: HttpRequest, user_id: int, body: schemas.UserPatch):
    from ninja.errors import HttpError

    actor = need(request, Role.ADMIN)
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise Http404(f"No user {user_id}.")
    changes = []
    try:
        if body.role is not None:
            roles.user_role_set(user=user, role=Role(body.role))
            changes.append(f"role {body.role}")
        if body.is_active is not None:
            roles.user_active_set(user=user, active=body.is_active)
            changes.append("enabled" if body.is_active else "disabled")
    except roles.UserChangeRefused as exc:
        raise HttpError(409, str(exc)) from None
    if body.email is not None:
        user.email = body.email
        user.save(update_fields=["email"])
    forget_tokens()  # a role or access change applies to this process's cached tokens at once
    audit_record(actor.user, "user.change", target=user, detail=", ".join(changes), via=actor.via)
    return user_out(User.objects.get(pk=user.pk))
