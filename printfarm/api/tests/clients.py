"""What the API tests share: clients holding a token for a role, JSON requests, the error shape."""

from __future__ import annotations

import json

from django.test import Client

from printers.tests.factories import UserFactory
from printfarm.accounts.models import Role
from printfarm.accounts.roles import set_role
from printfarm.accounts.tokens import token_create


def api_client(role: Role, **client_options) -> tuple[Client, object]:
    user = UserFactory()
    set_role(user, role)
    secret = token_create(user, f"{role.value} token").secret
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", **client_options), user


def post(client: Client, url: str, data: object = None, **extra):
    return client.post(
        url, json.dumps({} if data is None else data), content_type="application/json", **extra
    )


def patch(client: Client, url: str, data: object, **extra):
    return client.patch(url, json.dumps(data), content_type="application/json", **extra)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response.content
    body = response.json()
    assert body["code"] == code and body["detail"]
    assert set(body) == {"code", "detail", "fields"}
    return body
