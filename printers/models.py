"""Printers, their live status, events and temperature history."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models.functions import Mod
from django.urls import reverse

from printers.state import State
from printfarm.crypto import EncryptedTextField


class Tag(models.Model):
    name = models.CharField(max_length=40, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PrinterQuerySet(models.QuerySet["Printer"]):
    def enabled(self) -> PrinterQuerySet:
        return self.filter(enabled=True)

    def for_shard(self, index: int, count: int) -> PrinterQuerySet:
        """Printers that poller `index` of `count` owns (stable: by primary key)."""
        if count <= 1:
            return self
        return self.alias(shard=Mod("pk", count)).filter(shard=index)

    def with_status(self) -> PrinterQuerySet:
        return self.select_related("status").prefetch_related("tags")

    def for_cards(self) -> PrinterQuerySet:
        """For `presenters.cards_for`, which reads every printer's tags in one query of its own."""
        return self.select_related("status")

    def in_state(self, state: str) -> PrinterQuerySet:
        if state == State.MAINTENANCE:
            return self.filter(models.Q(enabled=False) | models.Q(status__state=state))
        return self.filter(enabled=True, status__state=state)

    def tagged(self, tag: str) -> PrinterQuerySet:
        return self.filter(tags__name=tag)


class Printer(models.Model):
    class Protocol(models.TextChoices):
        MOONRAKER = "moonraker", "Klipper (Moonraker)"
        OCTOPRINT = "octoprint", "OctoPrint"
        BAMBU = "bambu", "Bambu Lab (LAN)"
        PRUSALINK = "prusalink", "Prusa (PrusaLink)"

    class Material(models.TextChoices):
        PLA = "PLA", "PLA"
        PETG = "PETG", "PETG"
        ABS = "ABS", "ABS"
        ASA = "ASA", "ASA"
        TPU = "TPU", "TPU"
        PA = "PA", "PA (nylon)"
        PC = "PC", "PC"
        OTHER = "other", "Other"

    name = models.CharField(max_length=80, unique=True)
    protocol = models.CharField(max_length=20, choices=Protocol.choices)
    # http(s) for Moonraker and OctoPrint; mqtts://host[:port][?ftps=port] for Bambu Lab printers.
    base_url = models.CharField(
        "address",
        max_length=300,
        validators=[URLValidator(schemes=["http", "https", "mqtts"])],
        help_text="e.g. http://192.168.1.50:7125 or http://octopi.local",
    )
    # Encrypted at rest (a Fernet token in the column, plaintext in Python), and write-only:
    # forms and the admin never render it back. Forms cap it at 200 characters.
    api_key = EncryptedTextField("API key", blank=True)
    # PrusaLink: with a user name the key is the HTTP digest password (user "maker" on Buddy
    # printers); without one it is sent as X-Api-Key.
    username = models.CharField("user name", max_length=40, blank=True)
    enabled = models.BooleanField(default=True, help_text="Disabled printers are not polled.")
    tags = models.ManyToManyField(Tag, blank=True, related_name="printers")
    location = models.CharField(max_length=120, blank=True)
    serial = models.CharField(
        "serial number",
        max_length=40,
        blank=True,
        help_text="Bambu Lab: the printer's serial number (on its screen: Settings → Device)",
    )
    # Bambu Lab printers present a certificate of Bambu's own CA naming the serial; it is pinned
    # (SHA-256 of the certificate) on the first connection, and a changed one is refused.
    certificate_pin = models.CharField(max_length=64, blank=True)
    model = models.CharField(
        "printer model",
        max_length=120,
        blank=True,
        help_text="as slicers name it, e.g. Bambu Lab P1S or Original Prusa MK4; "
        "files sliced for another model are not sent here",
    )
    nozzle_diameter = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        default=0.4,
        validators=[MinValueValidator(0.1), MaxValueValidator(2)],
        help_text="mm",
    )
    build_x = models.PositiveIntegerField("build volume X", default=220, help_text="mm")
    build_y = models.PositiveIntegerField("build volume Y", default=220, help_text="mm")
    build_z = models.PositiveIntegerField("build volume Z", default=250, help_text="mm")
    material = models.CharField("loaded material", max_length=20, choices=Material.choices, blank=True)
    auto_clear = models.BooleanField(
        "auto-clear bed",
        default=False,
        help_text="Take the next job as soon as a print ends, without an operator confirming "
        "the bed is clear (for printers with a part remover or a belt).",
    )
    # The printer's webcam (printers.cameras), fetched by the server only: browsers get our
    # /camera/ URLs, never these. Encrypted and write-only like the key, since camera URLs
    # often carry a user name and password (http://user:pass@host/...).
    camera_snapshot_url = EncryptedTextField("camera snapshot URL", blank=True)
    camera_stream_url = EncryptedTextField("camera stream URL", blank=True)
    camera_on_card = models.BooleanField(
        "camera on the dashboard card",
        default=True,
        help_text="Show a snapshot on the card, refreshed every few seconds while it is on screen.",
    )
    # Set by the farm when a print ends, cleared by an operator; changed with update() so
    # the poller doesn't take it for an edit of the printer's configuration.
    bed_clear = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PrinterQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("printers:detail", args=[self.pk])

    @property
    def build_volume(self) -> str:
        return f"{self.build_x}×{self.build_y}×{self.build_z}"


class PrinterStatusRow(models.Model):
    """The latest reading of one printer; written by the poller only when it changed."""

    printer = models.OneToOneField(Printer, on_delete=models.CASCADE, primary_key=True, related_name="status")
    state = models.CharField(
        max_length=20, choices=[(s.value, s.label) for s in State], default=State.CONNECTING.value
    )
    message = models.CharField(max_length=500, blank=True)
    hotend_actual = models.FloatField(null=True)
    hotend_target = models.FloatField(null=True)
    bed_actual = models.FloatField(null=True)
    bed_target = models.FloatField(null=True)
    progress = models.FloatField(null=True)
    file = models.CharField(max_length=255, blank=True)
    elapsed = models.PositiveIntegerField(null=True)
    remaining = models.PositiveIntegerField(null=True)
    firmware = models.CharField(max_length=200, blank=True)
    chamber_actual = models.FloatField(null=True)
    layer = models.PositiveIntegerField(null=True)
    layer_count = models.PositiveIntegerField(null=True)
    # The spools it can feed from (Bambu AMS trays and external spool): a list of
    # {"id", "type", "colour", "remaining", "active"}; see printers.state.Tray.
    trays = models.JSONField(default=list, blank=True)
    light = models.BooleanField(null=True)  # chamber/work light on, where the printer reports it
    bed_ready = models.BooleanField(default=False)  # PrusaLink READY ("Set Ready" pressed on it)
    # The printer's own image of `file` kept by printers.thumbnails (its key), for prints no job sent.
    thumbnail = models.CharField(max_length=32, blank=True)
    state_since = models.DateTimeField(null=True)
    last_seen = models.DateTimeField(null=True, help_text="Last successful contact")
    # Bumped on every write; the change feed and websocket pushes key on it.
    revision = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "printers_printerstatus"
        verbose_name = "printer status"
        verbose_name_plural = "printer statuses"

    def __str__(self) -> str:
        return f"{self.printer_id}: {self.state}"

    @property
    def state_enum(self) -> State:
        return State(self.state)


class PrinterEvent(models.Model):
    class Kind(models.TextChoices):
        STATE = "state", "State change"
        COMMAND = "command", "Command"
        ERROR = "error", "Error"
        CONFIG = "config", "Configuration"

    printer = models.ForeignKey(Printer, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.CharField(max_length=500)
    by = models.CharField(max_length=150, blank=True, help_text="user name, or blank for the system")

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["printer", "-at"])]

    def __str__(self) -> str:
        return f"{self.printer_id} {self.at:%H:%M:%S} {self.message}"


class TemperatureSample(models.Model):
    """Downsampled temperature history (one row per printer per sample period, ~1 h kept)."""

    printer = models.ForeignKey(Printer, on_delete=models.CASCADE, related_name="temperature_samples")
    at = models.DateTimeField()
    hotend_actual = models.FloatField(null=True)
    hotend_target = models.FloatField(null=True)
    bed_actual = models.FloatField(null=True)
    bed_target = models.FloatField(null=True)

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["printer", "at"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.printer_id} {self.at:%H:%M:%S} {self.hotend_actual}/{self.bed_actual}"


class PrinterRemoval(models.Model):
    """A deleted printer, kept a while so open dashboards learn their card must go.

    The change feed (no Redis) reads changes from the database; a deleted printer leaves no
    status row to read, so its removal is written here in the delete's transaction."""

    printer_id = models.PositiveBigIntegerField()
    at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.printer_id} removed {self.at:%H:%M:%S}"


class PollerHeartbeat(models.Model):
    """One row per poller shard (`poll_printers --shard K/N`): the poller stamps `beat_at`
    every few seconds, so every page can tell whether live status is still being updated."""

    shard_index = models.PositiveSmallIntegerField()
    shard_count = models.PositiveSmallIntegerField()
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True)
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, help_text="Set by a clean shutdown")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shard_index", "shard_count"], name="poller_heartbeat_shard")
        ]

    def __str__(self) -> str:
        return f"poller {self.shard_index}/{self.shard_count} on {self.host} (pid {self.pid})"
