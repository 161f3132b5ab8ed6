"""Fresh caches; clients holding a token for each role."""

import pytest

from printfarm.accounts.models import Role
from printfarm.api.auth import forget_tokens
from printfarm.api.snapshot import snapshot
from printfarm.api.tests.clients import api_client


@pytest.fixture(autouse=True)
def fresh_caches():
    forget_tokens()
    snapshot.invalidate()
    yield
    forget_tokens()
    snapshot.invalidate()


@pytest.fixture
def viewer(db):
    return api_client(Role.VIEWER)[0]


@pytest.fixture
def operator(db):
    return api_client(Role.OPERATOR)[0]


@pytest.fixture
def admin(db):
    return api_client(Role.ADMIN)[0]
