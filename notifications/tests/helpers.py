"""What the notification tests call: a clock to move, channels and rules made through the services."""

from __future__ import annotations

import datetime as dt
import socket

from asgiref.sync import sync_to_async
from django.utils import timezone

from notifications.models import Channel, Rule
from notifications.services import channel_save, rule_save


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Clock:
    """The sender's wall clock, moved by the test (digest windows, quiet hours, thresholds)."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or timezone.now()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@sync_to_async
def make_channel(url: str, name: str = "ops") -> Channel:
    return channel_save(name=name, url=url)


@sync_to_async
def make_rule(channels, kinds, *, tags=(), name: str = "all", **fields) -> Rule:
    return rule_save(fields={"name": name, "kinds": list(kinds), **fields}, tags=tags, channels=channels)
