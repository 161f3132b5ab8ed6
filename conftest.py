"""Fixtures every test suite shares (helpers to call live in `printfarm.testing`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from printers.tests.factories import UserFactory


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path: Path) -> Path:
    """Where uploads are stored: a directory of this test's own, so what one test stores
    another never sees."""
    settings.PRINTFARM_FILES_DIR = tmp_path / "files"
    return settings.PRINTFARM_FILES_DIR


@pytest.fixture
def user(db):
    """A new user with the admin role (UserFactory's default), so a test may do anything."""
    return UserFactory()


@pytest.fixture
def web(client: Client, user) -> Client:
    """Django's test client signed in as `user`."""
    client.force_login(user)
    return client
