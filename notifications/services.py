"""Writes for channels and rules (pages, API and admin alike), each with its audit entry."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from notifications import apprise_send
from notifications.models import Channel, Rule, SiteAddress
from printfarm.accounts.audit import audit_record, is_user

RULE_FIELDS = (
    "name",
    "kinds",
    "quiet_start",
    "quiet_end",
    "quiet_action",
    "digest_seconds",
    "offline_minutes",
    "enabled",
)


def _audit(by: object, action: str, target: Any, via: str, detail: str = "") -> None:
    if is_user(by):
        audit_record(by, action, target=target, detail=detail, via=via)


def channel_save(
    *,
    channel: Channel | None = None,
    name: str,
    url: str | None,
    enabled: bool = True,
    by: object = None,
    via: str = "web",
) -> Channel:
    """Create a channel, or change one; `url` None (or blank) keeps the stored URL. Raises
    apprise_send.BadChannelURL for a URL Apprise can't use."""
    checked = apprise_send.check(url) if url else None
    if channel is None and checked is None:
        raise apprise_send.BadChannelURL(
            "Enter an Apprise URL, e.g. mailto://user:password@smtp.example.com."
        )
    with transaction.atomic():
        created = channel is None
        channel = channel or Channel()
        channel.name = name
        channel.enabled = enabled
        if checked is not None and url:
            channel.url = url.strip()
            channel.masked_url = checked.masked
            channel.service = checked.service
        channel.save()
        # The URL holds credentials: the audit log says it changed, never what to.
        detail = f"{channel.service}{', new URL' if checked and not created else ''}"
        _audit(
            by,
            "notification_channel.create" if created else "notification_channel.change",
            channel,
            via,
            detail,
        )
    return channel


def channel_delete(*, channel: Channel, by: object = None, via: str = "web") -> None:
    with transaction.atomic():
        _audit(by, "notification_channel.delete", channel, via)
        channel.delete()


def rule_save(
    *,
    rule: Rule | None = None,
    fields: dict[str, Any],
    tags: Iterable[Any] = (),
    channels: Iterable[Channel] = (),
    by: object = None,
    via: str = "web",
) -> Rule:
    with transaction.atomic():
        created = rule is None
        rule = rule or Rule()
        for name in RULE_FIELDS:
            if name in fields:
                setattr(rule, name, fields[name])
        rule.save()
        rule.tags.set(list(tags))
        rule.channels.set(list(channels))
        _audit(by, "notification_rule.create" if created else "notification_rule.change", rule, via)
    return rule


def rule_delete(*, rule: Rule, by: object = None, via: str = "web") -> None:
    with transaction.atomic():
        _audit(by, "notification_rule.delete", rule, via)
        rule.delete()


def site_address_remember(url: str) -> None:
    """Keep the address an admin reaches the site at, for links in messages (one row)."""
    url = url.rstrip("/")[:300]
    if SiteAddress.objects.filter(url=url).exists():
        return
    with transaction.atomic():
        SiteAddress.objects.all().delete()
        SiteAddress.objects.create(url=url, updated_at=timezone.now())
