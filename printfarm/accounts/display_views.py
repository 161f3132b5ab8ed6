"""Display links for unattended screens: the admin's page (make, list, revoke) and the link
itself, which signs a TV's browser in to the wall."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from printfarm.accounts.displays import (
    SESSION_KEY,
    WALL,
    display_link_create,
    display_link_for,
    display_link_revoke,
)
from printfarm.accounts.models import DisplayLink
from printfarm.accounts.roles import admin_required

# A wall screen stays signed in across server restarts and power cuts until its link is revoked.
DISPLAY_SESSION = dt.timedelta(days=365)


class DisplayLinkForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="Where the screen is, e.g. “Workshop TV”")


@admin_required
@require_http_methods(["GET", "POST"])
def display_list(request: HttpRequest) -> HttpResponse:
    form = DisplayLinkForm(request.POST if request.method == "POST" else None)
    new = new_url = None
    if form.is_bound and form.is_valid():
        new = display_link_create(name=form.cleaned_data["name"], by=request.user)
        new_url = request.build_absolute_uri(reverse("accounts:display_open", args=[new.secret]))
        form = DisplayLinkForm()
    context = {"form": form, "new": new, "new_url": new_url, "links": DisplayLink.objects.all()}
    response = render(request, "accounts/displays.html", context)
    add_never_cache_headers(response)  # the new link is shown once
    return response


@admin_required
@require_POST
def display_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(DisplayLink, pk=pk)
    if display_link_revoke(link=link, by=request.user):
        messages.success(request, f"Revoked “{link.name}”: its screen is signed out on its next update.")
    return redirect("accounts:displays")


@require_GET
def display_open(request: HttpRequest, secret: str) -> HttpResponse:
    link = display_link_for(secret)
    if link is None:
        response = render(request, "accounts/display_invalid.html", status=404)
        add_never_cache_headers(response)
        return response
    if request.user.is_authenticated and request.user.pk != link.user_id:
        logout(request)  # a person's session is not turned into a display's
    login(request, link.user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[SESSION_KEY] = link.pk
    request.session.set_expiry(DISPLAY_SESSION)
    return redirect(WALL)
