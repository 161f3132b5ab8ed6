"""G-code files, print jobs and their history of state changes."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from printers.models import Printer, Tag


class GcodeFileQuerySet(models.QuerySet["GcodeFile"]):
    def search(self, text: str) -> GcodeFileQuerySet:
        return self.filter(name__icontains=text) if text else self

    def present(self) -> GcodeFileQuerySet:
        """Files whose bytes are in the library (deleted ones stay as a record for history)."""
        return self.filter(deleted_at__isnull=True)


class GcodeFile(models.Model):
    """One file in the library: a name (in a folder) for stored bytes, with the metadata read
    from them. The bytes are stored once per content; the same content under another name or
    folder is another entry sharing them."""

    name = models.CharField(max_length=255, db_index=True)
    folder = models.CharField(max_length=255, blank=True, help_text="the folder the slicer uploaded to")
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    uploaded_at = models.DateTimeField(default=timezone.now, db_index=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    slicer = models.CharField(max_length=64, blank=True)
    slicer_version = models.CharField(max_length=64, blank=True)
    estimated_seconds = models.PositiveIntegerField(null=True, blank=True)
    filament_mm = models.FloatField(null=True, blank=True)
    filament_g = models.FloatField(null=True, blank=True)
    filament_type = models.CharField(max_length=64, blank=True)
    layer_height = models.FloatField(null=True, blank=True)
    nozzle_diameter = models.FloatField(null=True, blank=True)
    first_layer_hotend = models.FloatField(null=True, blank=True)
    first_layer_bed = models.FloatField(null=True, blank=True)
    object_height = models.FloatField(null=True, blank=True)
    printer_model = models.CharField(max_length=120, blank=True, help_text="the printer it was sliced for")
    # One entry per filament slot the print uses: {"slot", "type", "colour", "grams", "mm"}.
    filaments = models.JSONField(default=list, blank=True)
    # A 3MF's plates, one job each: {"index", "name", "estimated_seconds", "filament_g",
    # "object_height", "filaments", "thumbnail"}; empty for plain G-code.
    plates = models.JSONField(default=list, blank=True)
    thumbnail_type = models.CharField(max_length=20, blank=True, help_text="MIME type; blank: none")
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="bytes removed; kept for history")

    objects = GcodeFileQuerySet.as_manager()

    class Meta:
        ordering = ["-uploaded_at"]
        verbose_name = "print file"
        constraints = [
            models.UniqueConstraint(fields=["sha256", "folder", "name"], name="gcodefile_content_name"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def extension(self) -> str:
        return self.name.rsplit(".", 1)[-1].lower() if "." in self.name else "gcode"

    @property
    def stored_name(self) -> str:
        """Where the bytes live under the files directory (by content, so names can repeat)."""
        return f"{self.sha256[:2]}/{self.sha256}.{self.extension}"

    @property
    def thumbnail_name(self) -> str:
        return f"{self.sha256[:2]}/{self.sha256}.thumb"


class JobQuerySet(models.QuerySet["Job"]):
    def active(self) -> JobQuerySet:
        return self.filter(state__in=Job.ACTIVE)

    def waiting(self) -> JobQuerySet:
        return self.filter(state=Job.State.QUEUED)

    def in_queue_order(self) -> JobQuerySet:
        return self.order_by("-priority", "position", "pk")

    def finished(self) -> JobQuerySet:
        return self.filter(state__in=Job.FINISHED)


class Job(models.Model):
    """One copy of a file to print (or only to upload) on one printer."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        ASSIGNED = "assigned", "Assigned"
        UPLOADING = "uploading", "Uploading"
        PRINTING = "printing", "Printing"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Action(models.TextChoices):
        PRINT = "print", "Upload and print"
        UPLOAD = "upload", "Upload only"

    ACTIVE = (State.ASSIGNED, State.UPLOADING, State.PRINTING)
    FINISHED = (State.COMPLETED, State.FAILED, State.CANCELLED)

    file = models.ForeignKey(GcodeFile, on_delete=models.PROTECT, related_name="jobs")
    plate = models.PositiveSmallIntegerField(null=True, blank=True, help_text="which plate of a 3MF")
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.PRINT)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED, db_index=True)
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    position = models.IntegerField(default=0, help_text="Order among jobs of the same priority.")

    # Requirements: a given printer, or any printer matching all of these.
    target_printer = models.ForeignKey(
        Printer, null=True, blank=True, on_delete=models.SET_NULL, related_name="targeted_jobs"
    )
    required_tags = models.ManyToManyField(Tag, blank=True, related_name="jobs")
    required_material = models.CharField(max_length=20, blank=True, choices=Printer.Material.choices)
    required_nozzle = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(2.0)],
    )

    # Where and how it ran.
    printer = models.ForeignKey(
        Printer, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    printer_name = models.CharField(max_length=80, blank=True, help_text="kept when the printer is removed")
    remote_name = models.CharField(max_length=255, blank=True)
    transfer_percent = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="why it failed or was cancelled")
    print_seconds = models.PositiveIntegerField(null=True, blank=True)
    filament_mm = models.FloatField(null=True, blank=True)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # The slicer token whose upload queued it: what that slicer's monitor (GET /api/job) follows.
    api_token = models.ForeignKey(
        "accounts.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    assigned_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="the printer began printing")
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-priority", "position", "pk"]
        indexes = [models.Index(fields=["state", "-priority", "position"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.file.name}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED


class JobEvent(models.Model):
    """A state change of a job: when, from what to what, who did it and why."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    from_state = models.CharField(max_length=12, blank=True)
    to_state = models.CharField(max_length=12)
    by = models.CharField(max_length=150, blank=True, help_text="user name, or blank for the farm")
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.from_state or '-'} → {self.to_state}"
