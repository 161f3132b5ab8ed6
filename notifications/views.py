"""Notification pages (admins): channels and rules, "Send test", and the log of every attempt."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications import apprise_send, services
from notifications.forms import ChannelForm, RuleForm
from notifications.models import Channel, Delivery, Rule
from notifications.sender import channel_test_send
from printfarm.accounts.roles import admin_required
from printfarm.web import HtmxHttpRequest, render_fragment_or_page

LOG_PAGE_SIZE = 50


def _remember_address(request: HttpRequest) -> None:
    if not settings.PRINTFARM_BASE_URL:
        services.site_address_remember(request.build_absolute_uri("/"))


@admin_required
@require_GET
def notifications_page(request: HttpRequest) -> HttpResponse:
    _remember_address(request)
    context = {
        "channels": Channel.objects.all(),
        "rules": Rule.objects.prefetch_related("tags", "channels"),
        "base_url_set": bool(settings.PRINTFARM_BASE_URL),
    }
    return render(request, "notifications/notifications.html", context)


@admin_required
@require_http_methods(["GET", "POST"])
def channel_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=pk) if pk is not None else None
    form = ChannelForm(request.POST or None, channel=channel)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            channel = services.channel_save(
                channel=channel,
                name=data["name"],
                url=data["url"] or None,
                enabled=data["enabled"],
                by=request.user,
            )
        except apprise_send.BadChannelURL as exc:
            form.add_error("url", str(exc))
        else:
            _remember_address(request)
            messages.success(request, f"Saved channel {channel.name}.")
            return redirect("notifications:page")
    status = 422 if request.method == "POST" else 200
    return render(
        request, "notifications/channel_form.html", {"form": form, "channel": channel}, status=status
    )


@admin_required
@require_POST
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=pk)
    services.channel_delete(channel=channel, by=request.user)
    messages.success(request, f"Deleted channel {channel.name}.")
    return redirect("notifications:page")


@admin_required
@require_POST
def channel_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Send a test message now and show the channel's answer (htmx: in place; else the page)."""
    channel = get_object_or_404(Channel, pk=pk)
    _remember_address(request)
    delivery = channel_test_send(channel)
    if not request.htmx:
        level = messages.SUCCESS if delivery.state == Delivery.State.SENT else messages.ERROR
        messages.add_message(request, level, f"Test to {channel.name}: {delivery.answer}")
        return redirect("notifications:page")
    return render_fragment_or_page(
        request,
        "notifications/notifications.html",
        "test-result",
        {
            "channel": channel,
            "delivery": delivery,
            "channels": Channel.objects.all(),
            "rules": Rule.objects.all(),
        },
    )


@admin_required
@require_http_methods(["GET", "POST"])
def rule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(Rule, pk=pk) if pk is not None else None
    form = RuleForm(request.POST or None, instance=rule)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        rule = services.rule_save(
            rule=rule, fields=data, tags=data["tags"], channels=data["channels"], by=request.user
        )
        messages.success(request, f"Saved rule {rule.name}.")
        return redirect("notifications:page")
    status = 422 if request.method == "POST" else 200
    return render(request, "notifications/rule_form.html", {"form": form, "rule": rule}, status=status)


@admin_required
@require_POST
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(Rule, pk=pk)
    services.rule_delete(rule=rule, by=request.user)
    messages.success(request, f"Deleted rule {rule.name}.")
    return redirect("notifications:page")


@admin_required
@require_GET
def notification_log(request: HtmxHttpRequest) -> HttpResponse:
    """Every attempt, newest first: what was sent, to which channel, and what it answered;
    messages waiting (digest, quiet hours, retry) and dropped ones too."""
    deliveries = (
        Delivery.objects.select_related("rule").prefetch_related("tries").order_by("-created_at", "-pk")
    )
    page = Paginator(deliveries, LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render_fragment_or_page(
        request,
        "notifications/log.html",
        "log-results",
        {"page": page, "log_url": reverse("notifications:log")},
    )
