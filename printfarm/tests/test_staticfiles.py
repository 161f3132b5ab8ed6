"""Static files come from the async-capable WhiteNoise wrapper, and no middleware is sync-only."""

import pytest
from django.conf import settings
from django.test import AsyncClient, Client
from django.utils.module_loading import import_string


def test_every_middleware_can_run_async():
    # One sync-only middleware would send every ASGI request through Django's single
    # sync thread (printfarm/staticfiles.py says why).
    sync_only = [m for m in settings.MIDDLEWARE if not getattr(import_string(m), "async_capable", False)]
    assert sync_only == []


def test_static_file_served_sync():
    response = Client().get("/static/css/printfarm.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")


@pytest.mark.django_db
async def test_static_file_served_async_and_pages_still_reached():
    client = AsyncClient()
    response = await client.get("/static/js/jobs.js")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"/* printfarm")
    assert (await client.get("/")).status_code == 302  # not static: on to the views (login)
