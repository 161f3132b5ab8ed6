"""Users (admin only) and the current user."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest
from ninja import Query, Router, Status
from pydantic import Field

from printfarm.accounts import roles
from printfarm.accounts.audit import audit_record
from printfarm.accounts.forms import UserCreateForm
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
    form = UserCreateForm(body.model_dump())  # the web's rules for names, emails and passwords
    if not form.is_valid():
        raise FieldErrors.from_form(form)
    data = form.cleaned_data
    try:
        user = roles.user_create(
            username=data["username"], email=data["email"], password=data["password"], role=Role(data["role"])
        )
    except IntegrityError:  # created by another request since the form looked
        raise FieldErrors({"username": ["A user with that username already exists."]}) from None
    audit_record(actor.user, "user.create", target=user, detail=f"role {body.role}", via=actor.via)
    return Status(201, user_out(User.objects.get(pk=user.pk)))


@router.patch(
    "/users/{user_id}", response={200: schemas.UserOut, **ERRORS}, summary="Change role or access (admin)"
)
def user_change(request: HttpRequest, user_id: int, body: schemas.UserPatch):
    from ninja.errors import HttpError

    from printfarm.api.api import FieldErrors

    actor = need(request, Role.ADMIN)
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise Http404(f"No user {user_id}.")
    email = None
    if "email" in body.model_fields_set:  # checked first: a refused email changes nothing
        try:
            email = UserCreateForm.base_fields["email"].clean(body.email or "")  # null clears it
        except DjangoValidationError as exc:
            raise FieldErrors({"email": list(exc.messages)}) from None
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
    if email is not None:
        user.email = email
        user.save(update_fields=["email"])
    forget_tokens()  # a role or access change applies to this process's cached tokens at once
    audit_record(actor.user, "user.change", target=user, detail=", ".join(changes), via=actor.via)
    return user_out(User.objects.get(pk=user.pk))
