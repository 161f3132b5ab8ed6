"""Users (admins), API tokens (everyone, their own) and the audit log (admins).

A generated password or a new token is shown in the response to the POST that made it and
nowhere else: it is never stored (a token's digest is), never put in the session, and the
page is sent with no-store so the browser doesn't keep it either.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from printfarm.accounts.audit import audit_record
from printfarm.accounts.forms import AuditFilterForm, RoleForm, TokenForm, UserCreateForm
from printfarm.accounts.models import ApiToken, AuditEntry, Profile, Role
from printfarm.accounts.roles import (
    UserChangeRefused,
    admin_required,
    allows,
    user_active_set,
    user_create,
    user_role_set,
    viewer_required,
)
from printfarm.accounts.tokens import token_create, token_revoke
from printfarm.web import HtmxHttpRequest, render_fragment_or_page, safe_next

AUDIT_PAGE_SIZE = 50
USER_AUDIT_SHOWN = 20
GENERATED_PASSWORD_BYTES = 15  # 20 URL-safe characters, 120 random bits


def stored_role(user: Any) -> Role:
    """The role a user has, disabled or not (role_of says None for a disabled user)."""
    if user.is_superuser:
        return Role.ADMIN
    try:
        return Role(user.profile.role)
    except Profile.DoesNotExist:
        return Role.VIEWER


def _shown_once(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)
    return response


# -- users ----------------------------------------------------------------------------------


@admin_required
@require_GET
def user_list(request: HttpRequest) -> HttpResponse:
    users = (
        get_user_model()
        .objects.select_related("profile")
        .filter(display_link=None)  # a display link's own account: managed on the Displays page
        .annotate(tokens=Count("api_tokens", filter=Q(api_tokens__revoked_at=None)))
        .order_by("username")
    )
    rows = [{"user": u, "role": stored_role(u)} for u in users]
    return render(request, "accounts/user_list.html", {"rows": rows})


@admin_required
@require_http_methods(["GET", "POST"])
def user_add(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        password = data["password"] or secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        role = Role(data["role"])
        user = user_create(username=data["username"], email=data["email"], password=password, role=role)
        audit_record(request.user, "user.create", target=user, detail=f"role {role}")
        messages.success(request, f"Created {user.get_username()} ({role}).")
        return _user_page(request, user, new_password="" if data["password"] else password)
    return render(request, "accounts/user_form.html", {"form": form})


def _user_page(request: HttpRequest, user: Any, *, new_password: str = "") -> HttpResponse:
    role = stored_role(user)
    context = {
        "subject": user,
        "role": role,
        "role_form": RoleForm(initial={"role": role}),
        "tokens": user.api_tokens.select_related("printer", "tag"),
        "entries": AuditEntry.objects.by_user(user.pk)[:USER_AUDIT_SHOWN],
        "new_password": new_password,
        "is_self": user.pk == request.user.pk,
    }
    return _shown_once(render(request, "accounts/user_detail.html", context))


@admin_required
@require_GET
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _user_page(request, get_object_or_404(get_user_model(), pk=pk))


@admin_required
@require_POST
def user_role(request: HttpRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role: viewer, operator or admin.")
        return redirect("accounts:user", pk=pk)
    old, new = stored_role(user), Role(form.cleaned_data["role"])
    try:
        user_role_set(user=user, role=new)
    except UserChangeRefused as exc:
        messages.error(request, str(exc))
    else:
        audit_record(request.user, "user.role", target=user, detail=f"{old} → {new}")
        messages.success(request, f"{user.get_username()} is now {new.value}.")
    return redirect("accounts:user", pk=pk)


def _set_active(request: HttpRequest, pk: int, *, active: bool) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=pk)
    try:
        user_active_set(user=user, active=active)
    except UserChangeRefused as exc:
        messages.error(request, str(exc))
    else:
        audit_record(request.user, "user.enable" if active else "user.disable", target=user)
        if active:
            messages.success(request, f"Enabled {user.get_username()}: they can log in again.")
        else:
            messages.success(
                request, f"Disabled {user.get_username()}: no login, open sessions and API tokens refused."
            )
    return redirect("accounts:user", pk=pk)


@admin_required
@require_POST
def user_disable(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_active(request, pk, active=False)


@admin_required
@require_POST
def user_enable(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_active(request, pk, active=True)


@admin_required
@require_POST
def user_password(request: HttpRequest, pk: int) -> HttpResponse:
    """A new generated password; the user's open sessions end (Django checks the hash)."""
    user = get_object_or_404(get_user_model(), pk=pk)
    password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    user.set_password(password)
    user.save(update_fields=["password"])
    if user.pk == request.user.pk:
        update_session_auth_hash(request, user)
    audit_record(request.user, "user.password", target=user, detail="new password generated")
    return _user_page(request, user, new_password=password)


# -- the signed-in user's own account: API tokens, password ------------------------------------


@viewer_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST if request.method == "POST" else None)
    new = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        new = token_create(request.user, data["name"], printer=data["printer"], tag=data["tag"])
        audit_record(request.user, "token.create", target=new.token, detail=f"prefix {new.token.prefix}")
        form = TokenForm()
    context = {
        "form": form,
        "new": new,
        "tokens": request.user.api_tokens.select_related("printer", "tag"),
        "server_url": request.build_absolute_uri("/"),
        "api_url": request.build_absolute_uri("/api/v1/"),
    }
    return _shown_once(render(request, "accounts/tokens.html", context))


@viewer_required
@require_POST
def token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=pk)
    if token.user_id != request.user.pk and not allows(request.user, Role.ADMIN):
        raise Http404("No such token")  # someone else's token: not even its existence is said
    if token.active:
        token_revoke(token)
        audit_record(request.user, "token.revoke", target=token, detail=f"of {token.user.get_username()}")
        messages.success(request, f"Revoked “{token.name}”: it no longer works.")
    return redirect(safe_next(request, reverse("accounts:tokens")))


@viewer_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        user = form.save()
        update_session_auth_hash(request, user)  # this session stays; the others end
        audit_record(user, "user.password", target=user, detail="changed their own password")
        messages.success(request, "Password changed.")
        return redirect("accounts:tokens")
    return render(request, "accounts/password_change.html", {"form": form})


# -- the audit log --------------------------------------------------------------------------


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


@admin_required
@require_GET
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    filters = form.filters()
    entries = AuditEntry.objects.select_related("user")
    if "user" in filters:
        entries = entries.by_user(filters["user"].pk)
    if "action" in filters:
        entries = entries.action_prefix(filters["action"])
    if "type" in filters:
        entries = entries.of_type(filters["type"])
    if "via" in filters:
        entries = entries.via(filters["via"])
    start, end = filters.get("start"), filters.get("end")
    if start and end and start > end:
        start, end = end, start
    entries = entries.between(
        _day_start(start) if start else None, _day_start(end + dt.timedelta(days=1)) if end else None
    )
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({form.add_prefix(k): request.GET[form.add_prefix(k)] for k in filters})
    context = {"form": form, "page": page, "query": query, "filtered": bool(filters)}
    return render_fragment_or_page(request, "accounts/audit_log.html", "audit-results", context)
