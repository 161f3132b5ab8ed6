"""Queue order under concurrent writers (issue 7): creates, reorders, moves, print-now, requeues."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.db import connection, connections

from jobs import services
from jobs.models import Job
from jobs.tests.factories import make_file
from printers.tests.factories import PrinterFactory

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.State


def _waiting_order() -> list[int]:
    return list(Job.objects.waiting().in_queue_order().values_list("pk", flat=True))


def _run_threads(workers: list, seconds: float = 60.0) -> list[BaseException]:
    """Run each callable in its own thread (own connection) at once; return what they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(workers))

    def run(work) -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:  # noqa: BLE001 - collected and reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds)
    assert not any(t.is_alive() for t in threads), "a queue writer hung"
    return errors


def test_reorders_and_creates_at_once_raise_nothing_and_leave_one_consistent_order():
    """Before the fix, on PostgreSQL: KeyError (a job created between the reorder's two reads)
    and "deadlock detected" (reorders locking rows in an order that depends on the positions
    they rewrite); concurrent creates also took the same positions."""
    file = make_file()
    printer = PrinterFactory()
    services.jobs_create(file=file, quantity=10)
    services.jobs_create(file=file, quantity=3, priority=5)
    created: list[int] = []
    rounds = 25

    def creator() -> None:
        for i in range(rounds):
            jobs = services.jobs_create(file=file, quantity=2, priority=5 if i % 5 == 0 else 0)
            created.extend(j.pk for j in jobs)

    def reorderer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(rounds):
            order = _waiting_order()
            head = order[:8]
            rng.shuffle(head)
            services.jobs_reorder(head + [order[-1]] if order else [])

    def mover(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(rounds):
            job = Job.objects.waiting().order_by("?").first()
            try:
                if rng.random() < 0.3:
                    services.job_print_now(job, printer)
                else:
                    services.job_move(job, rng.choice(["up", "down"]))
            except services.JobError:
                pass  # moved or taken by another writer meanwhile: a clear refusal, not a crash

    errors = _run_threads(
        [creator, creator, creator, lambda: reorderer(1), lambda: reorderer(2), lambda: mover(3)]
    )
    assert errors == []

    rows = list(Job.objects.waiting().in_queue_order().values_list("pk", "priority", "position"))
    assert len(created) == 3 * rounds * 2
    assert set(created) <= {pk for pk, _, _ in rows}
    assert Job.objects.waiting().count() == 13 + len(created)
    # One order, no ties left to the primary key: every (priority, position) is taken once.
    assert [n for n in Counter((p, pos) for _, p, pos in rows).values() if n > 1] == []
    # And the queue still takes an order exactly as given.
    wanted = [pk for pk, _, _ in rows]
    random.Random(4).shuffle(wanted)
    services.jobs_reorder(wanted)
    assert _waiting_order() == wanted


def test_a_reorder_after_jobs_were_created_elsewhere_keeps_them_behind():
    file = make_file()
    a, b = services.jobs_create(file=file, quantity=2)
    services.jobs_reorder([b.pk, a.pk])  # `c` is created after the order was sent
    (c,) = services.jobs_create(file=file)
    services.jobs_reorder([a.pk, b.pk])
    assert _waiting_order() == [a.pk, b.pk, c.pk]


def test_reordering_a_long_queue_rewrites_only_the_jobs_that_moved(django_assert_max_num_queries):
    """A reorder holds the write lock (SQLite) while it writes: moving a few jobs of 300 must not
    rewrite all 300."""
    file = make_file()
    jobs = services.jobs_create(file=file, quantity=300)
    services.jobs_reorder([j.pk for j in jobs])
    # The dispatcher took the first 20: positions now start at 20.
    Job.objects.filter(pk__in=[j.pk for j in jobs[:20]]).update(state=S.CANCELLED)
    head = [j.pk for j in jobs[20:30]]
    head.reverse()
    with django_assert_max_num_queries(20):
        services.jobs_reorder(head)
    assert _waiting_order() == head + [j.pk for j in jobs[30:]]
    moved_last = [j.pk for j in jobs[21:]] + [jobs[20].pk]
    with django_assert_max_num_queries(20):
        services.jobs_reorder(moved_last)
    assert _waiting_order() == moved_last


def test_print_now_goes_before_an_earlier_print_now():
    file = make_file()
    printer = PrinterFactory()
    a, b, c = services.jobs_create(file=file, quantity=3)
    services.job_print_now(c, printer)
    services.job_print_now(b, printer)
    assert _waiting_order() == [b.pk, c.pk, a.pk]


def test_print_now_on_a_job_the_dispatcher_took_meanwhile_says_so():
    file = make_file()
    printer = PrinterFactory()
    (job,) = services.jobs_create(file=file)
    stale = Job.objects.get(pk=job.pk)
    services.job_transition(job, S.ASSIGNED, printer=printer)
    with pytest.raises(services.JobChanged):
        services.job_print_now(stale, printer)
    assert Job.objects.get(pk=job.pk).target_printer is None


def test_the_queue_lock_is_taken_inside_the_callers_transaction():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's IMMEDIATE transactions hold the database write lock from BEGIN")
    with pytest.raises(AssertionError):
        services._lock_queue()
