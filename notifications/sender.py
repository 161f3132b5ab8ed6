"""The sender: routes outbox events into messages by the rules, sends the due ones through
Apprise in threads (never on the poller's loop), retries with backoff, records every attempt,
and runs the periodic checks.

Every step is a compare-and-set on the database, so senders in several processes (each
poller shard, `manage.py send_notifications`) share the work without sending a message twice.
A message claimed by a sender that is killed mid-send is sent again once its claim expires:
the one case of "at least once", as no channel can tell us whether it got it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications import apprise_send, checks
from notifications.messages import compose
from notifications.models import Channel, Delivery, DeliveryAttempt, Event, Rule

logger = logging.getLogger(__name__)

ROUTE_BATCH = 500
CONCURRENCY = 4  # messages in flight at once: a dead channel's timeouts don't hold the others
SHUTDOWN_GRACE = 5.0  # seconds a stopping sender waits for messages in flight
KEEP = dt.timedelta(days=30)  # the log keeps finished messages this long
PRUNE_EVERY = 3600.0  # seconds

D = Delivery.State


def _db(func):
    return sync_to_async(func, thread_sensitive=True)


# -- routing -------------------------------------------------------------------------------


def route(now: dt.datetime) -> int:
    """Put unrouted events into the messages of the rules that want them; how many routed."""
    events = list(Event.objects.filter(routed_at__isnull=True).order_by("pk")[:ROUTE_BATCH])
    if not events:
        return 0
    rules = list(Rule.objects.filter(enabled=True).prefetch_related("tags", "channels"))
    from printers.models import Printer

    printer_ids = {e.printer_id for e in events if e.printer_id is not None}
    tags: dict[int, set[int]] = {pk: set() for pk in printer_ids}
    for printer_id, tag_id in Printer.tags.through.objects.filter(printer_id__in=printer_ids).values_list(
        "printer_id", "tag_id"
    ):
        tags[printer_id].add(tag_id)
    routed = 0
    with transaction.atomic():
        for event in events:
            # Claimed first: another sender routing the same event finds it taken.
            if not Event.objects.filter(pk=event.pk, routed_at__isnull=True).update(routed_at=now):
                continue
            routed += 1
            for rule in rules:
                if _wants(rule, event, tags):
                    for channel in rule.channels.all():
                        if channel.enabled:
                            _add(rule, channel, event, now)
    return routed


def _wants(rule: Rule, event: Event, tags: dict[int, set[int]]) -> bool:
    if event.kind not in rule.kinds or (event.rule_id is not None and event.rule_id != rule.pk):
        return False
    wanted = {t.pk for t in rule.tags.all()}
    if not wanted or event.printer_id is None:
        return True  # farm-wide events (queue, poller) go to every rule that takes their kind
    return bool(wanted & tags.get(event.printer_id, set()))


def _local_time(at: dt.datetime) -> dt.time:
    return timezone.localtime(at).time()


def quiet_end_after(rule: Rule, at: dt.datetime) -> dt.datetime:
    """The first end of the rule's quiet hours after `at` (local time)."""
    local = timezone.localtime(at)
    end = local.replace(hour=rule.quiet_end.hour, minute=rule.quiet_end.minute, second=0, microsecond=0)
    if end <= local:
        end += dt.timedelta(days=1)
    return end


def _add(rule: Rule, channel: Channel, event: Event, now: dt.datetime) -> None:
    window = dt.timedelta(seconds=rule.digest_seconds)
    if rule.quiet_action == Rule.QuietAction.DROP and rule.is_quiet(_local_time(now)):
        dropped = (
            Delivery.objects.filter(rule=rule, channel=channel, state=D.DROPPED, created_at__gte=now - window)
            .order_by("-pk")
            .first()
        )
        if dropped is None:
            dropped = Delivery.objects.create(
                channel=channel,
                channel_name=channel.name,
                rule=rule,
                state=D.DROPPED,
                send_at=now,
                created_at=now,
                finished_at=now,
                answer=f"Dropped: quiet hours ({rule.quiet_start:%H:%M}–{rule.quiet_end:%H:%M})",
            )
        dropped.events.add(event)
        return
    # Locked (PostgreSQL), so a sender claiming it waits until this event is in it.
    open_one = (
        Delivery.objects.select_for_update()
        .filter(rule=rule, channel=channel, state=D.PENDING, attempts=0)
        .order_by("pk")
        .first()
    )
    if open_one is None:
        send_at = now + window
        held = rule.quiet_action == Rule.QuietAction.HOLD and rule.is_quiet(_local_time(send_at))
        if held:
            send_at = quiet_end_after(rule, send_at)
        open_one = Delivery.objects.create(
            channel=channel, channel_name=channel.name, rule=rule, send_at=send_at, held=held, created_at=now
        )
    open_one.events.add(event)


def prune(now: dt.datetime) -> int:
    """Forget finished messages and their events after KEEP (the log would grow for ever);
    how many of both were deleted."""
    cutoff = now - KEEP
    done = (D.SENT, D.FAILED, D.DROPPED)
    _, messages = Delivery.objects.filter(state__in=done, finished_at__lt=cutoff).delete()
    _, events = Event.objects.filter(routed_at__lt=cutoff, deliveries__isnull=True).delete()
    return messages.get("notifications.Delivery", 0) + events.get("notifications.Event", 0)


# -- sending -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    delivery_id: int
    url: str
    title: str
    body: str
    failure: bool
    attach: str | None


def claim_due(now: dt.datetime, *, limit: int, lease: float) -> list[Outgoing]:
    """Take up to `limit` due messages (and those whose sender's claim expired), composing
    each one's text the first time it is sent."""
    due = Q(state=D.PENDING, send_at__lte=now) | Q(state=D.SENDING, claimed_until__lt=now)
    pks = list(Delivery.objects.filter(due).order_by("send_at", "pk").values_list("pk", flat=True)[:limit])
    taken = []
    for pk in pks:
        until = now + dt.timedelta(seconds=lease)
        if Delivery.objects.filter(due, pk=pk).update(state=D.SENDING, claimed_until=until):
            taken.append(pk)
    outgoing = []
    for delivery in Delivery.objects.filter(pk__in=taken).select_related("channel"):
        if not delivery.channel.enabled:
            Delivery.objects.filter(pk=delivery.pk).update(
                state=D.DROPPED, finished_at=now, answer="Dropped: the channel is disabled"
            )
            continue
        events = list(delivery.events.select_related("job__file").order_by("created_at", "pk"))
        message = compose(events)
        if not delivery.title:
            Delivery.objects.filter(pk=delivery.pk).update(title=message.title, body=message.body)
        outgoing.append(
            Outgoing(
                delivery.pk,
                delivery.channel.url,
                message.title,
                message.body,
                message.failure,
                message.attach,
            )
        )
    return outgoing


def attempt_record(*, delivery_id: int, answer: apprise_send.Answer, now: dt.datetime) -> Delivery.State:
    """Record an attempt; the message is then sent, waits for its retry, or is given up."""
    delays = list(settings.PRINTFARM_NOTIFY_RETRY_SECONDS)
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None:  # its channel was deleted meanwhile
            return D.DROPPED
        number = delivery.attempts + 1
        DeliveryAttempt.objects.create(
            delivery=delivery, number=number, at=now, ok=answer.ok, answer=answer.text
        )
        fields: dict[str, object] = {"attempts": number, "answer": answer.text, "claimed_until": None}
        if answer.ok:
            fields.update(state=D.SENT, finished_at=now)
        elif number > len(delays):
            fields.update(state=D.FAILED, finished_at=now)
        else:
            fields.update(state=D.PENDING, held=False, send_at=now + dt.timedelta(seconds=delays[number - 1]))
        Delivery.objects.filter(pk=delivery_id).update(**fields)
    return fields["state"]  # type: ignore[return-value]


def send_blocking(outgoing: Outgoing, timeout: float) -> apprise_send.Answer:
    return apprise_send.send(
        outgoing.url,
        title=outgoing.title,
        body=outgoing.body,
        failure=outgoing.failure,
        attach=outgoing.attach,
        timeout=timeout,
    )


class Sender:
    """One per process that sends: `await sender.start()`, later `await sender.aclose()`.

    `clock` gives the time rules and retries are reckoned in (a test moves it on to end a
    digest window or quiet hours); the loop's own pauses are real time.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], dt.datetime] = timezone.now,
        interval: float | None = None,
        check_interval: float | None = None,
        send_timeout: float | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.clock = clock
        self.interval = interval if interval is not None else settings.PRINTFARM_NOTIFY_INTERVAL
        self.check_interval = (
            check_interval if check_interval is not None else settings.PRINTFARM_NOTIFY_CHECK_SECONDS
        )
        self.send_timeout = (
            send_timeout if send_timeout is not None else settings.PRINTFARM_NOTIFY_SEND_TIMEOUT
        )
        self.concurrency = concurrency
        self.sent = 0
        self.failed_attempts = 0
        self._task: asyncio.Task | None = None
        self._inflight: set[asyncio.Task] = set()
        self._next_check = 0.0
        self._next_prune = 0.0
        self._own_shard: tuple[int, int] | None = None

    async def start(self, *, poller_shard: tuple[int, int] | None = None) -> None:
        """Start the loop; a poller passes its shard first, before it takes its heartbeat row,
        so a predecessor that died is reported."""
        self._own_shard = poller_shard
        if poller_shard is not None:
            try:
                await _db(checks.poller_died_check)(poller_shard)
            except Exception:
                logger.exception("Could not check how the last poller of shard %s ended", poller_shard)
        self._task = asyncio.create_task(self._run(), name="notification-sender")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inflight:
            # Sends run in threads: give them a moment; one cut off is sent again once its claim expires.
            await asyncio.wait(self._inflight, timeout=min(SHUTDOWN_GRACE, self.send_timeout))
            for pending in self._inflight:
                pending.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                # A database outage must not end the sender: the outbox keeps everything.
                logger.exception("Notification round failed; retrying in %g s", self.interval)
            await asyncio.sleep(self.interval)

    async def run_once(self) -> None:
        """Check (when due), route, and start sending what is due."""
        if time.monotonic() >= self._next_check:
            if self._next_check == 0.0 or time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY
                await _db(prune)(self.clock())
            self._next_check = time.monotonic() + self.check_interval
            await _db(checks.check_all)(self.clock(), own_shard=self._own_shard)
        await _db(route)(self.clock())
        room = self.concurrency - len(self._inflight)
        if room <= 0:
            return
        lease = self.send_timeout + 30.0
        for outgoing in await _db(claim_due)(self.clock(), limit=room, lease=lease):
            task = asyncio.create_task(self._send(outgoing), name=f"notification-{outgoing.delivery_id}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _send(self, outgoing: Outgoing) -> None:
        try:
            answer = await asyncio.wait_for(
                asyncio.to_thread(send_blocking, outgoing, self.send_timeout), self.send_timeout + 5.0
            )
        except TimeoutError:
            answer = apprise_send.Answer(False, f"No answer within {self.send_timeout:g} s")
        state = await _db(attempt_record)(delivery_id=outgoing.delivery_id, answer=answer, now=self.clock())
        if answer.ok:
            self.sent += 1
        else:
            self.failed_attempts += 1
            logger.warning("Notification %d not sent (%s): %s", outgoing.delivery_id, state, answer.text)


def channel_test_send(channel: Channel, *, timeout: float | None = None) -> Delivery:
    """Send a test message now (blocking: the page waits for the channel's answer) and record
    it in the log like any other message; no retries."""
    from notifications.messages import base_url

    now = timezone.now()
    link = base_url()
    body = "A test message from printfarm: this channel works." + (f"\n{link}/" if link else "")
    delivery = Delivery.objects.create(
        channel=channel,
        channel_name=channel.name,
        state=D.SENDING,
        send_at=now,
        created_at=now,
        title="printfarm test message",
        body=body,
    )
    answer = apprise_send.send(
        channel.url,
        title=delivery.title,
        body=body,
        failure=False,
        attach=None,
        timeout=timeout if timeout is not None else settings.PRINTFARM_NOTIFY_SEND_TIMEOUT,
    )
    with transaction.atomic():
        DeliveryAttempt.objects.create(delivery=delivery, number=1, ok=answer.ok, answer=answer.text)
        Delivery.objects.filter(pk=delivery.pk).update(
            state=D.SENT if answer.ok else D.FAILED,
            attempts=1,
            answer=answer.text,
            finished_at=timezone.now(),
        )
    delivery.refresh_from_db()
    return delivery
