"""Every API answer that is an error is `{code, detail, fields}` JSON: unexpected failures (500
with the request id), a busy database (503, Retry-After), bad tokens on writes (401)."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import contextmanager

import psycopg
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, connection
from django.test import Client

from jobs.demo import gcode_bytes
from jobs.tests.factories import make_file
from printers.models import Printer
from printers.tests.factories import PrinterFactory, UserFactory
from printfarm.accounts.models import ApiToken, Role
from printfarm.accounts.roles import set_role
from printfarm.accounts.tokens import token_create, token_revoke
from printfarm.api import printers as printers_api
from printfarm.api.auth import forget_tokens
from printfarm.api.snapshot import snapshot
from printfarm.api.tests.clients import api_client, assert_error, patch, post

try:
    from psycopg_pool import PoolTimeout
except ImportError:  # the pool isn't installed here: a stand-in with its name and base class

    class PoolTimeout(psycopg.OperationalError):  # type: ignore[no-redef]
        pass


pytestmark = pytest.mark.django_db

NEW_PRINTER = {"name": "new", "protocol": "moonraker", "base_url": "http://127.0.0.1:7125"}


def _boom(*args, **kwargs):
    raise RuntimeError("kaboom: a bug")


# -- unexpected failures ------------------------------------------------------------------------


def test_an_unexpected_error_is_a_json_500_with_the_request_id(admin, monkeypatch, caplog):
    url = f"/api/v1/printers/{PrinterFactory().pk}"
    monkeypatch.setattr(printers_api, "printer_update", _boom)
    with caplog.at_level(logging.ERROR):
        response = patch(admin, url, {"location": "x"}, HTTP_X_REQUEST_ID="req-500")
    body = assert_error(response, 500, "server_error")
    assert "request id req-500" in body["detail"]
    assert body["fields"] == {}
    assert "kaboom" not in body["detail"]  # the bug's details stay in the log
    assert response["X-Request-ID"] == "req-500"
    logged = [r for r in caplog.records if r.exc_info and "req-500" in r.getMessage()]
    assert logged and isinstance(logged[0].exc_info[1], RuntimeError)


def test_an_unexpected_error_in_an_async_view_is_json_too(viewer, monkeypatch):
    async def broken():
        raise RuntimeError("kaboom")

    monkeypatch.setattr(snapshot, "get", broken)
    response = viewer.get("/api/v1/printers")
    body = assert_error(response, 500, "server_error")
    assert f"request id {response['X-Request-ID']}" in body["detail"]


# -- a busy database ----------------------------------------------------------------------------


@contextmanager
def sqlite_write_lock_held_elsewhere():
    """Another connection holds the write lock; ours gives up after 50 ms, not the configured wait."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock")
    connection.ensure_connection()
    (configured,) = connection.connection.execute("PRAGMA busy_timeout").fetchone()
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    connection.connection.execute("PRAGMA busy_timeout=50")
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()
        connection.connection.execute(f"PRAGMA busy_timeout={configured}")


@pytest.mark.django_db(transaction=True)
def test_a_locked_sqlite_database_is_503_with_retry_after():
    client, _ = api_client(Role.ADMIN)
    assert client.get("/api/v1/me").status_code == 200  # the token's first use is written now
    with sqlite_write_lock_held_elsewhere():
        response = post(client, "/api/v1/printers", NEW_PRINTER)
    assert_error(response, 503, "busy")
    assert response["Retry-After"] == "2"
    assert not Printer.objects.exists()
    assert post(client, "/api/v1/printers", NEW_PRINTER).status_code == 201  # the retry works


@pytest.mark.django_db(transaction=True)
def test_a_locked_database_while_checking_the_token_is_503_too():
    client, _ = api_client(Role.VIEWER)  # never used: checking it writes last_used_at
    with sqlite_write_lock_held_elsewhere():
        response = client.get("/api/v1/me")
    assert_error(response, 503, "busy")
    assert response["Retry-After"] == "2"


def _pool_timeout(*args, **kwargs):
    raise PoolTimeout("couldn't get a connection after 30.00 sec")


def _pool_timeout_wrapped(*args, **kwargs):
    # What Django makes of it: its own OperationalError, the pool's exception as the cause.
    try:
        _pool_timeout()
    except PoolTimeout as exc:
        raise OperationalError(*exc.args) from exc


@pytest.mark.parametrize("failure", [_pool_timeout, _pool_timeout_wrapped])
def test_a_connection_pool_timeout_is_503_with_retry_after(admin, monkeypatch, failure):
    monkeypatch.setattr(printers_api, "printer_create", failure)
    response = post(admin, "/api/v1/printers", NEW_PRINTER)
    assert_error(response, 503, "busy")
    assert response["Retry-After"] == "2"


def test_other_database_errors_are_500s_not_503s(admin, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("no such table: printers_printer")

    monkeypatch.setattr(printers_api, "printer_create", broken)
    assert_error(post(admin, "/api/v1/printers", NEW_PRINTER), 500, "server_error")


# -- tokens on writes ---------------------------------------------------------------------------


def _writes(printer: Printer) -> dict:
    return {
        "POST": lambda c: post(c, "/api/v1/printers", NEW_PRINTER),
        "PATCH": lambda c: patch(c, f"/api/v1/printers/{printer.pk}", {"location": "x"}),
        "DELETE": lambda c: c.delete(f"/api/v1/printers/{printer.pk}"),
    }


def test_a_bad_or_revoked_token_on_a_write_is_401_not_a_csrf_failure():
    printer = PrinterFactory()
    revoked, user = api_client(Role.ADMIN, enforce_csrf_checks=True)
    token_revoke(ApiToken.objects.get(user=user))
    forget_tokens()
    clients = {
        "bad": Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION="Bearer pf_nope_nope"),
        "garbage": Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION="Bearer \x7f\x00;"),
        "revoked": revoked,
        "none": Client(enforce_csrf_checks=True),
    }
    for name, client in clients.items():
        for method, send in _writes(printer).items():
            response = send(client)
            assert_error(response, 401, "unauthorized"), (name, method)
            assert response["WWW-Authenticate"] == "Bearer"
    assert Printer.objects.get(pk=printer.pk).location == ""


def test_a_bad_token_decides_even_with_a_session_cookie():
    # The token was meant; falling back to the browser's session would act as someone else.
    user = UserFactory()
    set_role(user, Role.ADMIN)
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION="Bearer pf_nope_nope")
    client.force_login(user)
    assert_error(client.get("/api/v1/me"), 401, "unauthorized")
    assert_error(post(client, "/api/v1/printers", NEW_PRINTER), 401, "unauthorized")


def test_a_good_token_writes_without_csrf():
    client, _ = api_client(Role.ADMIN, enforce_csrf_checks=True)
    assert post(client, "/api/v1/printers", NEW_PRINTER).status_code == 201


def test_the_session_still_needs_csrf_on_writes():
    user = UserFactory()
    set_role(user, Role.ADMIN)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert_error(post(client, "/api/v1/printers", NEW_PRINTER), 403, "forbidden")


# -- not the operations' own errors -------------------------------------------------------------


def test_unknown_paths_wrong_methods_and_bad_bodies_answer_json(admin, settings):
    assert_error(admin.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(admin.put("/api/v1/printers"), 405, "method_not_allowed")
    bad_json = admin.post("/api/v1/printers", b"{not json", content_type="application/json")
    assert_error(bad_json, 400, "bad_request")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    assert_error(post(admin, "/api/v1/printers", {**NEW_PRINTER, "location": "x" * 200}), 413, "too_large")


# -- the OctoPrint-compatible endpoints ---------------------------------------------------------


def slicer(role: Role = Role.OPERATOR) -> Client:
    user = UserFactory()
    set_role(user, role)
    return Client(HTTP_X_API_KEY=token_create(user, "PrusaSlicer").secret)


def upload(client: Client, **extra):
    return client.post("/api/files/local", {"file": SimpleUploadedFile("a.gcode", gcode_bytes())}, **extra)


def test_slicer_upload_failing_unexpectedly_is_a_json_500(monkeypatch, caplog):
    from jobs import library

    monkeypatch.setattr(library, "store", _boom)
    with caplog.at_level(logging.ERROR):
        response = upload(slicer(), HTTP_X_REQUEST_ID="req-slicer")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert "request id req-slicer" in response.json()["error"]
    assert any(r.exc_info and "req-slicer" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_slicer_upload_to_a_locked_database_is_503_with_retry_after():
    client = slicer()
    assert client.get("/api/version").status_code == 200
    with sqlite_write_lock_held_elsewhere():
        response = upload(client)
    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response.json()["error"]


def test_slicer_endpoints_answer_json_to_bad_requests():
    client = slicer()
    no_boundary = client.post("/api/files/local", b"x", content_type="multipart/form-data")
    assert no_boundary.status_code == 400 and no_boundary.json()["error"]
    for url in ("/api/version", "/api/server", "/api/settings", "/api/printerprofiles"):
        wrong = client.post(url)
        assert wrong.status_code == 405 and wrong.json()["error"], url
    assert client.get("/api/files/local").status_code == 405


# -- input the database can't hold --------------------------------------------------------------


def test_a_nul_character_in_a_search_is_422(viewer):
    response = viewer.get("/api/v1/files?q=a%00b")
    assert "q" in assert_error(response, 422, "invalid")["fields"]


def test_a_value_the_database_refuses_is_422_not_500(operator):
    # PostgreSQL refuses NUL characters in text (SQLite stores them): a tag lookup meets it.
    response = post(operator, "/api/v1/jobs", {"file_id": make_file().pk, "tags": ["a\x00b"]})
    assert response.status_code == 422, response.content
    assert_error(response, 422, "invalid")
