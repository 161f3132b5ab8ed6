"""Notification channels, rules, "send test" and the log (admin only).

Input is checked by the pages' forms (an Apprise URL that can't be used is a 422 naming the
problem under `fields.url`); channel URLs are write-only: answers carry the masked form.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from django.http import Http404, HttpRequest
from ninja import Query, Router, Status
from pydantic import Field

from notifications import apprise_send, services
from notifications.forms import ChannelForm, RuleForm
from notifications.models import Channel, Delivery, EventKind, Rule
from notifications.sender import channel_test_send
from printers.models import Tag
from printfarm.accounts.models import Role
from printfarm.api import schemas
from printfarm.api.auth import need

router = Router(tags=["notifications"])
ERRORS = schemas.ERRORS
KindCode = Literal[tuple(EventKind.values)]
QuietCode = Literal[tuple(Rule.QuietAction.values)]


class ChannelOut(schemas.Schema):
    id: int
    name: str
    service: str
    url: str = Field(description="masked: secrets cut to their first and last characters")
    enabled: bool


class ChannelIn(schemas.Schema):
    name: str = Field(max_length=80)
    url: str = Field(max_length=2000, description="an Apprise URL, e.g. mailto://user:pass@smtp.example.com")
    enabled: bool = True


class ChannelPatch(schemas.Schema):
    name: str | None = Field(None, max_length=80)
    url: str | None = Field(None, max_length=2000, description="omit to keep the stored URL")
    enabled: bool | None = None


class TestOut(schemas.Schema):
    ok: bool
    answer: str = Field(description="what the channel answered, as Apprise logged it")
    delivery_id: int


class RuleIn(schemas.Schema):
    name: str = Field(max_length=80)
    kinds: list[KindCode] = Field(min_length=1)
    tags: list[str] = Field(default_factory=list, description="tag names; empty: every printer")
    channels: list[int] = Field(min_length=1, description="channel ids")
    quiet_start: dt.time | None = None
    quiet_end: dt.time | None = None
    quiet_action: QuietCode = "hold"
    digest_seconds: int = Field(60, ge=0, le=86_400)
    offline_minutes: int = Field(5, ge=0, le=10_080)
    enabled: bool = True


class RuleOut(RuleIn):
    id: int


class AttemptOut(schemas.Schema):
    number: int
    at: dt.datetime
    ok: bool
    answer: str


class DeliveryOut(schemas.Schema):
    id: int
    channel: str
    rule: str | None
    title: str
    body: str
    state: str
    held: bool
    attempts: int
    send_at: dt.datetime
    created_at: dt.datetime
    events: int
    tries: list[AttemptOut]


class LogPage(schemas.Schema):
    count: int
    items: list[DeliveryOut]


class LogQuery(schemas.Schema):
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000_000)


def _field_errors(form):
    from printfarm.api.api import FieldErrors

    return FieldErrors.from_form(form)


def channel_out(channel: Channel) -> dict:
    return {
        "id": channel.pk,
        "name": channel.name,
        "service": channel.service,
        "url": channel.masked_url,
        "enabled": channel.enabled,
    }


def rule_out(rule: Rule) -> dict:
    return {
        "id": rule.pk,
        "name": rule.name,
        "kinds": rule.kinds,
        "tags": [t.name for t in rule.tags.all()],
        "channels": [c.pk for c in rule.channels.all()],
        "quiet_start": rule.quiet_start,
        "quiet_end": rule.quiet_end,
        "quiet_action": rule.quiet_action,
        "digest_seconds": rule.digest_seconds,
        "offline_minutes": rule.offline_minutes,
        "enabled": rule.enabled,
    }


def _channel(pk: int) -> Channel:
    channel = Channel.objects.filter(pk=pk).first()
    if channel is None:
        raise Http404(f"No notification channel {pk}.")
    return channel


def _rule(pk: int) -> Rule:
    rule = Rule.objects.filter(pk=pk).first()
    if rule is None:
        raise Http404(f"No notification rule {pk}.")
    return rule


def _save_channel(request: HttpRequest, channel: Channel | None, data: dict) -> Channel:
    actor = need(request, Role.ADMIN)
    form = ChannelForm(data, channel=channel)
    if not form.is_valid():
        raise _field_errors(form)
    clean = form.cleaned_data
    try:
        return services.channel_save(
            channel=channel,
            name=clean["name"],
            url=clean["url"] or None,
            enabled=clean["enabled"],
            by=actor.user,
            via=actor.via,
        )
    except apprise_send.BadChannelURL as exc:
        from printfarm.api.api import FieldErrors

        raise FieldErrors({"url": [str(exc)]}) from None


@router.get("/notifications/channels", response={200: list[ChannelOut], **ERRORS}, summary="Channels (admin)")
def channel_list(request: HttpRequest):
    need(request, Role.ADMIN)
    return [channel_out(c) for c in Channel.objects.all()]


@router.post("/notifications/channels", response={201: ChannelOut, **ERRORS}, summary="Add a channel (admin)")
def channel_create(request: HttpRequest, body: ChannelIn):
    channel = _save_channel(request, None, body.model_dump())
    return Status(201, channel_out(channel))


@router.patch(
    "/notifications/channels/{channel_id}",
    response={200: ChannelOut, **ERRORS},
    summary="Change a channel (admin)",
)
def channel_change(request: HttpRequest, channel_id: int, body: ChannelPatch):
    need(request, Role.ADMIN)
    channel = _channel(channel_id)
    data = {"name": channel.name, "enabled": channel.enabled, "url": ""}
    data.update({k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None})
    return channel_out(_save_channel(request, channel, data))


@router.delete(
    "/notifications/channels/{channel_id}", response={204: None, **ERRORS}, summary="Delete a channel (admin)"
)
def channel_remove(request: HttpRequest, channel_id: int):
    actor = need(request, Role.ADMIN)
    services.channel_delete(channel=_channel(channel_id), by=actor.user, via=actor.via)
    return Status(204, None)


@router.post(
    "/notifications/channels/{channel_id}/test",
    response={200: TestOut, **ERRORS},
    summary="Send a test message now and return the channel's answer (admin)",
)
def channel_test(request: HttpRequest, channel_id: int):
    need(request, Role.ADMIN)
    delivery = channel_test_send(_channel(channel_id))
    return {
        "ok": delivery.state == Delivery.State.SENT,
        "answer": delivery.answer,
        "delivery_id": delivery.pk,
    }


def _save_rule(request: HttpRequest, rule: Rule | None, body: RuleIn) -> Rule:
    actor = need(request, Role.ADMIN)
    data = body.model_dump()
    names = data.pop("tags")
    tags = list(Tag.objects.filter(name__in=names))
    missing = sorted(set(names) - {t.name for t in tags})
    if missing:
        from printfarm.api.api import FieldErrors

        raise FieldErrors({"tags": [f"No tag named {', '.join(missing)}."]})
    form = RuleForm({**data, "tags": [t.pk for t in tags]}, instance=rule)
    if not form.is_valid():
        raise _field_errors(form)
    clean = form.cleaned_data
    return services.rule_save(
        rule=rule, fields=clean, tags=clean["tags"], channels=clean["channels"], by=actor.user, via=actor.via
    )


@router.get("/notifications/rules", response={200: list[RuleOut], **ERRORS}, summary="Rules (admin)")
def rule_list(request: HttpRequest):
    need(request, Role.ADMIN)
    return [rule_out(r) for r in Rule.objects.prefetch_related("tags", "channels")]


@router.post("/notifications/rules", response={201: RuleOut, **ERRORS}, summary="Add a rule (admin)")
def rule_create(request: HttpRequest, body: RuleIn):
    return Status(201, rule_out(_save_rule(request, None, body)))


@router.put(
    "/notifications/rules/{rule_id}", response={200: RuleOut, **ERRORS}, summary="Replace a rule (admin)"
)
def rule_replace(request: HttpRequest, rule_id: int, body: RuleIn):
    need(request, Role.ADMIN)
    return rule_out(_save_rule(request, _rule(rule_id), body))


@router.delete(
    "/notifications/rules/{rule_id}", response={204: None, **ERRORS}, summary="Delete a rule (admin)"
)
def rule_remove(request: HttpRequest, rule_id: int):
    actor = need(request, Role.ADMIN)
    services.rule_delete(rule=_rule(rule_id), by=actor.user, via=actor.via)
    return Status(204, None)


@router.get(
    "/notifications/log",
    response={200: LogPage, **ERRORS},
    summary="Messages and attempts, newest first (admin)",
)
def notification_log(request: HttpRequest, query: Query[LogQuery]):
    need(request, Role.ADMIN)
    deliveries = (
        Delivery.objects.select_related("rule").prefetch_related("tries").order_by("-created_at", "-pk")
    )
    page = deliveries[query.offset : query.offset + query.limit]
    items = [
        {
            "id": d.pk,
            "channel": d.channel_name,
            "rule": d.rule.name if d.rule else None,
            "title": d.title,
            "body": d.body,
            "state": d.state,
            "held": d.held,
            "attempts": d.attempts,
            "send_at": d.send_at,
            "created_at": d.created_at,
            "events": d.events.count(),
            "tries": [
                {"number": t.number, "at": t.at, "ok": t.ok, "answer": t.answer} for t in d.tries.all()
            ],
        }
        for d in page
    ]
    return {"count": deliveries.count(), "items": items}
