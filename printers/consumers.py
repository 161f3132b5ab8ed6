"""Websocket consumers: they join groups and forward what realtime.py sends, nothing else."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from printers import realtime
from printfarm.accounts.roles import role_of


class FarmConsumer(AsyncWebsocketConsumer):
    """/ws/farm/: pushes re-rendered printer cards (hx-swap-oob HTML) to signed-in users;
    /ws/farm/?view=wall: the wall's tiles instead."""

    feeding = False
    view = "cards"

    async def connect(self) -> None:
        # Any role may watch; anonymous and disabled users have none.
        if await database_sync_to_async(role_of)(self.scope.get("user")) is None:
            await self.close()  # before accept(): the handshake is refused (HTTP 403)
            return
        query = self.scope.get("query_string", b"")
        self.view = realtime.view_of(query)
        await self.channel_layer.group_add(realtime.GROUPS[self.view], self.channel_name)
        await self.accept()
        self.feeding = realtime.feed_subscribe(self.view)
        # In the group first, then what changed between the page's read and now: nothing falls
        # in between (a card may come twice; the second swap changes nothing).
        since = realtime.since_of(query)
        if since is not None:
            for html in await database_sync_to_async(realtime.catch_up)(since, self.view):
                await self.send(text_data=html)

    async def disconnect(self, code: int) -> None:
        if self.feeding:
            self.feeding = False
            realtime.feed_unsubscribe(self.view)
        await self.channel_layer.group_discard(realtime.GROUPS[self.view], self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        pass  # the browser has nothing to say on this socket

    async def cards_html(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
