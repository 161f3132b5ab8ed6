"""A user's role, their API tokens, and the audit log of who did what."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer — sees everything, changes nothing"
    OPERATOR = "operator", "Operator — controls printers, files, the queue, beds"
    ADMIN = "admin", "Admin — also printers, users and the audit log"


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    def __str__(self) -> str:
        return f"{self.user}: {self.role}"


class ApiToken(models.Model):
    """A bearer token. Only a SHA-256 digest is stored; the token is shown once, at creation.

    The token reads `pf_<prefix>_<secret>`: the prefix finds the row, the digest checks it.
    `printer` / `tag` say where a slicer's "upload and print" through this token goes."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    printer = models.ForeignKey(
        "printers.Printer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="slicer jobs go here",
    )
    tag = models.ForeignKey(
        "printers.Tag", null=True, blank=True, on_delete=models.SET_NULL, help_text="or to printers tagged"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class AuditEntryQuerySet(models.QuerySet):
    def by_user(self, user_id: int) -> AuditEntryQuerySet:
        return self.filter(user_id=user_id)

    def action_prefix(self, prefix: str) -> AuditEntryQuerySet:
        """`job.` matches job.cancel, job.queue, ..."""
        return self.filter(action__startswith=prefix)

    def of_type(self, target_type: str) -> AuditEntryQuerySet:
        return self.filter(target_type=target_type)

    def via(self, via: str) -> AuditEntryQuerySet:
        return self.filter(via=via)

    def between(self, start: dt.datetime | None, end: dt.datetime | None) -> AuditEntryQuerySet:
        """[start, end); None leaves that side open."""
        entries = self
        if start is not None:
            entries = entries.filter(at__gte=start)
        if end is not None:
            entries = entries.filter(at__lt=end)
        return entries


class AuditEntry(models.Model):
    """One user intent: who, what, to which object, when."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, blank=True, help_text="kept if the user is deleted")
    action = models.CharField(max_length=60, db_index=True)  # e.g. "printer.command", "job.cancel"
    target_type = models.CharField(max_length=30, blank=True)  # "printer", "job", "file", "user", "token"
    target_id = models.CharField(max_length=40, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    via = models.CharField(max_length=10, default="web", help_text="web, api or slicer")

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return (
            f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.target_type} {self.target_label}"
        )


class DisplayLink(models.Model):
    """A read-only link for an unattended screen (a TV showing the wall): opening it signs the
    browser in as the link's own viewer account, kept to the wall; revoking it disables that
    account, so the screen is signed out on its next request. Shown once, like a token:
    `pfd_<prefix>_<secret>`, of which only a digest is stored."""

    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="display_link"
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def active(self) -> bool:
        return self.revoked_at is None
