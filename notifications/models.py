"""Notification channels (one Apprise URL each), the rules that route events to them, the
outbox of events, and each message sent (or held, or given up) with every attempt."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils import timezone

from printfarm.crypto import EncryptedTextField


class EventKind(models.TextChoices):
    PRINT_FINISHED = "print_finished", "Print finished"
    PRINT_FAILED = "print_failed", "Print failed"
    PRINTER_ERROR = "printer_error", "Printer error"
    PRINTER_OFFLINE = "printer_offline", "Printer offline"
    BED_TO_CLEAR = "bed_to_clear", "Bed needs clearing"
    TRANSFER_FAILED = "transfer_failed", "Transfer failed"
    QUEUE_DRY = "queue_dry", "Queue ran dry"
    POLLER_STOPPED = "poller_stopped", "Poller stopped"


class Channel(models.Model):
    """Where messages go: one Apprise URL (mailto://, discord://, tgram://, json://, ...).

    The URL holds credentials: encrypted at rest and write-only; pages show `masked_url`,
    Apprise's own privacy rendering of it, worked out when the URL is saved."""

    name = models.CharField(max_length=80, unique=True)
    url = EncryptedTextField("Apprise URL")
    masked_url = models.CharField(max_length=500, blank=True)
    service = models.CharField(max_length=80, blank=True, help_text="as Apprise names it")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Rule(models.Model):
    """Which events (by kind, and by printer tag) go to which channels, and when."""

    class QuietAction(models.TextChoices):
        HOLD = "hold", "Hold until quiet hours end"
        DROP = "drop", "Drop"

    name = models.CharField(max_length=80, unique=True)
    kinds = models.JSONField(default=list, help_text="event kinds (EventKind values)")
    tags = models.ManyToManyField(
        "printers.Tag", blank=True, related_name="+", help_text="only printers with one of these; none: all"
    )
    channels = models.ManyToManyField(Channel, related_name="rules")
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    quiet_action = models.CharField(max_length=10, choices=QuietAction.choices, default=QuietAction.HOLD)
    # Events for one channel within this window go out as one message: a flapping printer or
    # a farm-wide outage is one message, not 200.
    digest_seconds = models.PositiveIntegerField("digest window (seconds)", default=60)
    offline_minutes = models.PositiveIntegerField("offline for (minutes)", default=5)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def kind_labels(self) -> list[str]:
        return [EventKind(k).label for k in self.kinds if k in EventKind.values]

    def is_quiet(self, at: dt.time) -> bool:
        """Whether local time `at` falls in quiet hours [start, end), which may span midnight."""
        start, end = self.quiet_start, self.quiet_end
        if start is None or end is None or start == end:
            return False
        if start < end:
            return start <= at < end
        return at >= start or at < end


class Event(models.Model):
    """The outbox: one row per thing that happened, written in the transaction that changed
    the state it reports, so a killed process neither loses nor repeats it. `routed_at` is
    set once the sender has put it into the messages of every rule that wants it."""

    kind = models.CharField(max_length=20, choices=EventKind.choices)
    printer = models.ForeignKey("printers.Printer", null=True, blank=True, on_delete=models.SET_NULL)
    printer_name = models.CharField(max_length=80, blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    file_name = models.CharField(max_length=255, blank=True)
    text = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Events found by a periodic check (offline, queue dry, poller stopped) carry a key naming
    # the episode: whoever checks, and however often, records it once.
    key = models.CharField(max_length=200, blank=True)
    # Set for an event made for one rule only (its own offline threshold).
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    routed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=~Q(key=""), name="notification_event_key"),
        ]
        indexes = [
            models.Index(
                fields=["routed_at"], condition=Q(routed_at__isnull=True), name="notification_unrouted"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.printer_name or 'farm'}"


class Delivery(models.Model):
    """One message to one channel: the events a rule collected within its digest window.

    pending (collecting until `send_at`, held through quiet hours, or waiting for a retry)
    → sending (claimed by a sender until `claimed_until`) → sent | failed (gave up) ; or
    dropped (quiet hours, by the rule's choice). A test message has no rule and no events."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        DROPPED = "dropped", "Dropped"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    channel_name = models.CharField(max_length=80, blank=True)
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    events = models.ManyToManyField(Event, related_name="deliveries")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    held = models.BooleanField(default=False, help_text="waiting for quiet hours to end")
    send_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=250, blank=True)
    body = models.TextField(blank=True)
    answer = models.TextField(blank=True, help_text="the channel's last answer")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["state", "send_at"])]

    def __str__(self) -> str:
        return f"{self.channel_name}: {self.title or self.get_state_display()}"


class DeliveryAttempt(models.Model):
    """One try at sending a delivery, with what the channel (through Apprise) answered."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="tries")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField(default=timezone.now, db_index=True)
    ok = models.BooleanField()
    answer = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}: {'ok' if self.ok else 'failed'}"


class SiteAddress(models.Model):
    """The address links in messages start with when PRINTFARM_BASE_URL is unset: the one an
    admin last reached the notifications pages at (the sender has no request to ask)."""

    url = models.CharField(max_length=300)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.url
