"""Admin: printers (through the services, API key write-only), tags, and read-only history."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from printers.forms import PrinterForm
from printers.models import Printer, PrinterEvent, PrinterStatusRow, Tag
from printers.services import printer_create, printer_delete, printer_update

_DETAILS = (
    "enabled",
    "tags",
    "location",
    "model",
    "nozzle_diameter",
    ("build_x", "build_y", "build_z"),
    "material",
    "auto_clear",
)


@admin.register(Printer)
class PrinterAdmin(admin.ModelAdmin):
    # The UI's form: the API key is a PasswordInput that never renders the stored value,
    # blank keeps it, "clear" removes it; tags are comma-separated names.
    form = PrinterForm
    list_display = ("name", "protocol", "base_url", "enabled", "location")
    list_filter = ("protocol", "enabled", "tags")
    search_fields = ("name", "location", "base_url")

    readonly_fields = ("certificate_pin",)

    def get_fieldsets(self, request: HttpRequest, obj: Printer | None = None) -> Any:
        connection = ["name", "protocol", "base_url", "api_key", "serial"]
        if obj is not None:
            connection.append("clear_api_key")
            if obj.certificate_pin:  # Bambu Lab: pinned on first use; forgetting it re-pins
                connection += ["certificate_pin", "forget_certificate"]
        # Camera URLs are write-only too (they may hold a password): blank keeps, the tick removes.
        camera = ["camera_snapshot_url", "camera_stream_url", "camera_on_card"]
        if obj is not None and (obj.camera_snapshot_url or obj.camera_stream_url):
            camera.append("clear_camera")
        return [
            (None, {"fields": connection}),
            ("Details", {"fields": _DETAILS}),
            ("Camera", {"fields": camera}),
        ]

    def save_model(self, request: HttpRequest, obj: Printer, form: PrinterForm, change: bool) -> None:
        # Writes go through the services (status row, config events, audit), not obj.save().
        by = request.user
        fields, tags = form.printer_fields(), form.cleaned_data["tags"]
        if change:
            printer_update(printer=Printer.objects.get(pk=obj.pk), fields=fields, tags=tags, by=by)
        else:
            created = printer_create(fields=fields, tags=tags, by=by)
            # The admin goes on with `obj` (log entry, message, redirect): make it the saved row.
            obj.pk = created.pk
            obj._state.adding = False
            obj._state.db = created._state.db

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Tags were set by the service; the form's tags are names, not a model field value.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Its status row and events are read-only here, and go with the printer: without
        # this, the admin refused to delete any printer that had ever been polled.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request: HttpRequest, obj: Printer) -> None:
        printer_delete(printer=obj, by=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Printer]) -> None:
        for printer in queryset:
            printer_delete(printer=printer, by=request.user)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name",)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and live status are written by the system; the admin only shows them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PrinterEvent)
class PrinterEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "printer", "kind", "message", "by")
    list_filter = ("kind",)
    list_select_related = ("printer",)
    search_fields = ("message", "printer__name", "by")
    date_hierarchy = "at"


@admin.register(PrinterStatusRow)
class PrinterStatusRowAdmin(ReadOnlyAdmin):
    list_display = ("printer", "state", "message", "progress", "last_seen", "updated_at")
    list_filter = ("state",)
    list_select_related = ("printer",)
    search_fields = ("printer__name", "message")
