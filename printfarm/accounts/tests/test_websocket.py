"""The farm websocket lets any role watch, and refuses a user without one."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from printers.tests.factories import UserFactory
from printfarm.accounts.models import Role
from printfarm.asgi import application

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
async def layer(settings):
    settings.REDIS_URL = ""
    settings.CHANNEL_LAYERS = IN_MEMORY
    settings.PRINTFARM_FEED_INTERVAL = 0.05
    yield
    await sync_to_async(connections.close_all)()


async def connect(user=None, *, disable: bool = False) -> bool:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if user is not None:
        client = Client()
        await sync_to_async(client.force_login)(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
        if disable:  # after signing in: the open session stops working
            await get_user_model().objects.filter(pk=user.pk).aupdate(is_active=False)
    communicator = WebsocketCommunicator(application, "/ws/farm/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
async def test_a_viewer_may_watch_the_farm():
    assert await connect(await sync_to_async(UserFactory)(role=Role.VIEWER))


@pytest.mark.django_db(transaction=True)
async def test_a_user_without_a_profile_watches_as_a_viewer():
    user = await get_user_model().objects.acreate_user(username="plain", password="x-y-z-1-2-3")
    assert await connect(user)


@pytest.mark.django_db(transaction=True)
async def test_anonymous_is_refused():
    assert not await connect()


@pytest.mark.django_db(transaction=True)
async def test_a_disabled_user_is_refused():
    assert not await connect(await sync_to_async(UserFactory)(role=Role.ADMIN), disable=True)
