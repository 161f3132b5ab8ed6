"""A page or HTMX action that finds the database busy answers 503 "try again" (issue 7)."""

from __future__ import annotations

import sqlite3

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.test import AsyncClient
from django.urls import reverse
from psycopg_pool import PoolTimeout

from jobs import services
from jobs.tests.factories import make_file
from printers.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

MESSAGE = b"The database is busy, try again in a moment."


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory())
    return client


@pytest.fixture
def busy_move(monkeypatch):
    """jobs:move whose write can't get the database: the condition under load, on demand."""

    def move(job, direction, **actor):
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "job_move", move)
    (job,) = services.jobs_create(file=make_file())
    return reverse("jobs:move", args=[job.pk, "up"])


def test_a_page_whose_write_found_the_database_locked_answers_503_with_a_message(operator_client, busy_move):
    response = operator_client.post(busy_move, HTTP_REFERER="http://testserver/queue/")
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert MESSAGE in response.content
    assert b"<html" in response.content and b"Traceback" not in response.content
    assert b'href="http://testserver/queue/"' in response.content


def test_an_htmx_action_gets_the_message_alone(operator_client, busy_move):
    response = operator_client.post(busy_move, headers={"HX-Request": "true"})
    assert response.status_code == 503
    assert MESSAGE in response.content
    assert b"<html" not in response.content
    assert b"data-busy" in response.content


@pytest.mark.django_db(transaction=True)
async def test_the_async_stack_answers_503_too(busy_move):
    client = AsyncClient()
    await client.aforce_login(await sync_to_async(UserFactory)())
    response = await client.post(busy_move)
    assert response.status_code == 503
    assert MESSAGE in response.content


def test_a_foreign_back_link_is_not_offered(operator_client, busy_move):
    response = operator_client.post(busy_move, HTTP_REFERER="https://evil.example/")
    assert b"evil.example" not in response.content


@pytest.mark.parametrize(
    "exc",
    [
        PoolTimeout("couldn't get a connection after 5.00 sec"),
        sqlite3.OperationalError("database is locked"),
    ],
)
def test_a_pool_timeout_or_a_raw_sqlite_lock_is_busy_too(operator_client, monkeypatch, exc):
    def move(job, direction, **actor):
        raise exc

    monkeypatch.setattr(services, "job_move", move)
    (job,) = services.jobs_create(file=make_file())
    assert operator_client.post(reverse("jobs:move", args=[job.pk, "up"])).status_code == 503


def test_other_database_errors_are_still_server_errors(operator_client, monkeypatch):
    def move(job, direction, **actor):
        raise OperationalError("no such table: jobs_job")

    monkeypatch.setattr(services, "job_move", move)
    (job,) = services.jobs_create(file=make_file())
    operator_client.raise_request_exception = False
    assert operator_client.post(reverse("jobs:move", args=[job.pk, "up"])).status_code == 500
