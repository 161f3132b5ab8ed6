"""Clients signed in with a given role."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from printers.tests.factories import UserFactory
from printfarm.accounts.models import Role


@pytest.fixture
def login(db) -> Callable[..., Client]:
    """`login(Role.VIEWER)`: a client signed in as a new user with that role."""

    def make(role: Role = Role.ADMIN, **fields) -> Client:
        client = Client()
        client.user = UserFactory(role=role, **fields)
        client.force_login(client.user)
        return client

    return make
