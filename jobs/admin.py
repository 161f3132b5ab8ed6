"""Admin views of files and jobs: read-mostly; the queue pages are where jobs are managed."""

from django.contrib import admin

from jobs.models import GcodeFile, Job, JobEvent


@admin.register(GcodeFile)
class GcodeFileAdmin(admin.ModelAdmin):
    list_display = ("name", "size", "slicer", "estimated_seconds", "uploaded_at", "deleted_at")
    search_fields = ("name", "sha256")
    readonly_fields = [f.name for f in GcodeFile._meta.fields]


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    readonly_fields = ("at", "from_state", "to_state", "by", "reason")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    # State changes go through jobs.services (validated, recorded): not editable here.
    list_display = ("pk", "file", "state", "printer_name", "priority", "created_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("file__name", "printer_name")
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [JobEventInline]
