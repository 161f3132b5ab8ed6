"""Login lockout (django-axes): 5 failures per user name and address, 15 minutes, reset on success."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from asgiref.sync import async_to_sync
from axes.models import AccessAttempt
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone

from printers.tests.factories import PASSWORD, UserFactory
from printfarm.testing import web_server

pytestmark = pytest.mark.django_db

LIMIT = 5


def log_in(client: Client, username: str, password: str, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def logged_in(client: Client) -> bool:
    return client.get(reverse("printers:dashboard")).status_code == 200


def test_five_wrong_passwords_lock_out_even_the_right_one():
    user = UserFactory()
    client = Client()
    for _ in range(LIMIT - 1):
        response = log_in(client, user.username, "wrong")
        assert response.status_code == 200  # the form again, with its error
        assert "Too many failed logins" not in response.content.decode()
    locked = log_in(client, user.username, "wrong")
    assert locked.status_code == 429

    response = log_in(client, user.username, PASSWORD)
    page = " ".join(response.content.decode().split())
    assert response.status_code == 429
    assert "Too many failed logins" in page
    assert "try again in 15 minutes" in page
    assert "registration/locked_out.html" in [t.name for t in response.templates]
    assert not logged_in(client)


def test_other_users_and_other_addresses_are_not_locked_out():
    victim, other = UserFactory(), UserFactory()
    for _ in range(LIMIT):
        log_in(Client(), victim.username, "wrong")

    client = Client()
    assert log_in(client, other.username, PASSWORD).status_code == 302
    assert logged_in(client)
    # The lock is for the user name *from that address*: the same user elsewhere gets in.
    elsewhere = Client(REMOTE_ADDR="10.9.8.7")
    assert log_in(elsewhere, victim.username, PASSWORD).status_code == 302
    assert logged_in(elsewhere)


def test_a_successful_login_resets_the_count():
    user = UserFactory()
    client = Client()
    for _ in range(LIMIT - 1):
        log_in(client, user.username, "wrong")
    assert log_in(client, user.username, PASSWORD).status_code == 302
    client.post(reverse("logout"))
    assert not AccessAttempt.objects.filter(username=user.username).exists()

    for _ in range(LIMIT - 1):
        log_in(client, user.username, "wrong")
    assert log_in(client, user.username, PASSWORD).status_code == 302  # 4 + 4 never reached 5


def test_lock_lifts_after_the_cool_off():
    user = UserFactory()
    client = Client()
    for _ in range(LIMIT):
        log_in(client, user.username, "wrong")
    assert log_in(client, user.username, PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - dt.timedelta(minutes=16))
    assert log_in(client, user.username, PASSWORD).status_code == 302


def test_cool_off_minutes_follow_the_setting(settings):
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=45)
    user = UserFactory()
    client = Client()
    for _ in range(LIMIT):
        log_in(client, user.username, "wrong")
    page = " ".join(log_in(client, user.username, PASSWORD).content.decode().split())
    assert "try again in 45 minutes" in page


def test_lockout_under_asgi():
    # The ASGI handler takes axes' async middleware path, a different code path in axes.
    # async_to_sync: the handler's ORM work then runs on this thread, in the test transaction.
    user = UserFactory()
    client = AsyncClient()
    post = async_to_sync(client.post)
    for _ in range(LIMIT):
        post(reverse("login"), {"username": user.username, "password": "wrong"})
    response = post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def test_force_login_is_untouched_and_login_needs_the_request():
    # The test client's login() authenticates without a request, which axes refuses;
    # force_login() skips authentication and still works (the suite uses it everywhere).
    from axes.exceptions import AxesBackendRequestParameterRequired
    from django.test import RequestFactory

    user = UserFactory()
    client = Client()
    with pytest.raises(AxesBackendRequestParameterRequired):
        client.login(username=user.username, password=PASSWORD)
    assert client.login(request=RequestFactory().get("/"), username=user.username, password=PASSWORD)
    client.force_login(user)
    assert logged_in(client)


# -- the client address, through the web server as deployed ----------------------------------------


def browser_log_in(http: httpx.Client, username: str, password: str, forwarded_for: str) -> httpx.Response:
    if "csrftoken" not in http.cookies:
        http.get("/login/")
    return http.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": http.cookies["csrftoken"]},
        headers={"X-Forwarded-For": forwarded_for},
    )


# Addresses from the documentation ranges (RFC 5737): header text only, nothing connects to them.
@pytest.mark.django_db(transaction=True)
def test_rotating_x_forwarded_for_without_a_proxy_still_locks_out(settings):
    settings.PRINTFARM_BEHIND_PROXY = False
    user = UserFactory()
    with web_server() as url, httpx.Client(base_url=url) as http:
        statuses = [
            browser_log_in(http, user.username, "wrong", forwarded_for=f"198.51.100.{i}").status_code
            for i in range(LIMIT)
        ]
        locked = browser_log_in(http, user.username, PASSWORD, forwarded_for="198.51.100.99")
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.text
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}


@pytest.mark.django_db(transaction=True)
def test_behind_a_proxy_the_address_it_appended_is_locked_out(settings):
    settings.PRINTFARM_BEHIND_PROXY = True
    user = UserFactory()
    with web_server() as url, httpx.Client(base_url=url) as http:
        # What the client sent first, then the address the proxy appended (nginx's
        # $proxy_add_x_forwarded_for): only the right-most one is believed.
        forwarded = [f"198.51.100.{i}, 203.0.113.5" for i in range(LIMIT)]
        statuses = [browser_log_in(http, user.username, "wrong", xff).status_code for xff in forwarded]
        assert statuses == [200] * (LIMIT - 1) + [429]
        locked = browser_log_in(http, user.username, PASSWORD, forwarded_for="198.51.100.99, 203.0.113.5")
        assert locked.status_code == 429
        assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.5"}
        elsewhere = browser_log_in(http, user.username, PASSWORD, forwarded_for="203.0.113.6")
    assert elsewhere.status_code == 302  # another client behind the same proxy gets in
    assert re.search(r"/$|/printers", elsewhere.headers["Location"])
