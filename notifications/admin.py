"""Admin: channels (the URL is write-only: edit it on the notifications page), rules, and
the outbox and log read-only."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from notifications.models import Channel, Delivery, DeliveryAttempt, Event, Rule


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "service", "masked_url", "enabled")
    fields = ("name", "service", "masked_url", "enabled", "created_at")
    readonly_fields = ("service", "masked_url", "created_at")  # the URL itself never shows

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a new channel needs its URL checked by Apprise: the notifications page


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ("name", "kinds", "digest_seconds", "quiet_start", "quiet_end", "enabled")
    filter_horizontal = ("tags", "channels")


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(_ReadOnly):
    list_display = ("created_at", "kind", "printer_name", "file_name", "text", "routed_at")
    list_filter = ("kind",)


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "at", "ok", "answer")


@admin.register(Delivery)
class DeliveryAdmin(_ReadOnly):
    list_display = ("created_at", "channel_name", "title", "state", "attempts", "send_at")
    list_filter = ("state",)
    exclude = ("events",)
    inlines = [AttemptInline]
