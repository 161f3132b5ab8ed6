"""Fixtures every test suite shares (helpers to call live in `printfarm.testing`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from django.test import Client

from printers.simulator import SimulatedFarm
from printers.tests.factories import UserFactory
from printfarm.testing import FarmFactory

# Tests that run a whole site (web server and poller processes, chromium, or a load of
# printers) keep one CPU busy for tens of seconds each. Under pytest-xdist (`-n 2 --dist
# loadgroup`, scripts/test.sh) they all go to one worker, one at a time, so two of them never
# starve each other; the other worker runs the rest of the suite beside them.
SITE_MODULES = {
    "jobs/tests/test_chaos.py",
    "jobs/tests/test_upload_crash.py",
    "printfarm/tests/test_change_path.py",
    "printfarm/tests/test_docker.py",
    "printfarm/tests/test_load.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        if item.get_closest_marker("browser") or module in SITE_MODULES:
            item.add_marker(pytest.mark.xdist_group("site"))


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


@pytest.fixture
async def make_farm(tmp_path: Path) -> AsyncIterator[FarmFactory]:
    """Start a SimulatedFarm on 127.0.0.1 in the test's loop; every farm made is stopped afterwards."""
    farms: list[SimulatedFarm] = []

    async def make(protocol: str, *, count: int = 1, api_key: str = "", speed: float = 60.0) -> SimulatedFarm:
        farm = SimulatedFarm(
            count=count,
            protocol=protocol,
            host="127.0.0.1",
            speed=speed,
            api_key=api_key,
            upload_dir=tmp_path / f"farm-{len(farms)}",
        )
        farms.append(farm)
        await farm.start()
        return farm

    yield make
    for farm in farms:
        await farm.stop()
