"""Request ids and the one-line-per-request log (sync and ASGI)."""

from __future__ import annotations

import logging
import re

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.urls import reverse

from printers.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGGER = "printfarm.requests"
NEW_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def requests_log(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    return caplog


def lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def test_each_response_carries_a_new_request_id(client):
    first, second = client.get("/login/"), client.get("/login/")
    assert NEW_ID.fullmatch(first["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("edge-7f3a.b_9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
        ("ünïcode", False),
    ],
)
def test_a_sane_incoming_request_id_is_reused(client, incoming, kept):
    echoed = client.get("/login/", HTTP_X_REQUEST_ID=incoming)["X-Request-ID"]
    assert (echoed == incoming) is kept
    if not kept:
        assert NEW_ID.fullmatch(echoed)


def test_one_line_per_request_with_user_status_and_id(client, requests_log):
    user = UserFactory()
    client.force_login(user)
    response = client.get(reverse("printers:dashboard"), HTTP_X_REQUEST_ID="abc-123")
    [record] = lines(requests_log)
    assert record.levelno == logging.INFO
    assert re.fullmatch(rf"GET / 200 \d+\.\dms user={user.pk} id=abc-123", record.getMessage())
    assert response["X-Request-ID"] == "abc-123"


def test_anonymous_and_not_found_requests_are_logged_too(client, requests_log):
    client.get("/login/")
    client.get("/no/such/page/")
    messages = [r.getMessage() for r in lines(requests_log)]
    assert re.fullmatch(r"GET /login/ 200 \S+ user=- id=\w+", messages[0])
    assert re.fullmatch(r"GET /no/such/page/ 404 \S+ user=- id=\w+", messages[1])


def test_the_user_who_just_logged_in_is_named(client, requests_log):
    from printers.tests.factories import PASSWORD

    user = UserFactory()
    client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert "POST /login/ 302 " in lines(requests_log)[-1].getMessage()
    assert f"user={user.pk} " in lines(requests_log)[-1].getMessage()


def test_static_files_and_metrics_are_not_logged_unless_slow(admin_client, requests_log, settings):
    admin_client.get("/static/css/printfarm.css")
    admin_client.get(reverse("ops:metrics"))
    assert lines(requests_log) == []

    settings.PRINTFARM_SLOW_REQUEST_MS = 0  # every request is slow now
    admin_client.get("/static/css/printfarm.css")
    [record] = lines(requests_log)
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("SLOW GET /static/css/printfarm.css 200 ")


def test_slow_requests_are_warnings(client, requests_log, settings):
    settings.PRINTFARM_SLOW_REQUEST_MS = 0
    client.get("/login/")
    [record] = lines(requests_log)
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("SLOW GET /login/ 200 ")


def test_control_characters_in_the_path_stay_out_of_the_log(client, requests_log):
    client.get("/nothing%0Aforged line%0D/")
    [record] = lines(requests_log)
    assert "\n" not in record.getMessage() and "\r" not in record.getMessage()
    assert "/nothing%0Aforged%20line%0D/" in record.getMessage()


def test_asgi_requests_get_an_id_and_a_line(requests_log):
    user = UserFactory()
    client = AsyncClient()
    client.force_login(user)
    response = async_to_sync(client.get)(reverse("printers:dashboard"), headers={"X-Request-ID": "asgi-1"})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "asgi-1"
    [record] = lines(requests_log)
    assert re.fullmatch(rf"GET / 200 \S+ user={user.pk} id=asgi-1", record.getMessage())
