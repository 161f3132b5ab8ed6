"""SQLite writers queue for the write lock (printfarm/sqlite3) instead of polling for it (issue 7)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction

from printers.models import Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")


def _in_threads(count: int, work) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_writers_get_their_turn_while_another_keeps_taking_the_lock(sqlite):
    """Before: SQLite's busy handler sleeps up to 100 ms between tries, so a writer kept losing
    the lock to one that took it straight back, and waited until that one stopped (issue 7:
    5xx "database is locked" past the timeout)."""
    served_while_hogged: list[bool] = []
    hog_done = threading.Event()

    def work(i: int) -> None:
        if i == 0:
            for n in range(100):
                with transaction.atomic():
                    Tag.objects.create(name=f"hog-{n}")
                    time.sleep(0.01)
            hog_done.set()
            return
        time.sleep(0.05)  # the hog is under way
        for n in range(5):
            with transaction.atomic():
                served_while_hogged.append(not hog_done.is_set())
                Tag.objects.create(name=f"t{i}-{n}")

    assert _in_threads(5, work) == []
    assert Tag.objects.count() == 120
    # Each writer had its turns between the hog's transactions, not after all 100 of them
    # (an order, not a time: it holds however busy the machine is).
    assert all(served_while_hogged)


def test_a_writer_that_gets_no_turn_in_time_fails_fast_as_locked(sqlite, settings):
    connection.settings_dict["OPTIONS"]["timeout"] = 0.3
    held = threading.Event()
    release = threading.Event()

    def holder(i: int) -> None:
        if i == 0:
            with transaction.atomic():
                Tag.objects.create(name="held")
                held.set()
                release.wait(5)
        else:
            held.wait(5)
            started = time.monotonic()
            try:
                with pytest.raises(OperationalError, match="database is locked"), transaction.atomic():
                    Tag.objects.create(name="late")
                assert time.monotonic() - started < 2.0
            finally:
                release.set()

    try:
        assert _in_threads(2, holder) == []
    finally:
        connection.settings_dict["OPTIONS"]["timeout"] = settings.PRINTFARM_DB_TIMEOUT
    # The turn was handed back after the failure and after the holder's commit.
    with transaction.atomic():
        Tag.objects.create(name="after")
    assert set(Tag.objects.values_list("name", flat=True)) == {"held", "after"}


def test_a_failed_transaction_hands_its_turn_on(sqlite):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        Tag.objects.create(name="rolled back")
        1 / 0  # noqa: B018

    def work(i: int) -> None:
        with transaction.atomic():
            Tag.objects.create(name=f"next-{i}")

    assert _in_threads(3, work) == []
    assert Tag.objects.count() == 3
