"""Helpers the test suites import: wait on a condition, and a clock that moves only when told.

Fixtures (the files directory, a user, a signed-in client) live in the root `conftest.py`;
what a test calls as a function lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from printers.simulator import SimulatedFarm

# The root conftest's `make_farm` fixture: `await make_farm("moonraker", count=2)`.
FarmFactory = Callable[..., Awaitable["SimulatedFarm"]]


def redis_channel_layer(url: str, **config: object) -> dict:
    """CHANNEL_LAYERS for a Redis layer at `url` whose channel and group names are this test
    process's own: pytest-xdist's workers (and a site a test starts on the same Redis
    database) each send to their own "farm" group, so no test receives another's frames."""
    prefix = "asgi-test-" + os.environ.get("PYTEST_XDIST_WORKER", "main")
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {**config, "hosts": [url], "prefix": prefix},
        }
    }


class FakeClock:
    """Time that moves only when a test moves it, for code that takes a `clock` and a `sleep`.

    `clock()` is the current fake time; `await clock.sleep(s)` wakes once the clock has been
    moved `s` past the call. No real time passes, so a loaded machine cannot make a timer
    fire early, late or in another order: what a test reads between two moves is exact.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # timers due at the same time wake in call order

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + seconds, next(self._order), wake))
        await wake

    def next_due(self) -> float | None:
        """When the earliest sleeper still waiting wakes; None if nobody sleeps."""
        while self._timers and self._timers[0][2].done():
            heapq.heappop(self._timers)  # cancelled while asleep
        return self._timers[0][0] if self._timers else None

    def advance(self, seconds: float) -> None:
        """Move the clock on and wake every sleeper due by then (they run at the next await)."""
        self.now += seconds
        while self._timers and self._timers[0][0] <= self.now:
            _, _, wake = heapq.heappop(self._timers)
            if not wake.done():
                wake.set_result(None)

    def step(self) -> None:
        """Jump to the earliest sleeper's wake-up time and wake it (and any due with it)."""
        due = self.next_due()
        if due is not None:
            self.advance(max(0.0, due - self.now))


async def eventually(
    predicate: Callable[[], object], timeout: float = 20.0, *, clock: FakeClock | None = None
) -> None:
    """Wait until `predicate()` (a plain value or an awaitable's result) is true.

    The timeout only bounds a broken test, in real seconds; it measures nothing. With a
    `clock`, fake time moves on one timer at a time between two looks; a plain (not
    awaitable) predicate sees what happened before the clock moves again.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            try:
                result = await asyncio.wait_for(result, timeout)
            except TimeoutError:
                for task in asyncio.all_tasks():
                    task.print_stack()  # shown by pytest: where the loop's tasks are waiting
                raise AssertionError("the condition's query did not return") from None
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        if clock is None:
            await asyncio.sleep(0.02)
        else:
            clock.step()
            await asyncio.sleep(0.005)  # let the woken tasks and any real I/O run


def eventually_sync(predicate: Callable[[], object], timeout: float = 20.0) -> object:
    """`eventually` for plain threads (browser tests, code beside a running simulator): wait
    until `predicate()` is true and return its value. The timeout only bounds a broken test."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
    return result


@contextlib.contextmanager
def web_server() -> Iterator[str]:
    """The ASGI app under uvicorn as `manage.py serve` runs it, in a thread, on a loopback port
    of its own; yields its base URL. Use with `django_db(transaction=True)`: the server's
    threads share the test database file, not the test's transaction."""
    import uvicorn

    from printers.management.commands.serve import uvicorn_options

    config = uvicorn.Config("printfarm.asgi:application", **{**uvicorn_options(), "log_level": "warning"})
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
