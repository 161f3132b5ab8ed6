"""The simulated farm the dispatch tests drive (the files directory is the root conftest's)."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from printers.simulator import SimulatedFarm
from printfarm.testing import FarmFactory

SPEED = 60.0  # a file estimated at 60 s prints in 1 s


@pytest.fixture
async def close_thread_connections():
    """The dispatcher queries from sync_to_async's worker thread; close that thread's
    connection so PostgreSQL can drop the test database afterwards."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
async def farm(make_farm: FarmFactory) -> SimulatedFarm:
    return await make_farm("mixed", count=3, speed=SPEED)
